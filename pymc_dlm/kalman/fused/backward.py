r"""The backward pass over stored filtered moments: FFBS draws and the smoothed moments.

One recursion serves both :func:`~pymc_dlm.kalman.fused.states.ffbs_into` (a joint draw of
the state path) and :func:`~pymc_dlm.kalman.fused.moments.moments_into` (the smoothed means
and covariances of :func:`pymc_dlm.kalman_smoother`). Timing as in R ``dlm``: ``ms[t]``,
``Cs[t]`` are the filtered moments :math:`m_t, C_t` of :math:`\theta_t | y_{1:t}` and
``Bs[t]`` the filtered diffuse factor :math:`B_t` (:math:`P_{\infty,t} = B_t B_t^\top`)
while the exact diffuse period lasts (t < ``t_end``).

Step t conditions :math:`N(m_t, C_t)` (diffuse factor :math:`B_t`) on the :math:`n` scalars
:math:`x_i = G_{t+1,i}\,\theta_t + w_i` of :math:`\theta_{t+1} = x`, one at a time, with the
exact scalar update of the filter. When :math:`W_{t+1}` is diagonal the :math:`w_i` are
independent noises of variance :math:`W_{t+1,ii}` (zero allowed); otherwise the state is
augmented to :math:`(\theta_t, w_{t+1})` with covariance :math:`\mathrm{diag}(C_t, W_{t+1})`
and the scalars are noiseless. The result is :math:`\theta_t | \theta_{t+1} = x, y_{1:t}
\sim N(\mu_t(x), \Sigma_t)` with :math:`\mu_t(x) = c_t + J_t x` linear in x. This is exact
for a singular W and through the diffuse period, where the next state pins the diffuse
directions down (when :math:`G_{t+1} B_t` has full column rank; otherwise the pass stops and
reports the states as not identified).

* Sampling (Carter & Kohn 1994; Frühwirth-Schnatter 1994): :math:`\theta_T \sim N(m_T, C_T)`,
  then :math:`\theta_t = \mu_t(\theta_{t+1}) + L \varepsilon_t` with :math:`L L^\top =
  \Sigma_t`.
* Smoothing (Rauch, Tung & Striebel 1965, as conditioning): :math:`s_T = m_T`,
  :math:`S_T = C_T`, then :math:`s_t = \mu_t(s_{t+1})` and :math:`S_t = \Sigma_t + J_t
  S_{t+1} J_t^\top` (the law of total variance; :math:`\mu_t` is linear). :math:`J_t` is
  carried through the scalar updates: an update :math:`\mu \mathrel{+}= k\,(x_i - z_i^\top
  \mu)` maps :math:`J \mapsto J + k\,(e_i^\top - z_i^\top J)`.

Factors :math:`L` of the (positive semi-definite) covariances are lower Cholesky factors
computed without pivoting; a pivot not above :math:`n\,\epsilon\,\max_j S_{jj}` (LAPACK's
default rank tolerance for ``pstrf``) is round-off of an exactly singular direction (states
that the conditioning determines) and its column is set to zero. Nothing is added to any
diagonal.

References
----------
Carter, C. K. and Kohn, R. (1994). On Gibbs sampling for state space models. *Biometrika* 81,
541–553. Frühwirth-Schnatter, S. (1994). Data augmentation and dynamic linear models. *J. Time
Series Analysis* 15, 183–202. Rauch, H. E., Tung, F. and Striebel, C. T. (1965). Maximum
likelihood estimates of linear dynamic systems. *AIAA Journal* 3, 1445–1450. Särkkä, S. (2013).
*Bayesian Filtering and Smoothing*, §8.2. Durbin, J. and Koopman, S. J. (2012). *Time Series
Analysis by State Space Methods*, 2nd ed., §4.4, §5.2.
"""

import math

import numpy as np

from pymc_dlm.kalman.constants import INFORMATIVE, ORDINARY
from pymc_dlm.kalman.fused.backward_sqrt import (
    lower_of_upper,
    sqrt_back,
    sqrt_condition,
    upper_noise_factor,
)
from pymc_dlm.kalman.fused.diffuse import any_nonzero, diffuse_update
from pymc_dlm.kalman.fused.records import Sparse
from pymc_dlm.kalman.fused.steps import _inline, _jit, _pick, _sparse, _sparse_into

__all__ = ["backward_pass", "draw", "psd_factor"]

_EPS = np.finfo(np.float64).eps


@_inline
def psd_factor(S, L):
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
def draw(mean, L, eps, out):
    """``out = mean + L eps`` (first ``len(out)`` entries of ``mean``)."""
    n = out.shape[0]
    for r in range(n):
        s = mean[r]
        for c in range(r + 1):
            s += L[r, c] * eps[c]
        out[r] = s


@_inline
def _next_rows(Gp, Hp, n):
    r"""Rows ``[G_i, e_{n+i}]`` of the augmented observation of :math:`\theta_{t+1}` (``Hp``)."""
    G_cnt, G_idx, G_val = Gp.cnt, Gp.idx, Gp.val
    H_cnt, H_idx, H_val = Hp.cnt, Hp.idx, Hp.val
    for i in range(n):
        c = G_cnt[i]
        H_idx[i, :c] = G_idx[i, :c]
        H_val[i, :c] = G_val[i, :c]
        H_idx[i, c] = n + i
        H_val[i, c] = 1.0
        H_cnt[i] = c + 1


@_inline
def _noise_matrix(W_sqrt, bW, tW, WW):
    """``WW = W_sqrt W_sqrt^T`` (the covariance W) of step ``tW``; whether it is diagonal."""
    n, k = WW.shape[0], W_sqrt.shape[3]
    diagonal = True
    for r in range(n):
        for c in range(n):
            s = 0.0
            for j in range(k):
                s += W_sqrt[bW, tW, r, j] * W_sqrt[bW, tW, c, j]
            WW[r, c] = s
            if r != c and s != 0.0:
                diagonal = False
    return diagonal


@_inline
def _track_gain(J, zJ, kind, f, u, K, i):
    r"""``J += k (e_i^T - zJ)`` for the gain k of the scalar update just made."""
    N, n = J.shape
    if kind == INFORMATIVE:
        for r in range(N):
            kr = K[r]
            for c in range(n):
                J[r, c] -= kr * zJ[c]
            J[r, i] += kr
    elif kind == ORDINARY and f > 0.0 and math.isfinite(f):
        for r in range(N):
            kr = u[r] / f
            for c in range(n):
                J[r, c] -= kr * zJ[c]
            J[r, i] += kr


@_inline
def _condition_on_next(z, noise, x, state, scratch, gain, track):
    """Condition ``N(a, P; Bd)`` on the scalars ``x_i = z_i a + noise_i`` (module docstring).

    ``z``: the rows z_i (a :class:`~pymc_dlm.kalman.fused.records.Sparse`); ``state``:
    ``(P, a, Bd)``, updated in place; ``scratch``: ``(u, K, ud, Bv)`` of
    :func:`~pymc_dlm.kalman.fused.diffuse.diffuse_update`; ``gain``: ``(J, zJ)``, the map
    :math:`J_t` and its scratch, updated when ``track``.
    """
    P, a, Bd = state
    u, K, ud, Bv = scratch
    J, zJ = gain
    z_cnt, z_idx, z_val = z.cnt, z.idx, z.val
    n = x.shape[0]
    for i in range(n):
        if track:
            for c in range(n):
                s = 0.0
                for j in range(z_cnt[i]):
                    s += z_val[i, j] * J[z_idx[i, j], c]
                zJ[c] = s
        res = diffuse_update((P, a, Bd), z, i, x[i], noise[i], (u, K, ud, Bv))
        if track:
            _track_gain(J, zJ, res[0], res[1], u, K, i)


@_inline
def _sandwich_add(Sig, J, S, JS, out):
    """``out = Sig + J S J^T`` (n x n), exactly symmetric."""
    n = out.shape[0]
    for r in range(n):
        for c in range(n):
            s = 0.0
            for j in range(n):
                s += J[r, j] * S[j, c]
            JS[r, c] = s
    for r in range(n):
        for c in range(r + 1):
            s = Sig[r, c]
            for j in range(n):
                s += JS[r, j] * J[c, j]
            out[r, c] = s
            out[c, r] = s


@_inline
def _last_state(filtered, eps, out, L, smooth):
    """Step T: :math:`s_T = m_T`, :math:`S_T = C_T`, or a draw from :math:`N(m_T, C_T)`.

    The draw's factor is that of the square-root filter when step T was one of its steps.
    """
    ms, Cs, _, Us, n_sqrt = filtered
    path, Ss = out
    T = ms.shape[0]
    if smooth:
        path[T - 1] = ms[T - 1]
        Ss[T - 1] = Cs[T - 1]
        return
    if n_sqrt >= T:
        lower_of_upper(Us[T - 1], L)
    else:
        psd_factor(Cs[T - 1], L)
    draw(ms[T - 1], L, eps[T - 1], path[T - 1])


@_inline
def _sqrt_step(Gt, filtered, t, sb, scratch, eps, out, smooth):
    """Step t of the backward pass in square-root form (:mod:`.backward_sqrt`).

    ``scratch``: ``(mean, L, J, JS, Sig)``; the smoothed moments or the draw go to ``out``.
    """
    ms, Us = filtered[0], filtered[3]
    path, Ss = out
    mean, L, J, JS, Sig = scratch
    n = ms.shape[1]
    sqrt_condition(Gt, Us[t], ms[t], path[t + 1], sb, (mean, L, J), smooth)
    if not smooth:
        draw(mean, L, eps[t], path[t])
        return
    for r in range(n):
        path[t, r] = mean[r]
        for c in range(r + 1):
            acc = 0.0
            for k in range(c + 1):
                acc += L[r, k] * L[c, k]
            Sig[r, c] = acc
            Sig[c, r] = acc
    _sandwich_add(Sig, J, Ss[t + 1], JS, Ss[t])


@_inline
def _unidentified(out, t, smooth):
    """NaN rows from step ``t`` back to the first (the states are not identified there)."""
    path, Ss = out
    path[: t + 1, :] = np.nan
    if smooth:
        Ss[: t + 1] = np.nan


@_inline
def _load_step(filtered, t, state, J):
    """``state`` (P, a, Bd) = the filtered moments of step t, the noise block and J zero."""
    ms, Cs, Bs = filtered[0], filtered[1], filtered[2]
    P, a, Bd = state
    n = ms.shape[1]
    P[:, :] = 0.0
    Bd[:, :] = 0.0
    J[:, :] = 0.0
    for r in range(n):
        a[r] = ms[t, r]
        for c in range(n):
            P[r, c] = Cs[t, r, c]
        for j in range(Bd.shape[1]):
            Bd[r, j] = Bs[t, r, j]


@_jit
def backward_pass(G, W_sqrt, b, filtered, t_end, eps, out, smooth):
    """Backward pass of member ``b`` over its filtered moments: a draw or the smoothed moments.

    ``filtered``: ``(ms, Cs, Bs, Us, n_sqrt)``, the filtered means (T, n), covariances
    (T, n, n) and diffuse factors (T, n, d) (module docstring), and the upper factors
    (T, n, n) of the first ``n_sqrt`` covariances, those of the forward pass's square-root
    steps, whose backward steps are taken in square-root form too
    (:mod:`~pymc_dlm.kalman.fused.backward_sqrt`); ``out``: ``(path, Ss)``. Sampling
    (``smooth`` false): fills ``path`` (T, n) with a joint draw from the standard normals
    ``eps`` (T, n). Smoothing: fills ``path`` with :math:`s_t` and ``Ss`` (T, n, n) with
    :math:`S_t`. Returns whether every state was identified; if not, the rows from the
    unidentified step back to the first are NaN (as they are when the diffuse part is left
    at the end, ``t_end > T``).
    """
    ms, Bs, n_sqrt = filtered[0], filtered[2], filtered[4]
    path, Ss = out
    T, n, d = ms.shape[0], ms.shape[1], Bs.shape[2]
    if t_end > T:
        _unidentified(out, T - 1, smooth)
        return False
    L = np.zeros((n, n))
    _last_state(filtered, eps, out, L, smooth)
    sb = sqrt_back(n, W_sqrt.shape[3] if n_sqrt > 0 else 0)
    bG, bW = _pick(G.shape[0], b), _pick(W_sqrt.shape[0], b)
    a, P, Bz = np.empty(2 * n), np.empty((2 * n, 2 * n)), np.empty((2 * n, d))
    J = np.zeros((2 * n, n))
    scratch = (np.empty(2 * n), np.empty(2 * n), np.empty(max(d, 1)), np.empty(2 * n))
    WW, noise, zJ, JS = np.empty((n, n)), np.zeros(n), np.empty(n), np.empty((n, n))
    Hp = Sparse(cnt=np.zeros(n, dtype=np.int64), idx=np.zeros((n, n + 1), dtype=np.int64),
                val=np.zeros((n, n + 1)))  # fmt: skip
    Gp = _sparse(G[bG, 0])
    tG_now, tW_now, diagonal = -1, -1, True
    for t in range(T - 2, -1, -1):
        tG, tW = (t + 1 if G.shape[1] > 1 else 0), (t + 1 if W_sqrt.shape[1] > 1 else 0)
        if tG != tG_now:
            _sparse_into(G[bG, tG], Gp)
            _next_rows(Gp, Hp, n)
            tG_now = tG
        if tW != tW_now:
            diagonal = _noise_matrix(W_sqrt, bW, tW, WW)
            tW_now = tW
        if t < n_sqrt:
            upper_noise_factor(W_sqrt, bW, tW, sb)
            sq_scratch = (a, L, J[:n], JS, P[:n, :n])
            _sqrt_step(G[bG, tG], filtered, t, sb, sq_scratch, eps, out, smooth)
            continue
        diffuse = t < t_end
        N = n if diagonal else 2 * n
        state = (P[:N, :N], a[:N], Bz[:N, : (d if diffuse else 0)])
        Jv = J[:N]
        _load_step(filtered, t, state, Jv)
        if diagonal:
            for i in range(n):
                noise[i] = WW[i, i]
            _condition_on_next(Gp, noise, path[t + 1], state, scratch, (Jv, zJ), smooth)
        else:
            for r in range(n):
                a[n + r] = 0.0
                noise[r] = 0.0
                for c in range(n):
                    state[0][n + r, n + c] = WW[r, c]
            _condition_on_next(Hp, noise, path[t + 1], state, scratch, (Jv, zJ), smooth)
        if diffuse and any_nonzero(state[2]):
            _unidentified(out, t, smooth)  # G_{t+1} B_t rank deficient
            return False
        if smooth:
            for r in range(n):
                path[t, r] = a[r]
            _sandwich_add(P[:n, :n], Jv[:n], Ss[t + 1], JS, Ss[t])
        else:
            psd_factor(P[:n, :n], L)
            draw(a, L, eps[t], path[t])
    return True
