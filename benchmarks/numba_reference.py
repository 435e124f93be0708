r"""Hand-written numba Kalman log-likelihood and analytic gradient: the floor we measure against.

Two univariate-observation DLMs, in the contract's convention (R ``dlm``):

.. math::

    y_t = F \\theta_t + v_t,\\; v_t \\sim N(0, V), \\qquad
    \\theta_t = G \\theta_{t-1} + w_t,\\; w_t \\sim N(0, W), \\qquad
    \\theta_0 \\sim N(m_0, C_0),

with ``W`` diagonal. The log-likelihood is the full Gaussian one (every ``0.5 log 2 pi`` counted),
with the proper prior on ``theta_0``; it equals statsmodels with ``initialize_known(a1 = G m0,
P1 = G C0 G' + W)``.

* model 1, local level: one state, parameters ``(sigma_level, sigma_obs)``, ``m0 = 0``,
  ``C0 = 1e7``;
* model 2, local linear trend + 12-month dummy seasonal: 13 states, parameters
  ``(sigma_level, sigma_slope, sigma_seasonal, sigma_obs)``, ``m0 = 0``, ``C0 = 1e7 I``.

Method. One forward pass of the filter in Durbin & Koopman's predicted form stores only the
innovation ``v_t``, its variance ``F_t`` and the gain ``K_t = G P_t F' / F_t`` (``n + 2`` numbers a
step). One backward pass of the disturbance smoother (DK 2012, sec. 4.5) gives ``r_{t-1}, N_{t-1}``
and ``u_t, D_t``; the score for variance parameters is then (DK 2012, sec. 7.3.3; Koopman &
Shephard 1992)

.. math::

    \\partial \\ell / \\partial W_{ii} = \\tfrac12 \\sum_{t=1}^{T} (r_{t-1,i}^2 - N_{t-1,ii}),
    \\qquad
    \\partial \\ell / \\partial V = \\tfrac12 \\sum_{t=1}^{T} (u_t^2 - D_t).

The ``t = 1`` term carries the dependence of ``P_1 = G C_0 G' + W`` on ``W``. This reverse-mode
route costs about two forward passes whatever the number of parameters; forward-mode tangents
would cost one forward pass per parameter (four for model 2), so reverse mode is the faster.

Structure exploited: scalar observation (no matrix factorisation anywhere, one division a step);
``F = e_0 + e_2``; ``G`` (trend Jordan block + seasonal dummy rows) applied entry by entry, so
``G P G'`` costs one column-sum over the seasonal rows plus copies and ``G' N G`` a few
subtractions per entry; ``P_{t+1} = G P_t G' - F_t K_t K_t' + W`` skips the filtered covariance;
``W`` diagonal with three non-zeros (only those score entries are accumulated); symmetry of ``P``
and ``N`` (upper triangle computed, then mirrored, which also keeps them exactly symmetric); the
state dimension baked in as a compile-time constant. Per step that is roughly 500 flops forward
and 600 backward for model 2.

The returned gradient is with respect to ``log sigma`` (the unconstrained coordinates in which
NUTS moves for a positive ``sigma``): ``d ell / d log sigma_k = 2 sigma_k^2 d ell / d sigma_k^2``.
Missing values (NaN) are skipped exactly (no update, no likelihood contribution).

References
----------
Durbin, J. and Koopman, S. J. (2012). Time Series Analysis by State Space Methods, 2nd ed.,
sections 4.3, 4.5, 7.3.3. Oxford University Press.
Koopman, S. J. and Shephard, N. (1992). Exact score for time series models in state space form.
Biometrika 79(4), 823-826.
"""

from __future__ import annotations

import math
import time

import numpy as np
from numba import njit

LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- model 1: local level
@njit(cache=False, fastmath=False)
def local_level_loglik_grad(y, sigma_level, sigma_obs, m0, C0):
    """Local level: ``(loglik, d/d log sigma_level, d/d log sigma_obs)``.

    Three floats rather than a gradient array: allocating and boxing a 2-vector costs about as
    much as the 100-step recursion itself.
    """
    T = y.shape[0]
    W = sigma_level * sigma_level
    V = sigma_obs * sigma_obs
    v_s = np.empty(T)
    f_s = np.empty(T)
    k_s = np.empty(T)
    a = m0
    P = C0 + W
    ll = 0.0
    for t in range(T):
        yt = y[t]
        if math.isnan(yt):
            f_s[t] = math.nan
            P = P + W
            continue
        v = yt - a
        F = P + V
        K = P / F
        ll -= 0.5 * (LOG_2PI + math.log(F) + v * v / F)
        a = a + K * v
        P = P * (1.0 - K) + W
        v_s[t] = v
        f_s[t] = F
        k_s[t] = K
    r = 0.0
    N = 0.0
    sW = 0.0
    sV = 0.0
    for t in range(T - 1, -1, -1):
        F = f_s[t]
        if not math.isnan(F):
            K = k_s[t]
            finv = 1.0 / F
            vf = v_s[t] * finv
            u = vf - K * r
            sV += u * u - (finv + K * K * N)
            L = 1.0 - K
            r = vf + L * r
            N = finv + L * L * N
        sW += r * r - N
    # d ell / d log sigma = 2 sigma^2 * (0.5 * sum) = sigma^2 * sum
    return ll, W * sW, V * sV


# ------------------------------------------------- model 2: local linear trend + dummy seasonal
# State order [level, slope, s_1, ..., s_{n-2}]; F = e_0 + e_2;
# G: level' = level + slope, slope' = slope, s_1' = -(s_1 + ... + s_{n-2}), s_k' = s_{k-1}.
# G P G' and G' N G are written out entry by entry (upper triangle, then mirrored), so no matrix
# product is formed, and P_{t+1} = G P_t G' - F_t K_t K_t' + W needs no filtered covariance.
# The kernel is generated for a fixed n so that every loop bound is a compile-time constant
# (about 1.8x faster than reading n from an array shape).


def _make_trend_seasonal_kernel(n: int):
    """Generate the jitted kernels for trend + dummy seasonal with ``n`` states.

    ``kernel(y, w_diag, V, m0, C0) -> (loglik, dll/dW_ii (n,), dll/dV)`` and
    ``loglik_grad(y, sigmas, m0, C0) -> (loglik, grad wrt log sigmas (4,))``.
    """
    if n < 4:
        raise ValueError("trend + seasonal needs n >= 4 states (period >= 3)")

    @njit(cache=False, fastmath=False)
    def mirror_upper(A):
        # keeps P and N exactly symmetric; rounding would otherwise accumulate an asymmetry
        for i in range(1, n):
            for j in range(i):
                A[i, j] = A[j, i]

    @njit(cache=False, fastmath=False)
    def g_vec(x, out):
        """Out = G x."""
        acc = 0.0
        for j in range(2, n):
            acc += x[j]
        out[0] = x[0] + x[1]
        out[1] = x[1]
        out[2] = -acc
        for j in range(3, n):
            out[j] = x[j - 1]

    @njit(cache=False, fastmath=False)
    def gt_vec(x, out):
        """Out = G' x."""
        out[0] = x[0]
        out[1] = x[0] + x[1]
        for j in range(2, n - 1):
            out[j] = x[j + 1] - x[2]
        out[n - 1] = -x[2]

    @njit(cache=False, fastmath=False)
    def g_s_gt(S, csum, out):
        """Upper triangle of out = G S G' (S symmetric)."""
        for j in range(n):
            csum[j] = 0.0
        for k in range(2, n):  # csum[j] = sum of S[k, j] over the seasonal rows k
            for j in range(n):
                csum[j] += S[k, j]
        tot = 0.0
        for j in range(2, n):
            tot += csum[j]
        out[0, 0] = S[0, 0] + 2.0 * S[0, 1] + S[1, 1]
        out[0, 1] = S[0, 1] + S[1, 1]
        out[1, 1] = S[1, 1]
        out[0, 2] = -(csum[0] + csum[1])
        out[1, 2] = -csum[1]
        out[2, 2] = tot
        for k in range(3, n):
            out[0, k] = S[0, k - 1] + S[1, k - 1]
            out[1, k] = S[1, k - 1]
            out[2, k] = -csum[k - 1]
        for i in range(3, n):
            for k in range(i, n):
                out[i, k] = S[i - 1, k - 1]

    @njit(cache=False, fastmath=False)
    def gt_n_g(N, out):
        """Upper triangle of out = G' N G (N symmetric).

        Columns of G: g_0 = e_0, g_1 = e_0 + e_1, g_j = e_{j+1} - e_2 (2 <= j <= n-2),
        g_{n-1} = -e_2.
        """
        n00 = N[0, 0]
        n01 = N[0, 1]
        n02 = N[0, 2]
        n12 = N[1, 2]
        n22 = N[2, 2]
        out[0, 0] = n00
        out[0, 1] = n00 + n01
        out[1, 1] = n00 + 2.0 * n01 + N[1, 1]
        for j in range(2, n - 1):
            out[0, j] = N[0, j + 1] - n02
            out[1, j] = N[0, j + 1] + N[1, j + 1] - n02 - n12
        out[0, n - 1] = -n02
        out[1, n - 1] = -n02 - n12
        for i in range(2, n - 1):
            d_i = N[i + 1, 2] - n22  # g_i' N e_2
            for j in range(i, n - 1):
                out[i, j] = N[i + 1, j + 1] - N[2, j + 1] - d_i
            out[i, n - 1] = -d_i
        out[n - 1, n - 1] = n22

    @njit(cache=False, fastmath=False)
    def kernel(y, w_diag, V, m0, C0):
        T = y.shape[0]
        P = np.empty((n, n))
        P_new = np.empty((n, n))
        a = np.empty(n)
        a_new = np.empty(n)
        M = np.empty(n)
        csum = np.empty(n)
        v_s = np.empty(T)
        f_s = np.empty(T)
        k_s = np.empty((T, n))
        # a_1 = G m0, P_1 = G C0 G' + W
        g_vec(m0, a)
        g_s_gt(C0, csum, P)
        mirror_upper(P)
        for i in range(n):
            P[i, i] += w_diag[i]
        ll = 0.0
        for t in range(T):
            yt = y[t]
            K = k_s[t]
            g_vec(a, a_new)
            g_s_gt(P, csum, P_new)
            if math.isnan(yt):
                f_s[t] = math.nan
            else:
                for i in range(n):
                    M[i] = P[i, 0] + P[i, 2]  # P F'
                Ft = M[0] + M[2] + V
                v = yt - a[0] - a[2]
                finv = 1.0 / Ft
                ll -= 0.5 * (LOG_2PI + math.log(Ft) + v * v * finv)
                g_vec(M, K)
                for i in range(n):
                    K[i] *= finv  # DK gain K = G P F' / F_t
                v_s[t] = v
                f_s[t] = Ft
                # a_{t+1} = G a + K v ; P_{t+1} = G P G' - F_t K K' + W
                for i in range(n):
                    a_new[i] += K[i] * v
                    fk = Ft * K[i]
                    for j in range(i, n):
                        P_new[i, j] -= fk * K[j]
            mirror_upper(P_new)
            for i in range(n):
                P_new[i, i] += w_diag[i]
            a, a_new = a_new, a
            P, P_new = P_new, P

        # backward: r_{t-1} = G' r_t + F' u_t,
        #           N_{t-1} = G' N_t G - b F - F' b' + (K' N_t K + 1/F_t) F' F,  b = G' N_t K
        r = np.zeros(n)
        r_new = np.empty(n)
        N = np.zeros((n, n))
        N_new = np.empty((n, n))
        NK = np.empty(n)
        b = np.empty(n)
        sW = np.zeros(n)
        sV = 0.0
        for t in range(T - 1, -1, -1):
            Ft = f_s[t]
            gt_vec(r, r_new)
            gt_n_g(N, N_new)
            if not math.isnan(Ft):
                K = k_s[t]
                finv = 1.0 / Ft
                Kr = 0.0
                KNK = 0.0
                for i in range(n):
                    Kr += K[i] * r[i]
                    s = 0.0
                    for j in range(n):
                        s += N[i, j] * K[j]
                    NK[i] = s
                    KNK += K[i] * s
                u = v_s[t] * finv - Kr
                sV += u * u - (finv + KNK)
                r_new[0] += u
                r_new[2] += u
                gt_vec(NK, b)
                c = KNK + finv
                # upper triangle of - b F - F' b' + c F'F, F = e_0 + e_2
                for j in range(n):
                    N_new[0, j] -= b[j]
                    if j >= 2:
                        N_new[2, j] -= b[j]
                N_new[0, 0] -= b[0]
                N_new[0, 2] -= b[0]
                N_new[1, 2] -= b[1]
                N_new[2, 2] -= b[2]
                N_new[0, 0] += c
                N_new[0, 2] += c
                N_new[2, 2] += c
            mirror_upper(N_new)
            r, r_new = r_new, r
            N, N_new = N_new, N
            for i in range(n):
                if w_diag[i] != 0.0:
                    sW[i] += r[i] * r[i] - N[i, i]
        return ll, 0.5 * sW, 0.5 * sV

    @njit(cache=False, fastmath=False)
    def loglik_grad(y, sigmas, m0, C0):
        """Sigmas (level, slope, seasonal, obs) -> (loglik, grad wrt log sigmas), in one call."""
        w = np.zeros(n)
        for k in range(3):
            w[k] = sigmas[k] * sigmas[k]
        V = sigmas[3] * sigmas[3]
        ll, dW, dV = kernel(y, w, V, m0, C0)
        grad = np.empty(4)
        for k in range(3):
            grad[k] = 2.0 * w[k] * dW[k]
        grad[3] = 2.0 * V * dV
        return ll, grad

    return kernel, loglik_grad


_KERNELS: dict = {}


def trend_seasonal_kernels(n: int = 13):
    """``(kernel, loglik_grad)`` for trend + seasonal with ``n`` states (generated once per n).

    ``kernel(y, w_diag, V, m0, C0) -> (ll, dll/dW_ii (n,), dll/dV)``;
    ``loglik_grad(y, sigmas, m0, C0) -> (ll, grad wrt log sigmas (4,))``.
    """
    if n not in _KERNELS:
        _KERNELS[n] = _make_trend_seasonal_kernel(n)
    return _KERNELS[n]


# ------------------------------------------------------------------- model 2: matrices and wrapper
def trend_seasonal_system(period: int = 12):
    """Return dense ``(F (n,), G (n, n))`` of ``dlmModPoly(2) + dlmModSeas(period)``.

    ``n = 2 + period - 1``; states ``[level, slope, seasonal_1, ..., seasonal_{period-1}]``. Used
    by the statsmodels check; the kernel applies the same G through row/column operations.
    """
    ns = period - 1
    n = 2 + ns
    G = np.zeros((n, n))
    G[0, 0] = G[0, 1] = G[1, 1] = 1.0
    G[2, 2:] = -1.0
    for i in range(1, ns):
        G[2 + i, 2 + i - 1] = 1.0
    F = np.zeros(n)
    F[0] = 1.0
    F[2] = 1.0
    return F, G


def trend_seasonal_loglik_grad(y, sigmas, m0, C0):
    """Model 2: ``(loglik, grad)``, grad wrt log of (sigma_level, slope, seasonal, obs).

    ``m0`` (n,) and ``C0`` (n, n) fix the prior; the kernel for that n is generated on first use.
    """
    return trend_seasonal_kernels(m0.shape[0])[1](y, sigmas, m0, C0)


class TrendSeasonal:
    """Model 2 with its fixed prior: ``ts(y, sigmas) -> (loglik, grad wrt log sigmas)``."""

    def __init__(self, period: int = 12, m0: float = 0.0, C0: float = 1e7):
        self.F, self.G = trend_seasonal_system(period)
        self.n = self.F.shape[0]
        self.m0 = np.full(self.n, float(m0))
        self.C0 = float(C0) * np.eye(self.n)
        self.kernel, self.loglik_grad = trend_seasonal_kernels(self.n)

    def w_diag(self, sigmas):
        w = np.zeros(self.n)
        w[:3] = np.asarray(sigmas[:3], dtype=float) ** 2
        return w

    def __call__(self, y, sigmas):
        return self.loglik_grad(y, np.asarray(sigmas, dtype=np.float64), self.m0, self.C0)


# ------------------------------------------------------------------------------------- timing
def time_per_call(fn, *args, min_time: float = 1.0, repeat: int = 5):
    """Time ``fn(*args)``: median seconds per call over ``repeat`` batches (``min_time`` in all).

    Returns ``(median, min, calls)``; calls go straight to the jitted dispatcher, as a sampler
    would.
    """
    fn(*args)  # compile / warm up
    t0 = time.perf_counter()
    fn(*args)
    one = max(time.perf_counter() - t0, 1e-7)
    number = max(1, int(min_time / repeat / one))
    per = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn(*args)
        per.append((time.perf_counter() - t0) / number)
    return float(np.median(per)), float(np.min(per)), number * repeat


def benchmark(models=(1, 2), min_time: float = 1.0, data=None):
    """Per-call time of loglik + gradient for models 1 and 2 (seconds), keyed by model number.

    ``data`` maps model number to the observation vector; by default the benchmark data of
    ``models.py``. Also reports compile time of the first call.
    """
    if data is None:
        import models as bench_models

        data = {k: bench_models.load_data(k)["y"] for k in models}
    out = {}
    for k in models:
        y = np.ascontiguousarray(np.asarray(data[k], dtype=np.float64).ravel())
        if k == 1:
            args = (y, 40.0, 120.0, 0.0, 1e7)
            fn = local_level_loglik_grad
        elif k == 2:
            ts = TrendSeasonal(12)
            args = (y, np.array([1.0, 0.1, 0.5, 2.0]), ts.m0, ts.C0)
            fn = ts.loglik_grad  # the jitted function itself: no Python wrapper in the timing
        else:
            continue
        t0 = time.perf_counter()
        fn(*args)
        compile_s = time.perf_counter() - t0
        med, best, calls = time_per_call(fn, *args, min_time=min_time)
        out[k] = {
            "logp_grad_s": med,
            "logp_grad_min_s": best,
            "calls": calls,
            "compile_s": compile_s,
            "T": int(y.shape[0]),
        }
    return out


if __name__ == "__main__":
    import sys

    sys.path.insert(0, __import__("os").path.dirname(__file__))
    for k, r in benchmark(min_time=2.0).items():
        print(
            f"model {k} (T={r['T']}): {r['logp_grad_s'] * 1e6:.2f} us per loglik+gradient "
            f"(median, min {r['logp_grad_min_s'] * 1e6:.2f} us, {r['calls']} calls; "
            f"first call incl. compile {r['compile_s']:.2f} s)"
        )
