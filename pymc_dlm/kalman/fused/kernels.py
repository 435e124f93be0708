r"""Fused numba kernels: the Kalman log-likelihood and its exact reverse-mode gradient.

These kernels are what the DLM log-likelihood runs on pytensor's numba backend (see
:mod:`pymc_dlm.kalman.fused.ops`); the scan of :mod:`pymc_dlm.kalman.filter` stays the
definition and runs on every other backend.

Recursion (R ``dlm`` timing, prior on :math:`\theta_0`; observation components processed one
at a time, which is exact for a diagonal :math:`V_t`; Durbin & Koopman 2012, §6.4):

.. math::

    a = G_t m_{t-1}, \quad R = G_t C_{t-1} G_t^\top + L_W L_W^\top,

then for every observed component :math:`i` with row :math:`z = F_{t,i}` and variance
:math:`h = \sigma_{t,i}^2`:

.. math::

    u = R z,\; f = z^\top u + h,\; v = y_{t,i} - z^\top a,\;
    \ell \mathrel{+}= -\tfrac12 (\log 2\pi + \log f + v^2 / f),\;
    a \mathrel{+}= u\, v / f,\; R \mathrel{-}= u u^\top / f,

and finally :math:`m_t = a`, :math:`C_t = R`. Missing components (NaN) are skipped: they
contribute exactly zero.

The gradient is the adjoint (reverse mode) of exactly this recursion, derived by hand and run
backwards in one pass (Giles 2008 for the matrix adjoint rules). With a symmetric adjoint
:math:`\bar R`, the rules used are: from :math:`R \mathrel{-}= uu^\top/f`,
:math:`\bar u \mathrel{-}= 2\bar R u / f`, :math:`\bar f \mathrel{+}= u^\top \bar R u / f^2`; from
:math:`u = R z`, :math:`\bar R \mathrel{+}= \operatorname{sym}(\bar u z^\top)`,
:math:`\bar z \mathrel{+}= R \bar u`; from the prediction, :math:`\bar m = G^\top \bar a`,
:math:`\bar C = G^\top \bar R G`, :math:`\bar G = \bar a m^\top + 2 \bar R G C`,
:math:`\bar L_W = 2 \bar R L_W`. Inputs whose gradient is not wanted (``need`` flags) are
skipped, and their forward intermediates are not stored: in the common case (constant F and
G) the backward pass keeps only :math:`u, f, v` per observation.

Structure is exploited at run time, for any model: G, the rows of F and the columns of
:math:`L_W` are applied through their non-zero entries only, so a sum of sparse components
(polynomial trends, dummy seasonals, regressions) costs far less than dense
:math:`n^3` per step. Symmetric matrices stay exactly symmetric: they are computed on one
triangle and mirrored, or (the rank-one update) from products :math:`u_r u_c` that do not
depend on the order. Inner loops run along contiguous rows, so that the compiler can
vectorise them; a constant noise factor's covariance :math:`L_W L_W^\top` is formed once per
series, and the adjoint of a constant W is summed over time and multiplied by its factor
once.

Array layout: every input has one leading batch axis of length 1 (shared) or B, and the
time-varying ones a time axis of length 1 (constant) or T:
``y (B, T, p)``, ``F (B, TF, p, n)``, ``G (B, TG, n, n)``, ``W (B, TW, n, k)`` (the factor
:math:`L_W`), ``sd (B, TV, p)`` (observation standard deviations), ``m0 (B, n)``,
``C0 (B, n, c)`` (the factor :math:`L_0`).

Accuracy: this is the covariance form. With ordinary priors it agrees with the square-root
scan to ~1e-13 relative; with a vague prior (C0 = 1e7) and tiny observation variances it
loses digits to cancellation in :math:`R - uu^\top/f` (measured in the tests), which the
square-root scan does not.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §6.4 (univariate treatment), §7.3.3 (score).
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
"""

import math

import numba
import numpy as np

from pymc_dlm.kalman.fused.diffuse import (
    INFORMATIVE,
    SKIPPED,
    any_nonzero,
    condition,
    diffuse_update,
    informative_adjoint,
    mirror,
    outer_factor,
    predict_factor,
    replay_informative,
)
from pymc_dlm.kalman.fused.specialize import call_address

__all__ = [
    "loglik_kernel",
    "loglik_into",
    "loglik_grad_kernel",
    "loglik_grad_into",
    "grad_outputs",
]

LOG_2PI = math.log(2.0 * math.pi)
#: Above this conditioning ratio (z'Rz / h, see ``_forward``) the log-likelihood value is
#: recomputed by the square-root filter: the covariance form would keep fewer than ~10 digits.
CANCELLATION_LIMIT = 1e6
#: The square-root start hands over to the covariance form after the first step whose
#: forecast variances are within this factor of their noise (at most ~3 digits at stake).
SWITCH_RATIO = 1e3
#: Steady state: once a filtered covariance differs from the previous one by at most this
#: much (relative, largest entry), the covariance recursion has converged to round-off and
#: the remaining steps reuse the last gains (see ``_forward``).
STEADY_TOL = 1e-14
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Per-step helpers are inlined into the kernels at numba-IR level: no call overhead, no
# reference counting of the array views they receive. The per-series drivers (``_forward``,
# ``_headed``, ``_filter_member``) are ordinary compiled functions: inlining them into each
# other multiplies the compiled code (and numba's compile time and memory).
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def _sparse(A):
    """Non-zero pattern of a matrix, by rows: (count per row, columns, values)."""
    rows, cols = A.shape
    count = np.zeros(rows, dtype=np.int64)
    idx = np.zeros((rows, cols), dtype=np.int64)
    val = np.zeros((rows, cols))
    _sparse_into(A, count, idx, val)
    return count, idx, val


@_inline
def _sparse_into(A, count, idx, val):
    """Refill a pattern made by :func:`_sparse` (time-varying matrices: no allocation)."""
    rows, cols = A.shape
    for r in range(rows):
        k = 0
        for c in range(cols):
            if A[r, c] != 0.0:
                idx[r, k] = c
                val[r, k] = A[r, c]
                k += 1
        count[r] = k


@_inline
def _sandwich(cnt, idx, val, M, X, out, add, has_add):
    r"""``out = S M S^\top`` (``+ add`` when ``has_add``) for a symmetric ``M`` and a sparse-row S.

    S is given by its rows (``cnt``, ``idx``, ``val``, see :func:`_sparse`). ``X = S M`` is
    kept: row r is a sum of rows of M (contiguous inner loops, SIMD). The upper triangle of
    ``out`` is gathered from X and mirrored, so ``out`` is exactly symmetric. ``out`` may be
    ``M`` (and ``add`` anything when ``has_add`` is false).
    """
    n = M.shape[0]
    for r in range(n):
        for c in range(n):
            X[r, c] = 0.0
        for j in range(cnt[r]):
            g = val[r, j]
            row = idx[r, j]
            for c in range(n):
                X[r, c] += g * M[row, c]
    for r in range(n):
        for c in range(r, n):
            s = add[r, c] if has_add else 0.0
            for j in range(cnt[c]):
                s += X[r, idx[c, j]] * val[c, j]
            out[r, c] = s
            out[c, r] = s


@_inline
def _predict(G_cnt, G_idx, G_val, m, C, WW, a, R, GC):
    r"""Prediction: a = G m, R = G C G' + WW (exactly symmetric), and GC = G C.

    ``WW`` is the noise covariance :math:`L_W L_W^\top` (see :func:`_noise_cov`).
    """
    _predict_mean(G_cnt, G_idx, G_val, m, a)
    _sandwich(G_cnt, G_idx, G_val, C, GC, R, WW, True)


@_inline
def _noise_cov(W, bW, tW, WW):
    """``WW = L L'`` for the noise factor ``L = W[bW, tW]`` (n, k), skipping its zeros."""
    n = WW.shape[0]
    for r in range(n):
        for c in range(r, n):
            WW[r, c] = 0.0
    for j in range(W.shape[3]):
        for r in range(n):
            w_r = W[bW, tW, r, j]
            if w_r != 0.0:
                for c in range(r, n):
                    WW[r, c] += w_r * W[bW, tW, c, j]
    mirror(WW)


@_inline
def _update(R, a, z_cnt, z_idx, z_val, i, y, h, u):
    """Scalar observation i: returns (f, v, loglik term); updates a, R in place, fills u.

    Row i of the sparse F is ``z_idx[i, :z_cnt[i]]``, ``z_val[i, :z_cnt[i]]``.
    """
    n = a.shape[0]
    f = h
    v = y
    cnt = z_cnt[i]
    for j in range(cnt):
        v -= z_val[i, j] * a[z_idx[i, j]]
    for r in range(n):
        s = 0.0
        for j in range(cnt):
            s += R[r, z_idx[i, j]] * z_val[i, j]
        u[r] = s
    for j in range(cnt):
        f += z_val[i, j] * u[z_idx[i, j]]
    return f, v, condition(R, a, u, f, v)


@_inline
def _pick(shape0, b):
    return b if shape0 > 1 else 0


@_inline
def _layout(F, G, W, sd, b):
    """Batch index of member ``b`` in G, F, W, sd (0 when shared), then their time lengths."""
    return (
        _pick(G.shape[0], b),
        _pick(F.shape[0], b),
        _pick(W.shape[0], b),
        _pick(sd.shape[0], b),
        G.shape[1],
        F.shape[1],
        W.shape[1],
        sd.shape[1],
    )


@_jit
def _forward(y, F, G, W, sd, m0, C0, Q, b, store, rec, work, t0, t1, dw, steady, spec):
    r"""Filter batch member ``b``: (log-likelihood, worst ratio, t_end, n_inf, t_ss).

    Stops at the first -inf. The ratio is the largest :math:`z^\top R z / h` met: the
    covariance update :math:`R - uu^\top/f` loses about :math:`\log_{10}` of it in digits.

    With ``store``, keeps (in ``rec`` = ``us, fs, vs, ms, Cs``) u, f, v of every update and
    (when ``ms`` has T + 1 rows) the filtered moments :math:`m_{t-1}, C_{t-1}` entering every
    step, for the backward pass. ``work`` = ``m, C, a, R, GC, u`` is scratch. Runs steps
    ``t0 .. t1 - 1``; with ``t0 > 0`` it starts from the moments already in ``m, C``.

    Exact diffuse mode (``Q`` has d > 0 columns): ``m0``, ``C0`` are the *predicted* moments
    :math:`a_1, P_{*,1}` (``C0`` a covariance, not a factor) and :math:`P_{\infty,1} = Q
    Q^\top`; step 1 does not predict. ``dw`` holds the diffuse work arrays (factor, scratch,
    and the per-scalar record kept for the backward pass: kinds, gains, :math:`F_\infty`, and
    :math:`P_\infty` entering every diffuse step). ``t_end`` is the number of steps of the
    diffuse period and ``n_inf`` the number of informative scalars; a diffuse part left at
    the end (too few informative observations) gives -inf.

    Steady state (``steady``; time-invariant F, G, W and V, no missing value from there on,
    past the diffuse period, and no stored moments): the covariance recursion does not
    depend on the data. Once the filtered covariance :math:`C_t` equals :math:`C_{t-1}` to
    :data:`STEADY_TOL` (relative), the steps from ``t_ss = t + 1`` on reuse the gains
    :math:`u_i, f_i` of step t and update only the mean, :math:`O(n)` per observation
    instead of :math:`O(n^2)`. The backward pass differentiates exactly this computation:
    the adjoints of the reused :math:`u_i, f_i` are summed and passed to step t.
    ``t_ss = t1`` when the recursion never settles.

    ``spec`` (int64, 2): addresses of the straight-line sandwiches of a constant G
    (:mod:`~pymc_dlm.kalman.fused.specialize`), or zeros for the general routine. They are
    used only for a G shared by the batch and time-invariant.
    """
    B, Bt, K, ud, Bv, kinds, Ks, finfs, Pinfs = dw
    us, fs, vs, ms, Cs = rec
    m, C, a, R, GC, u = work
    T, p = y.shape[1], y.shape[2]
    n = G.shape[-1]
    bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
    bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
    keep_states = ms.shape[0] > 1
    diffuse = Q.shape[2] > 0
    c0 = C0.shape[2]
    for r in range(n):
        if t0 > 0:
            break
        m[r] = m0[bm0, r]
        for c in range(n):
            if diffuse:
                C[r, c] = C0[bC0, r, c]
                continue
            acc = 0.0
            for j in range(c0):
                acc += C0[bC0, r, j] * C0[bC0, c, j]
            C[r, c] = acc
    active = diffuse and t0 == 0
    if active:
        B[:, :] = Q[_pick(Q.shape[0], b)]
    t_end = 0
    n_inf = 0
    G_cnt, G_idx, G_val = _sparse(G[bG, 0])
    F_cnt, F_idx, F_val = _sparse(F[bF, 0])
    WW = np.empty((n, n))
    _noise_cov(W, bW, 0, WW)
    predict_at = spec[0] if TG == 1 and G.shape[0] == 1 else 0
    total = 0.0
    worst = 0.0
    steady = steady and not keep_states and TG == 1 and TF == 1 and TW == 1 and TV == 1
    last_nan = t0 - 1  # steady steps come after the last missing value
    if steady:
        for t in range(t1 - 1, t0 - 1, -1):
            if last_nan >= t0:
                break
            for i in range(p):
                if math.isnan(y[b, t, i]):
                    last_nan = t
                    break
    fu = np.empty((p if steady else 1, n))
    ff = np.empty(p if steady else 1)
    finv = np.empty(p if steady else 1)  # 1/f and log(2 pi f) of the reused gains
    flog = np.empty(p if steady else 1)
    frozen = False
    t_ss = t1
    for t in range(t0, t1):
        step_diffuse = active
        if keep_states:
            _copy_state(m, C, ms[t], Cs[t])
            if active:
                outer_factor(B, Pinfs[t])
        if TG > 1:
            _sparse_into(G[bG, t], G_cnt, G_idx, G_val)
        if TF > 1:
            _sparse_into(F[bF, t], F_cnt, F_idx, F_val)
        if diffuse and t == 0:
            _copy_state(m, C, a, R)  # the start is already the prediction of step 1
        else:
            if TW > 1:
                _noise_cov(W, bW, t, WW)
            if predict_at != 0:  # R = G C G' + WW, straight-line (bitwise the same)
                _predict_mean(G_cnt, G_idx, G_val, m, a)
                call_address(predict_at, C.ctypes.data, R.ctypes.data, WW.ctypes.data)
            else:
                _predict(G_cnt, G_idx, G_val, m, C, WW, a, R, GC)
            if active:
                predict_factor(G_cnt, G_idx, G_val, B, Bt)
                B, Bt = Bt, B
        tV = t if TV > 1 else 0
        for i in range(p):
            yi = y[b, t, i]
            if math.isnan(yi):
                if active and store:
                    kinds[t, i] = SKIPPED
                continue
            h = sd[bsd, tV, i] * sd[bsd, tV, i]
            if active:
                kind, f, v, f_inf, ll = diffuse_update(
                    R, a, B, F_cnt, F_idx, F_val, i, yi, h, u, K, ud, Bv
                )
                if store:
                    kinds[t, i] = kind
                    if kind == INFORMATIVE:
                        Ks[n_inf] = K
                        finfs[n_inf] = f_inf
                if kind == INFORMATIVE:
                    n_inf += 1
            else:
                f, v, ll = _update(R, a, F_cnt, F_idx, F_val, i, yi, h, u)
            if steady:
                for r in range(n):
                    fu[i, r] = u[r]
                ff[i] = f
            if store:
                for r in range(n):
                    us[t, i, r] = u[r]
                fs[t, i] = f
                vs[t, i] = v
            total += ll
            if f - h > worst * h:
                worst = (f - h) / h if h > 0.0 else np.inf
        if not (total > -np.inf):
            return -np.inf, worst, t_end, n_inf, t_ss
        if active and not any_nonzero(B):
            active = False
            t_end = t + 1
        if steady and not step_diffuse and t > last_nan and t > t0 and _settled(R, C):
            frozen = True
            t_ss = t + 1
            for i in range(p):
                finv[i] = 1.0 / ff[i]
                flog[i] = LOG_2PI + math.log(ff[i])
        m, a = a, m  # the filtered moments become the next step's input: swap, no copy
        C, R = R, C
        if frozen:
            break
    # Steady steps: the mean only, in place (arrays rebound inside a loop are
    # reference-counted at every iteration, so this loop swaps nothing).
    for t in range(t_ss, t1):
        _predict_mean(G_cnt, G_idx, G_val, m, a)
        for i in range(p):
            v = y[b, t, i]
            for j in range(F_cnt[i]):
                v -= F_val[i, j] * a[F_idx[i, j]]
            f = ff[i]
            vf = v * finv[i]
            for r in range(n):
                a[r] += fu[i, r] * vf
            if store:
                for r in range(n):
                    us[t, i, r] = fu[i, r]
                fs[t, i] = f
                vs[t, i] = v
            total += -0.5 * (flog[i] + v * vf)
        for r in range(n):
            m[r] = a[r]
    if active:  # fewer informative observations than diffuse states: improper
        return -np.inf, worst, T, n_inf, t_ss
    if not (total > -np.inf):
        return -np.inf, worst, t_end, n_inf, t_ss
    return total, worst, t_end, n_inf, t_ss


@_inline
def _settled(R, C):
    """Whether the new filtered covariance ``R`` equals the previous ``C`` (``STEADY_TOL``)."""
    n = R.shape[0]
    scale = 0.0  # the largest entry of a covariance is on its diagonal
    for r in range(n):
        scale = max(scale, abs(R[r, r]))
    bound = STEADY_TOL * scale
    for r in range(n):  # the diagonal first: cheap while the recursion is still moving
        if abs(R[r, r] - C[r, r]) > bound:
            return False
    for r in range(n):
        for c in range(r + 1, n):
            if abs(R[r, c] - C[r, c]) > bound:
                return False
    return True


@_inline
def _predict_mean(G_cnt, G_idx, G_val, m, a):
    """``a = G m`` through the sparse rows of G."""
    for r in range(m.shape[0]):
        s = 0.0
        for j in range(G_cnt[r]):
            s += G_val[r, j] * m[G_idx[r, j]]
        a[r] = s


@_inline
def _diffuse_work(n, d, T, p, keep_states):
    """Work arrays of the diffuse mode (see ``_forward``); tiny when ``d == 0``."""
    rows = T if d > 0 else 1
    return (
        np.zeros((n, d)),
        np.zeros((n, d)),
        np.zeros(n),
        np.zeros(max(d, 1)),
        np.zeros(n),
        np.zeros((rows, p if d > 0 else 1), dtype=np.int8),
        np.zeros((max(d, 1), n)),
        np.zeros(max(d, 1)),
        np.zeros((T + 1 if (keep_states and d > 0) else 1, n, n)),
    )


@_inline
def _copy_state(a, R, m, C):
    n = a.shape[0]
    for r in range(n):
        m[r] = a[r]
        for c in range(n):
            C[r, c] = R[r, c]


@_inline
def _triangularize(A):
    r"""Overwrite ``A`` (m, k) with the R of its QR decomposition (Householder, in place).

    Rows may change sign against LAPACK's R; the square-root filter only uses products
    :math:`R^\top R` and ratios in which such signs cancel. Rows below ``min(m, k)`` are
    zeroed.
    """
    m, k = A.shape
    for j in range(min(m, k)):
        norm2 = 0.0
        for i in range(j, m):
            norm2 += A[i, j] * A[i, j]
        if norm2 == 0.0:
            continue
        alpha = -math.sqrt(norm2) if A[j, j] >= 0.0 else math.sqrt(norm2)
        v0 = A[j, j] - alpha
        vtv = norm2 - A[j, j] * A[j, j] + v0 * v0
        A[j, j] = alpha
        for c in range(j + 1, k):
            s = v0 * A[j, c]
            for i in range(j + 1, m):
                s += A[i, j] * A[i, c]
            s *= 2.0 / vtv
            A[j, c] -= s * v0
            for i in range(j + 1, m):
                A[i, c] -= s * A[i, j]
        for i in range(j + 1, m):
            A[i, j] = 0.0
    for i in range(min(m, k), m):
        for c in range(k):
            A[i, c] = 0.0


@_jit
def _sqrt_head(y, F, G, W, sd, m0, C0, b, switch_ratio):
    r"""Log-likelihood of batch member ``b`` by the square-root (QR array) filter.

    The value route for ill-conditioned problems (vague prior, tiny noise), where the
    covariance form would lose digits: the same array algorithm as
    :mod:`pymc_dlm.kalman.steps` (predict: QR of :math:`[U_C G^\top; L_W^\top]`; update: QR
    of :math:`[[U_V, 0], [U_R F^\top, U_R]]` over the observed components).

    Runs until the end, or stops after the first step whose forecast variances are all within
    ``switch_ratio`` of their noise (:math:`Q_{jj} - h_j \le` ratio :math:`\cdot h_j`: the
    vague prior has been absorbed). Returns (log-likelihood so far, next step, m, U) with
    :math:`C = U^\top U` the filtered covariance at that point.
    """
    T, p = y.shape[1], y.shape[2]
    n = G.shape[-1]
    bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
    L0 = C0[_pick(C0.shape[0], b)]
    pre0 = np.zeros((max(L0.shape[1], n), n))
    pre0[: L0.shape[1]] = L0.T
    _triangularize(pre0)
    U = np.ascontiguousarray(pre0[:n])
    m = m0[_pick(m0.shape[0], b)].copy()
    total = 0.0
    k = W.shape[3]
    obs = np.empty(p, dtype=np.int64)
    for t in range(T):
        calm = True
        Gt = np.ascontiguousarray(G[bG, t if TG > 1 else 0])
        Wt = W[bW, t if TW > 1 else 0]
        a = Gt @ m
        pre = np.empty((n + k, n))
        pre[:n] = U @ np.ascontiguousarray(Gt.T)
        pre[n:] = Wt.T
        _triangularize(pre)
        U = np.ascontiguousarray(pre[:n])
        q = 0
        for i in range(p):
            if not math.isnan(y[b, t, i]):
                obs[q] = i
                q += 1
        calm = q > 0  # a step without observations says nothing about the prior
        if q > 0:
            Ft = F[bF, t if TF > 1 else 0]
            sdt = sd[bsd, t if TV > 1 else 0]
            Fo = np.empty((q, n))
            e = np.empty(q)
            for j in range(q):
                Fo[j] = Ft[obs[j]]
                e[j] = y[b, t, obs[j]]
            e -= Fo @ a
            arr = np.zeros((q + n, q + n))
            for j in range(q):
                arr[j, j] = sdt[obs[j]]
            arr[q:, :q] = U @ np.ascontiguousarray(Fo.T)
            arr[q:, q:] = U
            _triangularize(arr)
            Rr = arr
            z = np.empty(q)  # forward substitution with the lower factor U_Q'
            logdet = 0.0
            for j in range(q):
                acc = e[j]
                for i in range(j):
                    acc -= Rr[i, j] * z[i]
                z[j] = acc / Rr[j, j]
                logdet += math.log(abs(Rr[j, j]))
                Qjj = 0.0
                for i in range(j + 1):
                    Qjj += Rr[i, j] * Rr[i, j]
                h = sdt[obs[j]] * sdt[obs[j]]
                if not (Qjj - h <= switch_ratio * h):
                    calm = False
            a = a + np.ascontiguousarray(Rr[:q, q:].T) @ z
            U = np.ascontiguousarray(Rr[q:, q:])
            total += -0.5 * (q * LOG_2PI + 2.0 * logdet + np.sum(z * z))
        m = a
        if math.isnan(total):
            return -np.inf, T, m, U
        if calm and t < T - 1:
            return total, t + 1, m, U
    return total, T, m, U


@_inline
def _probe_ratio(y, F, G, W, sd, m0, C0, b, work):
    r"""Largest :math:`z^\top R_1 z / h` of the first prediction from the prior.

    Above :data:`CANCELLATION_LIMIT` the prior is vague against the noise and the covariance
    form would lose digits from the start: the square-root route then runs first.
    """
    m, C, a, R, GC, u = work
    n, p = G.shape[-1], y.shape[2]
    bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
    L0 = C0[_pick(C0.shape[0], b)]
    for r in range(n):
        for c in range(n):
            acc = 0.0
            for j in range(L0.shape[1]):
                acc += L0[r, j] * L0[c, j]
            C[r, c] = acc
    G_cnt, G_idx, G_val = _sparse(G[bG, 0])
    WW = np.empty((n, n))
    _noise_cov(W, bW, 0, WW)
    _predict(G_cnt, G_idx, G_val, m0[_pick(m0.shape[0], b)], C, WW, a, R, GC)
    Fb = F[bF, 0]
    worst = 0.0
    for i in range(p):
        zRz = 0.0
        for r in range(n):
            if Fb[i, r] != 0.0:
                for c in range(n):
                    zRz += Fb[i, r] * R[r, c] * Fb[i, c]
        h = sd[bsd, 0, i] * sd[bsd, 0, i]
        if zRz > worst * h:
            worst = zRz / h if h > 0.0 else np.inf
    return worst


@_jit
def _headed(y, F, G, W, sd, m0, C0, Q, b, store, rec, work, dw, spec):
    """Log-likelihood of member ``b`` when the covariance form alone would lose digits.

    Square-root steps while the prior dominates the noise (the ill-conditioned start of a
    vague prior), then the covariance form from the square-root filter's moments; if that
    meets cancellation again later, the square-root filter runs to the end.

    With ``store``, the record of the backward pass is that of the covariance form: from the
    prior for the square-root steps, then from the square-root filter's moments. The
    gradient is therefore that of the covariance-form recursion, whose value differs from
    the returned one by the covariance form's round-off only.
    """
    T, n = y.shape[1], G.shape[-1]
    m, C = work[0], work[1]
    head, t0, m_s, U = _sqrt_head(y, F, G, W, sd, m0, C0, b, SWITCH_RATIO)
    if not (head > -np.inf):
        return -np.inf
    if store:
        first = _forward(y, F, G, W, sd, m0, C0, Q, b, True, rec, work, 0, t0, dw, False, spec)[0]
        if not (first > -np.inf):
            return -np.inf  # no finite record for the gradient
    if t0 >= T:
        return head
    for r in range(n):
        m[r] = m_s[r]
        for c in range(n):
            acc = 0.0
            for k in range(n):
                acc += U[k, r] * U[k, c]
            C[r, c] = acc
    rest, worst, _, _, _ = _forward(
        y, F, G, W, sd, m0, C0, Q, b, store, rec, work, t0, T, dw, False, spec
    )
    if worst > CANCELLATION_LIMIT and rest > -np.inf:
        return _sqrt_head(y, F, G, W, sd, m0, C0, b, np.inf)[0]
    return head + rest


@_jit
def _filter_member(y, F, G, W, sd, m0, C0, Q, b, store, rec, work, dw, spec):
    """Log-likelihood of member ``b`` (and the record): (value, t_end, n_inf, t_ss).

    The covariance form, with the square-root route for the value where it would lose
    digits (:func:`_headed`): chosen up front when the first prediction is ill-conditioned,
    else after the fact when cancellation is met later. Exact diffuse starts (``Q`` with
    d > 0 columns) remove the vague prior, the usual source of cancellation, and always
    take the covariance form.
    """
    T = y.shape[1]
    proper = Q.shape[2] == 0
    if proper and _probe_ratio(y, F, G, W, sd, m0, C0, b, work) > CANCELLATION_LIMIT:
        return _headed(y, F, G, W, sd, m0, C0, Q, b, store, rec, work, dw, spec), 0, 0, T
    total, worst, t_end, n_inf, t_ss = _forward(
        y, F, G, W, sd, m0, C0, Q, b, store, rec, work, 0, T, dw, True, spec
    )
    if proper and worst > CANCELLATION_LIMIT and total > -np.inf:
        n = G.shape[-1]
        no_rec = (
            np.empty((1, 1, 1)),
            np.empty((1, 1)),
            np.empty((1, 1)),
            np.empty((1, n)),
            np.empty((1, n, n)),
        )
        total = _headed(y, F, G, W, sd, m0, C0, Q, b, False, no_rec, work, dw, spec)
    return total, t_end, n_inf, t_ss


@_jit
def _value_pass(y, F, G, W, sd, m0, C0, Q, spec):
    """Log-likelihood (B,) and first steady step (B,) of every member, with no record."""
    B, T, p = y.shape
    n = G.shape[-1]
    out = np.zeros(B)
    t_ss = np.empty(B, dtype=np.int64)
    work = (
        np.empty(n),
        np.empty((n, n)),
        np.empty(n),
        np.empty((n, n)),
        np.empty((n, n)),
        np.empty(n),
    )
    rec = (
        np.empty((1, 1, 1)),
        np.empty((1, 1)),
        np.empty((1, 1)),
        np.empty((1, n)),
        np.empty((1, n, n)),
    )
    dw = _diffuse_work(n, Q.shape[2], 1, 1, False)  # no record: value only
    for b in range(B):
        value, _, _, t_ss[b] = _filter_member(
            y, F, G, W, sd, m0, C0, Q, b, False, rec, work, dw, spec
        )
        out[b] = value
    return out, t_ss


@_jit
def loglik_kernel(y, F, G, W, sd, m0, C0, Q):
    """Log-likelihood per batch member, shape (B,); -inf where a forecast variance is not > 0.

    ``Q`` (B, n, d): the orthonormal diffuse factor at step 1 (then ``m0``, ``C0`` are the
    predicted moments of step 1, see ``_forward``), or d = 0 for a proper prior.
    """
    return _value_pass(y, F, G, W, sd, m0, C0, Q, np.zeros(2, dtype=np.int64))[0]


@_jit
def loglik_into(y, F, G, W, sd, m0, C0, Q, spec, out):
    """:func:`loglik_kernel` writing into ``out`` (B,), with the sandwiches ``spec``.

    ``spec`` (int64, 2): see ``_forward``; zeros for the general routine.
    """
    out[:] = _value_pass(y, F, G, W, sd, m0, C0, Q, spec)[0]


@_jit
def steady_start(y, F, G, W, sd, m0, C0, Q):
    """First steady step of every batch member (T when the recursion never settles).

    For tests and diagnostics: the steps from there on reuse the last gains (``_forward``).
    """
    return _value_pass(y, F, G, W, sd, m0, C0, Q, np.zeros(2, dtype=np.int64))[1]


@_inline
def _pull_back_mean(H_cnt, H_idx, H_val, v, x):
    """``v = G' v`` in place through the rows of G' (``x`` scratch)."""
    n = v.shape[0]
    for k in range(n):
        acc = 0.0
        for j in range(H_cnt[k]):
            acc += H_val[k, j] * v[H_idx[k, j]]
        x[k] = acc
    for k in range(n):
        v[k] = x[k]


@_inline
def _pull_back(H_cnt, H_idx, H_val, M, X):
    """``M = G' M G`` in place for a symmetric ``M``, through the rows of G' (``X`` scratch)."""
    _sandwich(H_cnt, H_idx, H_val, M, X, M, M, False)


@_inline
def _noise_adjoint(Rbar, L, out, scale):
    """``out += scale * Rbar L`` over the non-zero columns of the noise factor ``L`` (n, k)."""
    n = L.shape[0]
    for k in range(L.shape[1]):
        nonzero = False
        for r in range(n):
            if L[r, k] != 0.0:
                nonzero = True
                break
        if nonzero:
            for r in range(n):
                s = 0.0
                for c in range(n):
                    s += Rbar[r, c] * L[c, k]
                out[r, k] += scale * s


@_jit
def loglik_grad_kernel(y, F, G, W, sd, m0, C0, Q, g, need):
    """Log-likelihood (B,) and gradients of ``sum_b g[b] * loglik[b]`` w.r.t. the inputs.

    ``need`` (8 booleans, order y, F, G, W, sd, m0, C0, Q) skips the gradients nobody uses.
    Returns ``(loglik, gy, gF, gG, gW, gsd, gm0, gC0, gQ)``, gradients shaped like the inputs
    (zeros where skipped). A batch member whose log-likelihood is not finite
    gets zero gradients (the log-likelihood is -inf there; NUTS rejects the point).
    In the diffuse mode (``Q`` with d > 0 columns, see ``_forward``) ``gC0`` is the gradient
    with respect to the covariance :math:`P_{*,1}` (symmetric), not a factor.
    """
    out = grad_outputs(y, F, G, W, sd, m0, C0, Q)
    loglik_grad_into(y, F, G, W, sd, m0, C0, Q, g, need, np.zeros(2, dtype=np.int64), out)
    return out


@_jit
def grad_outputs(y, F, G, W, sd, m0, C0, Q):
    """Uninitialised outputs of :func:`loglik_grad_into`: loglik (B,), then one per input."""
    return (
        np.empty(y.shape[0]),
        np.empty(y.shape),
        np.empty(F.shape),
        np.empty(G.shape),
        np.empty(W.shape),
        np.empty(sd.shape),
        np.empty(m0.shape),
        np.empty(C0.shape),
        np.empty(Q.shape),
    )


@_jit
def loglik_grad_into(y, F, G, W, sd, m0, C0, Q, g, need, spec, out):
    """:func:`loglik_grad_kernel` writing into ``out`` = (loglik, gy, ..., gQ), C-contiguous.

    Every output is overwritten (zeros where a gradient is skipped). ``spec`` (int64, 2):
    the straight-line sandwiches of a constant G (see ``_forward``), or zeros.
    """
    B, T, p = y.shape
    n = G.shape[-1]
    d = Q.shape[2]
    diffuse = d > 0
    need_y, need_F, need_G, need_W, need_sd, need_m0, need_C0, need_Q = (
        need[0],
        need[1],
        need[2],
        need[3],
        need[4],
        need[5],
        need[6],
        need[7],
    )
    lls, gy, gF, gG, gW, gsd, gm0, gC0, gQ = out
    lls[:] = 0.0
    gy[...] = 0.0
    gF[...] = 0.0
    gG[...] = 0.0
    gW[...] = 0.0
    gsd[...] = 0.0
    gm0[...] = 0.0
    gC0[...] = 0.0
    gQ[...] = 0.0
    keep_states = need_F or need_G
    # Per-step storage for the backward pass.
    us = np.empty((T, p, n))
    fs = np.empty((T, p))
    vs = np.empty((T, p))
    ms = np.empty((T + 1, n)) if keep_states else np.empty((1, n))
    Cs = np.empty((T + 1, n, n)) if keep_states else np.empty((1, n, n))
    dw = _diffuse_work(n, d, T, p, keep_states)
    kinds, Ks, finfs, Pinfs = dw[5], dw[6], dw[7], dw[8]
    a = np.empty(n)
    R = np.empty((n, n))
    GC = np.empty((n, n))
    u = np.empty(n)
    C = np.empty((n, n))
    m = np.empty(n)
    work = (m, C, a, R, GC, u)
    rec = (us, fs, vs, ms, Cs)
    abar = np.empty(n)
    Rbar = np.empty((n, n))
    Ibar = np.zeros((n, n))
    X = np.empty((n, n))
    ubar = np.empty(n)
    Ru = np.empty(n)
    Kbar = np.empty(n)
    a_hist = np.empty((p + 1, n))
    R_hist = np.empty((p + 1, n, n))
    I_hist = np.empty((p + 1 if diffuse and need_F else 1, n, n))
    Pinf = np.empty((n, n))
    GP = np.empty((n, n))
    no_WW = np.zeros((n, n))
    WW = np.empty((n, n))
    Rsum = np.empty((n, n))
    w_rows = np.empty(n, dtype=np.int64)
    ubar_acc = np.empty((p, n))  # adjoints of the gains reused by the steady steps
    fbar_acc = np.empty(p)
    pull_back_at = spec[1] if G.shape[1] == 1 and G.shape[0] == 1 else 0
    for b in range(B):
        gb = g[_pick(g.shape[0], b)]
        bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
        bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
        total, t_end, n_inf, t_ss = _filter_member(
            y, F, G, W, sd, m0, C0, Q, b, True, rec, work, dw, spec
        )
        lls[b] = total
        if not math.isfinite(total) or gb == 0.0:
            continue
        # ---- backward ----
        abar[:] = 0.0
        Rbar[:, :] = 0.0
        Rsum[:, :] = 0.0
        n_rows = 0  # rows of L_W with a non-zero (constant W)
        for r in range(n):
            for k in range(W.shape[3]):
                if W[bW, 0, r, k] != 0.0:
                    w_rows[n_rows] = r
                    n_rows += 1
                    break
        Ibar[:, :] = 0.0
        ubar_acc[:, :] = 0.0
        fbar_acc[:] = 0.0
        # Patterns of the last step, made before the loop: arrays first bound inside a loop
        # are reference-counted at every iteration.
        G_cnt, G_idx, G_val = _sparse(G[bG, T - 1 if TG > 1 else 0])
        # Rows of G' (columns of G): the backward products gather instead of scatter.
        H_cnt, H_idx, H_val = _sparse(G[bG, T - 1 if TG > 1 else 0].T)
        F_cnt, F_idx, F_val = _sparse(F[bF, T - 1 if TF > 1 else 0])
        for t in range(T - 1, -1, -1):
            tG, tF, tW, tV = (
                t if TG > 1 else 0,
                t if TF > 1 else 0,
                t if TW > 1 else 0,
                t if TV > 1 else 0,
            )
            in_diffuse = t < t_end
            predicted = not (diffuse and t == 0)  # the diffuse start is step 1's prediction
            if t < T - 1:
                if TG > 1:
                    _sparse_into(G[bG, tG], G_cnt, G_idx, G_val)
                    _sparse_into(G[bG, tG].T, H_cnt, H_idx, H_val)
                if TF > 1:
                    _sparse_into(F[bF, tF], F_cnt, F_idx, F_val)
            if t >= t_ss:
                # Steady step (see ``_forward``): a += u v / f with the gains of step t_ss - 1,
                # whose adjoints are summed here; a = G m.
                for i in range(p - 1, -1, -1):
                    inv = 1.0 / fs[t, i]  # one division per scalar
                    vf = vs[t, i] * inv
                    au = 0.0
                    for r in range(n):
                        au += abar[r] * us[t, i, r]
                        ubar_acc[i, r] += abar[r] * vf
                    vbar = (au - vs[t, i]) * inv
                    fbar_acc[i] += -au * vf * inv - 0.5 * (inv - vf * vf)
                    if need_y:
                        gy[b, t, i] += gb * vbar
                    for j in range(F_cnt[i]):
                        abar[F_idx[i, j]] -= vbar * F_val[i, j]
                _pull_back_mean(H_cnt, H_idx, H_val, abar, ubar)
                continue
            # Informative scalars of this step are Ks[first_inf:n_inf].
            first_inf = n_inf
            if in_diffuse:
                for i in range(p):
                    if not math.isnan(y[b, t, i]) and kinds[t, i] == INFORMATIVE:
                        first_inf -= 1
            if need_F:
                # Re-run the step to recover a and R (and P_inf) before every update.
                if predicted:
                    _noise_cov(W, bW, tW, WW)
                    _predict(G_cnt, G_idx, G_val, ms[t], Cs[t], WW, a, R, GC)
                    if in_diffuse:
                        _predict(G_cnt, G_idx, G_val, ms[t], Pinfs[t], no_WW, u, Pinf, GP)
                else:
                    _copy_state(ms[t], Cs[t], a, R)
                    Pinf[:, :] = Pinfs[t]
                a_hist[0] = a
                R_hist[0] = R
                if in_diffuse:
                    I_hist[0] = Pinf
                j = 0
                k_inf = first_inf
                for i in range(p):
                    if not math.isnan(y[b, t, i]):
                        kind = kinds[t, i] if in_diffuse else 1
                        if kind == INFORMATIVE:
                            replay_informative(
                                a, R, Pinf, Ks[k_inf], us[t, i], fs[t, i], finfs[k_inf], vs[t, i]
                            )
                            k_inf += 1
                        elif kind != SKIPPED:
                            h = sd[bsd, tV, i] ** 2
                            _update(R, a, F_cnt, F_idx, F_val, i, y[b, t, i], h, u)
                        j += 1
                        a_hist[j] = a
                        R_hist[j] = R
                        if in_diffuse:
                            I_hist[j] = Pinf
            j_obs = 0
            for i in range(p):
                if not math.isnan(y[b, t, i]):
                    j_obs += 1
            for i in range(p - 1, -1, -1):
                if math.isnan(y[b, t, i]):
                    continue
                j_obs -= 1
                kind = kinds[t, i] if in_diffuse else 1
                if kind == SKIPPED:
                    continue
                # u of this scalar is us[t, i] (indexed in place: a view per scalar costs
                # reference counting at every step)
                f = fs[t, i]
                v = vs[t, i]
                cnt = F_cnt[i]
                if kind == INFORMATIVE:
                    n_inf -= 1
                    Ki = Ks[n_inf]
                    f_inf = finfs[n_inf]
                    vbar, fbar, finf_bar = informative_adjoint(
                        abar,
                        Rbar,
                        Ibar,
                        Ki,
                        us[t, i],
                        f,
                        f_inf,
                        v,
                        F_cnt,
                        F_idx,
                        F_val,
                        i,
                        Kbar,
                        ubar,
                    )
                    if need_y:
                        gy[b, t, i] += gb * vbar
                    if need_sd:
                        gsd[bsd, tV, i] += gb * fbar * 2.0 * sd[bsd, tV, i]
                    if need_F:
                        a_before = a_hist[j_obs]
                        R_before = R_hist[j_obs]
                        I_before = I_hist[j_obs]
                        for c in range(n):
                            s = -vbar * a_before[c] + fbar * us[t, i, c] + finf_bar * f_inf * Ki[c]
                            for r in range(n):
                                s += R_before[c, r] * ubar[r] + I_before[c, r] * Kbar[r]
                            gF[bF, tF, i, c] += gb * s
                    continue
                # a' = a + u v / f
                inv = 1.0 / f  # one division per scalar
                vf = v * inv
                au = 0.0
                for r in range(n):
                    au += abar[r] * us[t, i, r]
                vbar = au * inv
                fbar = -au * vf * inv
                for r in range(n):
                    ubar[r] = abar[r] * vf
                # R' = R - u u' / f
                uRu = 0.0
                for r in range(n):
                    s = 0.0
                    for c in range(n):
                        s += Rbar[r, c] * us[t, i, c]
                    Ru[r] = s
                    uRu += us[t, i, r] * s
                for r in range(n):
                    ubar[r] -= 2.0 * inv * Ru[r]
                fbar += uRu * inv * inv
                # loglik term
                fbar += -0.5 * (inv - vf * vf)
                vbar += -vf
                if t == t_ss - 1:  # these gains were reused by the steady steps
                    fbar += fbar_acc[i]
                    for r in range(n):
                        ubar[r] += ubar_acc[i, r]
                # v = y - z.a ; f = z.u + h ; u = R z
                if need_y:
                    gy[b, t, i] += gb * vbar
                for j in range(cnt):
                    abar[F_idx[i, j]] -= vbar * F_val[i, j]
                for j in range(cnt):
                    ubar[F_idx[i, j]] += fbar * F_val[i, j]
                if need_sd:
                    gsd[bsd, tV, i] += gb * fbar * 2.0 * sd[bsd, tV, i]
                if need_F:
                    a_before = a_hist[j_obs]
                    R_before = R_hist[j_obs]
                    for c in range(n):
                        s = -vbar * a_before[c] + fbar * us[t, i, c]
                        for r in range(n):
                            s += R_before[c, r] * ubar[r]
                        gF[bF, tF, i, c] += gb * s
                for j in range(cnt):
                    c = F_idx[i, j]
                    zc = 0.5 * F_val[i, j]
                    for r in range(n):
                        Rbar[r, c] += ubar[r] * zc
                        Rbar[c, r] += ubar[r] * zc
            if not predicted:
                continue
            # prediction: a = G m, R = G C G' + W W' (and P_inf = G P_inf G' while diffuse)
            if need_W and TW > 1:
                _noise_adjoint(Rbar, W[bW, tW], gW[bW, tW], 2.0 * gb)
            elif need_W:  # constant W: W_bar = 2 (sum_t R_bar_t) L_W, multiplied once
                for q in range(n_rows):  # only the rows that meet a non-zero of L_W
                    r = w_rows[q]
                    for c in range(n):
                        Rsum[r, c] += Rbar[r, c]
            if need_G:
                _noise_cov(W, bW, tW, WW)
                _predict(G_cnt, G_idx, G_val, ms[t], Cs[t], WW, a, R, GC)
                if in_diffuse:
                    _predict(G_cnt, G_idx, G_val, ms[t], Pinfs[t], no_WW, u, Pinf, GP)
                for r in range(n):
                    for c in range(n):
                        s = abar[r] * ms[t][c]
                        for k in range(n):
                            s += 2.0 * Rbar[r, k] * GC[k, c]
                            if in_diffuse:
                                s += 2.0 * Ibar[r, k] * GP[k, c]
                        gG[bG, tG, r, c] += gb * s
            # m_bar = G' a_bar ; C_bar = G' R_bar G ; (P_inf)_bar = G' (P_inf)_bar G
            _pull_back_mean(H_cnt, H_idx, H_val, abar, ubar)
            if pull_back_at != 0:  # straight-line, in place (bitwise the same)
                call_address(pull_back_at, Rbar.ctypes.data, Rbar.ctypes.data, 0)
                if in_diffuse:
                    call_address(pull_back_at, Ibar.ctypes.data, Ibar.ctypes.data, 0)
            else:
                _pull_back(H_cnt, H_idx, H_val, Rbar, X)
                if in_diffuse:
                    _pull_back(H_cnt, H_idx, H_val, Ibar, X)
        if need_W and TW == 1:
            L = W[bW, 0]
            for r in range(n):
                for k in range(L.shape[1]):
                    s = 0.0
                    for q in range(n_rows):  # (Rsum L)[r, k], Rsum symmetric
                        c = w_rows[q]
                        s += Rsum[c, r] * L[c, k]
                    gW[bW, 0, r, k] += 2.0 * gb * s
        if need_m0:
            for r in range(n):
                gm0[bm0, r] += gb * abar[r]
        if need_C0:
            if diffuse:
                gC0[bC0] += gb * Rbar
            else:
                L0 = C0[bC0]
                gC0[bC0] += gb * 2.0 * (Rbar @ L0)
        if need_Q:
            bQ = _pick(Q.shape[0], b)
            gQ[bQ] += gb * 2.0 * (Ibar @ Q[bQ])
