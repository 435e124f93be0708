r"""Fused numba FFBS: filtered draws, one joint smoothed path and the per-step log-likelihood.

What :func:`pymc_dlm.sample_states` runs for every posterior draw when the fused route applies
(diagonal observation covariance, float64): the same quantities as the scans of
:mod:`pymc_dlm.kalman.sampler` (the definition, which every other case runs), in one compiled
loop that numba caches on disk, so a new model costs no compilation.

Forward pass (R ``dlm`` timing, prior on :math:`\theta_0`): the univariate covariance filter of
:mod:`pymc_dlm.kalman.fused.kernels` (exact diffuse steps of
:mod:`pymc_dlm.kalman.fused.diffuse` while :math:`P_\infty \neq 0`), storing the filtered
moments :math:`m_t, C_t` and the diffuse factor :math:`B_t`.

Filtered draws: :math:`\theta_t = m_t + L_t \varepsilon_t`, :math:`L_t L_t^\top = C_t`; states
still diffuse at :math:`t` (nonzero rows of :math:`B_t`) have an improper filtered
distribution and are NaN.

Backward sampling (Carter & Kohn 1994; Frühwirth-Schnatter 1994): :math:`\theta_T \sim
N(m_T, C_T)`, then for :math:`t = T-1, \dots, 1` the moments of
:math:`\theta_t | \theta_{t+1} = x, y_{1:t}` are obtained by conditioning
:math:`N(m_t, C_t)` (diffuse factor :math:`B_t`) on the :math:`n` scalars
:math:`x_i = G_{t+1,i}\,\theta_t + w_i` one at a time, with the same exact scalar update as
the filter. When :math:`W_{t+1}` is diagonal the :math:`w_i` are independent noises of
variance :math:`W_{t+1,ii}` (zero allowed); otherwise the state is augmented to
:math:`(\theta_t, w_{t+1})` with covariance :math:`\mathrm{diag}(C_t, W_{t+1})` and the
scalars are noiseless. This is exact for a singular :math:`W` and through the diffuse period,
where the next state pins the diffuse directions down (when :math:`G_{t+1} B_t` has full
column rank; otherwise the path is NaN). Then :math:`\theta_t = \mu_t + L \varepsilon_t`.

Factors :math:`L` of the (positive semi-definite) covariances are lower Cholesky factors
computed without pivoting; a pivot not above :math:`n\,\epsilon\,\max_j S_{jj}` (LAPACK's
default rank tolerance for ``pstrf``) is round-off of an exactly singular direction (states
that the conditioning determines) and its column is set to zero. Nothing is added to any
diagonal.

References
----------
Carter, C. K. and Kohn, R. (1994). On Gibbs sampling for state space models. *Biometrika* 81,
541–553. Frühwirth-Schnatter, S. (1994). Data augmentation and dynamic linear models. *J. Time
Series Analysis* 15, 183–202. Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by
State Space Methods*, 2nd ed., §4.3, §5.2, §6.4.
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.diffuse import any_nonzero, diffuse_update, predict_factor
from pymc_dlm.kalman.fused.forward import (
    _copy_matrix,
    _copy_state,
    _inline,
    _jit,
    _layout,
    _noise_cov,
    _pick,
    _predict,
    _sparse,
    _sparse_into,
    _update,
)

__all__ = ["ffbs_kernel", "ffbs_into", "forecast_into"]

_EPS = np.finfo(np.float64).eps


@_inline
def _psd_factor(S, L):
    r"""Lower factor ``L`` with :math:`L L^\top = S` for a positive semi-definite ``S``.

    Cholesky without pivoting; a pivot not above :math:`n\,\epsilon\,\max_j S_{jj}` gives a
    zero column (see the module docstring).
    """
    n = S.shape[0]
    scale = 0.0
    for j in range(n):
        scale = max(scale, S[j, j])
    tol = n * _EPS * scale
    for j in range(n):
        s = S[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        if not (s > tol):
            for i in range(n):
                L[i, j] = 0.0
            continue
        piv = math.sqrt(s)
        L[j, j] = piv
        for i in range(j):
            L[i, j] = 0.0
        for i in range(j + 1, n):
            acc = S[i, j]
            for k in range(j):
                acc -= L[i, k] * L[j, k]
            L[i, j] = acc / piv


@_inline
def _draw(mean, L, eps, out):
    """``out = mean + L eps`` (first ``len(out)`` entries of ``mean``)."""
    n = out.shape[0]
    for r in range(n):
        s = mean[r]
        for c in range(r + 1):
            s += L[r, c] * eps[c]
        out[r] = s


@_jit
def _filter_states(y, F, G, W, sd, m0, C0, Q, b, ms, Cs, Bs, ll_t):
    """Forward pass of member ``b``: returns (diffuse steps, all forecast variances > 0).

    Fills ``ms``, ``Cs`` (filtered moments), ``Bs`` (diffuse factor, while diffuse) and
    ``ll_t``. The number of diffuse steps is T + 1 when the diffuse part is left at the end.
    """
    T, p = y.shape[1], y.shape[2]
    n = G.shape[-1]
    d = Q.shape[2]
    bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
    bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
    m = np.empty(n)
    C = np.empty((n, n))
    a = np.empty(n)
    R = np.empty((n, n))
    GC = np.empty((n, n))
    u = np.empty(n)
    K = np.empty(n)
    ud = np.empty(max(d, 1))
    Bv = np.empty(n)
    Bf = Q[_pick(Q.shape[0], b)].copy()
    Bt = np.empty((n, d))
    diffuse = d > 0
    active = diffuse
    c0 = C0.shape[2]
    for r in range(n):
        m[r] = m0[bm0, r]
        for c in range(n):
            if diffuse:
                C[r, c] = C0[bC0, r, c]
            else:
                acc = 0.0
                for j in range(c0):
                    acc += C0[bC0, r, j] * C0[bC0, c, j]
                C[r, c] = acc
    G_cnt, G_idx, G_val = _sparse(G[bG, 0])
    F_cnt, F_idx, F_val = _sparse(F[bF, 0])
    WW = np.empty((n, n))
    _noise_cov(W, bW, 0, WW)
    t_end = 0
    ok = True
    for t in range(T):
        if TG > 1:
            _sparse_into(G[bG, t], G_cnt, G_idx, G_val)
        if TF > 1:
            _sparse_into(F[bF, t], F_cnt, F_idx, F_val)
        if diffuse and t == 0:
            _copy_state(m, C, a, R)  # the start is already the prediction of step 1
        else:
            if TW > 1:
                _noise_cov(W, bW, t, WW)
            _predict(G_cnt, G_idx, G_val, m, C, WW, a, R, GC)
            if active:
                predict_factor(G_cnt, G_idx, G_val, Bf, Bt)
                _copy_matrix(Bt, Bf)
        tV = t if TV > 1 else 0
        step = 0.0
        for i in range(p):
            yi = y[b, t, i]
            if math.isnan(yi):
                continue
            h = sd[bsd, tV, i] * sd[bsd, tV, i]
            if active:
                ll = diffuse_update(R, a, Bf, F_cnt, F_idx, F_val, i, yi, h, u, K, ud, Bv)[4]
            else:
                ll = _update(R, a, F_cnt, F_idx, F_val, i, yi, h, u)[2]
            if not (ll > -np.inf):
                ok = False
            step += ll
        ll_t[t] = step
        for r in range(n):
            ms[t, r] = a[r]
            for c in range(n):
                Cs[t, r, c] = R[r, c]
        if active:
            Bs[t] = Bf
            if not any_nonzero(Bf):
                active = False
                t_end = t + 1
        _copy_state(a, R, m, C)  # copied, not swapped (see ``forward._copy_state``)
    if active:
        t_end = T + 1  # still diffuse at the end: the last state is improper
    return t_end, ok


@_jit
def _backward_path(G, W, b, ms, Cs, Bs, t_end, eps, path):
    """Backward sampling of member ``b`` from the stored filtered moments (module docstring)."""
    T, n = ms.shape[0], ms.shape[1]
    d = Bs.shape[2]
    bG, bW = _pick(G.shape[0], b), _pick(W.shape[0], b)
    TG, TW = G.shape[1], W.shape[1]
    k = W.shape[3]
    L = np.zeros((n, n))
    if t_end > T:
        path[:, :] = np.nan
        return
    _psd_factor(Cs[T - 1], L)
    _draw(ms[T - 1], L, eps[T - 1], path[T - 1])
    N = 2 * n
    a = np.empty(N)
    P = np.empty((N, N))
    Bz = np.empty((N, d))
    u = np.empty(N)
    K = np.empty(N)
    ud = np.empty(max(d, 1))
    Bv = np.empty(N)
    WW = np.empty((n, n))
    H_cnt = np.zeros(n, dtype=np.int64)
    H_idx = np.zeros((n, n + 1), dtype=np.int64)
    H_val = np.zeros((n, n + 1))
    G_cnt, G_idx, G_val = _sparse(G[bG, 0])
    tG_now, tW_now = -1, -1
    diagonal = True
    for t in range(T - 2, -1, -1):
        tG = t + 1 if TG > 1 else 0
        tW = t + 1 if TW > 1 else 0
        if tG != tG_now:
            _sparse_into(G[bG, tG], G_cnt, G_idx, G_val)
            for i in range(n):
                c = G_cnt[i]
                H_idx[i, :c] = G_idx[i, :c]
                H_val[i, :c] = G_val[i, :c]
                H_idx[i, c] = n + i
                H_val[i, c] = 1.0
                H_cnt[i] = c + 1
            tG_now = tG
        if tW != tW_now:
            diagonal = True
            for r in range(n):
                for c in range(n):
                    s = 0.0
                    for j in range(k):
                        s += W[bW, tW, r, j] * W[bW, tW, c, j]
                    WW[r, c] = s
                    if r != c and s != 0.0:
                        diagonal = False
            tW_now = tW
        diffuse = t < t_end
        N = n if diagonal else 2 * n
        Pv = P[:N, :N]
        av = a[:N]
        Bd = Bz[:N, : (d if diffuse else 0)]
        for r in range(N):
            for c in range(N):
                Pv[r, c] = 0.0
            for j in range(Bd.shape[1]):
                Bd[r, j] = 0.0
        for r in range(n):
            av[r] = ms[t, r]
            for c in range(n):
                Pv[r, c] = Cs[t, r, c]
            for j in range(Bd.shape[1]):
                Bd[r, j] = Bs[t, r, j]
        if diagonal:
            for i in range(n):
                diffuse_update(
                    Pv, av, Bd, G_cnt, G_idx, G_val, i, path[t + 1, i], WW[i, i], u, K, ud, Bv
                )
        else:
            for r in range(n):
                av[n + r] = 0.0
                for c in range(n):
                    Pv[n + r, n + c] = WW[r, c]
            for i in range(n):
                diffuse_update(
                    Pv, av, Bd, H_cnt, H_idx, H_val, i, path[t + 1, i], 0.0, u, K, ud, Bv
                )
        if diffuse and any_nonzero(Bd):
            path[: t + 1, :] = np.nan  # G_{t+1} B_t rank deficient: not identified
            return
        _psd_factor(Pv[:n, :n], L)
        _draw(av, L, eps[t], path[t])


@_jit
def ffbs_into(y, F, G, W, sd, m0, C0, Q, eps_f, eps_s, filt, path, ll_t, lo, hi):
    """:func:`ffbs_kernel` for batch members ``lo .. hi - 1``, into given output arrays.

    Members are independent, so disjoint ranges can run in parallel threads (no GIL held).
    """
    T = y.shape[1]
    n = G.shape[-1]
    d = Q.shape[2]
    ms = np.empty((T, n))
    Cs = np.empty((T, n, n))
    Bs = np.zeros((T, n, d))
    L = np.zeros((n, n))
    for b in range(lo, hi):
        ll_t[b] = 0.0
        t_end, ok = _filter_states(y, F, G, W, sd, m0, C0, Q, b, ms, Cs, Bs, ll_t[b])
        if not ok:
            filt[b] = np.nan
            path[b] = np.nan
            continue
        for t in range(T):
            _psd_factor(Cs[t], L)
            _draw(ms[t], L, eps_f[b, t], filt[b, t])
            if t < t_end:
                for r in range(n):
                    for j in range(d):
                        if Bs[t, r, j] != 0.0:
                            filt[b, t, r] = np.nan
                            break
        _backward_path(G, W, b, ms, Cs, Bs, t_end, eps_s[b], path[b])


@_jit
def ffbs_kernel(y, F, G, W, sd, m0, C0, Q, eps_f, eps_s):
    """Filtered draws, joint smoothed paths (B, T, n) and per-step log-likelihoods (B, T).

    Inputs in the layout of :mod:`pymc_dlm.kalman.fused.kernels`.
    ``eps_f``, ``eps_s`` (B, T, n): standard normal draws for the filtered and the smoothed
    states. ``Q`` (B, n, d): the orthonormal diffuse factor at step 1 (then ``m0``, ``C0``
    are the predicted moments of step 1, ``C0`` a covariance), or d = 0 for a proper prior
    (``C0`` the prior's factor). A member whose forecast variance is not positive somewhere
    gets NaN draws.
    """
    B, T, _ = y.shape
    n = G.shape[-1]
    filt = np.empty((B, T, n))
    path = np.empty((B, T, n))
    ll_t = np.zeros((B, T))
    ffbs_into(y, F, G, W, sd, m0, C0, Q, eps_f, eps_s, filt, path, ll_t, 0, B)
    return filt, path, ll_t


@_jit
def forecast_into(y, F, G, W, sd, m0, C0, Q, Ff, Gf, Wf, sdf, eps, y_out, theta_out, lo, hi):
    r"""Forecast draws of members ``lo .. hi - 1``: future states and observations.

    The filter runs over ``y`` (inputs as in :func:`ffbs_kernel`), then
    :math:`\theta_T = m_T + L_T \varepsilon_0` and, for :math:`h = 1..H`,
    :math:`\theta_{T+h} = G_{T+h}\theta_{T+h-1} + L_{W,T+h}\eta_h`,
    :math:`y_{T+h} = F_{T+h}\theta_{T+h} + \sigma_{T+h} \odot \nu_h`, with the future
    matrices ``Ff`` (B, 1 or H, p, n), ``Gf``, ``Wf`` (the factor, k columns), ``sdf``
    (B, 1 or H, p). ``eps`` (B, n + H (k + p)) holds the standard normal draws
    :math:`(\varepsilon_0, \eta_1, \nu_1, \eta_2, \dots)`. A member whose filter fails or is
    still diffuse at T gets NaN.
    """
    T = y.shape[1]
    n = G.shape[-1]
    d = Q.shape[2]
    H, p = y_out.shape[1], y_out.shape[2]
    k = Wf.shape[3]
    ms = np.empty((T, n))
    Cs = np.empty((T, n, n))
    Bs = np.zeros((T, n, d))
    ll_t = np.empty(T)
    L = np.zeros((n, n))
    theta = np.empty(n)
    nxt = np.empty(n)
    for b in range(lo, hi):
        t_end, ok = _filter_states(y, F, G, W, sd, m0, C0, Q, b, ms, Cs, Bs, ll_t)
        if not ok or t_end > T:
            y_out[b] = np.nan
            theta_out[b] = np.nan
            continue
        _psd_factor(Cs[T - 1], L)
        _draw(ms[T - 1], L, eps[b, :n], theta)
        bG, bF, bW, bsd, TG, TF, TW, TV = _layout(Ff, Gf, Wf, sdf, b)
        pos = n
        for h in range(H):
            Gh = Gf[bG, h if TG > 1 else 0]
            Wh = Wf[bW, h if TW > 1 else 0]
            for r in range(n):
                s = 0.0
                for c in range(n):
                    s += Gh[r, c] * theta[c]
                for j in range(k):
                    s += Wh[r, j] * eps[b, pos + j]
                nxt[r] = s
            pos += k
            Fh = Ff[bF, h if TF > 1 else 0]
            sh = sdf[bsd, h if TV > 1 else 0]
            for r in range(n):
                theta[r] = nxt[r]
                theta_out[b, h, r] = nxt[r]
            for i in range(p):
                s = sh[i] * eps[b, pos + i]
                for c in range(n):
                    s += Fh[i, c] * theta[c]
                y_out[b, h, i] = s
            pos += p
