r"""The forward pass of the fused kernels: the covariance-form filter of one batch member.

The recursion, the array layout and the structure exploited are described in
:mod:`pymc_dlm.kalman.fused.kernels`; this module holds the per-step routines (prediction,
scalar update, sparse patterns, steady-state test) and :func:`_forward`, the loop over time
that also keeps the record of the backward pass (:mod:`pymc_dlm.kalman.fused.adjoint`).

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §6.4 (univariate treatment).
"""

import math

import numba
import numpy as np

from pymc_dlm.compat import borrow as _borrow
from pymc_dlm.compat import keep_alive as _keep_alive
from pymc_dlm.kalman.fused.diffuse import (
    INFORMATIVE,
    SKIPPED,
    any_nonzero,
    condition,
    diffuse_update,
    mirror,
    outer_factor,
    predict_factor,
)
from pymc_dlm.kalman.fused.specialize import call_address

LOG_2PI = math.log(2.0 * math.pi)
#: Steady state: once a filtered covariance differs from the previous one by at most this
#: much (relative, largest entry), the covariance recursion has converged to round-off and
#: the remaining steps reuse the last gains (see ``_forward``).
STEADY_TOL = 1e-14
_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Per-step helpers are inlined into the kernels at numba-IR level: no call overhead. (Their
# array arguments are still reference-counted at every call, atomically, unless they are
# borrowed views: see ``pymc_dlm.compat.borrow``.) The per-series drivers (``_forward``,
# ``_headed``, ``_filter_member``) are ordinary compiled functions: inlining them into each
# other multiplies the compiled code (and numba's compile time and memory).
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def _borrow_inputs(y, F, G, W, sd, m0, C0, Q):
    """Borrowed views of the eight kernel inputs (see :data:`pymc_dlm.compat.borrow`)."""
    return (
        _borrow(y),
        _borrow(F),
        _borrow(G),
        _borrow(W),
        _borrow(sd),
        _borrow(m0),
        _borrow(C0),
        _borrow(Q),
    )


@_inline
def _borrow_tuple9(x):
    """Borrowed views of the nine arrays of ``x`` (the diffuse work, the gradients)."""
    return (
        _borrow(x[0]),
        _borrow(x[1]),
        _borrow(x[2]),
        _borrow(x[3]),
        _borrow(x[4]),
        _borrow(x[5]),
        _borrow(x[6]),
        _borrow(x[7]),
        _borrow(x[8]),
    )


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
def _forward(y, F, G, W, sd, m0, C0, Q, b, store, rec, work, t0, t1, dw, steady, spec, mom):
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

    ``mom`` = ``pa, pR, pB, fm, fC, fB, ll_t``: the moments of the state draws and of
    ``kalman_filter`` (:func:`no_moments` when none is wanted). When ``ll_t`` has T entries,
    every step's log-likelihood term goes to ``ll_t[t]``, the filtered moments
    :math:`m_t, C_t` (the finite part while diffuse) to ``fm[t]``, ``fC[t]`` and the filtered
    diffuse factor to ``fB[t]`` during the diffuse period; when ``pa`` has T rows, the
    predicted :math:`a_t, R_t` and diffuse factor go to ``pa[t]``, ``pR[t]``, ``pB[t]``. The
    caller zeroes ``pB`` and ``fB``. Recording moments turns the steady-state route off.
    """
    # Borrowed views (no reference counting in the loops): the arguments' arrays, and the
    # local ones, which are kept alive to the end.
    B, Bt, K, ud, Bv, kinds, Ks, finfs, Pinfs = _borrow_tuple9(dw)
    us, fs, vs, ms, Cs = (
        _borrow(rec[0]),
        _borrow(rec[1]),
        _borrow(rec[2]),
        _borrow(rec[3]),
        _borrow(rec[4]),
    )
    m, C, a, R = _borrow(work[0]), _borrow(work[1]), _borrow(work[2]), _borrow(work[3])
    GC, u = _borrow(work[4]), _borrow(work[5])
    T, p = y.shape[1], y.shape[2]
    n = G.shape[-1]
    bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
    bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
    keep_states = ms.shape[0] > 1
    pa, pR, pB, fm, fC, fB, ll_t = mom
    keep_moments = ll_t.shape[0] == T
    keep_predicted = pa.shape[0] == T
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
    G_pattern, F_pattern = _sparse(G[bG, 0]), _sparse(F[bF, 0])
    G_cnt, G_idx, G_val = _borrow(G_pattern[0]), _borrow(G_pattern[1]), _borrow(G_pattern[2])
    F_cnt, F_idx, F_val = _borrow(F_pattern[0]), _borrow(F_pattern[1]), _borrow(F_pattern[2])
    WW_owner = np.empty((n, n))
    WW = _borrow(WW_owner)
    _noise_cov(W, bW, 0, WW)
    predict_at = spec[0] if TG == 1 and G.shape[0] == 1 else 0
    total = 0.0
    worst = 0.0
    steady = steady and not (keep_states or keep_moments)
    steady = steady and TG == 1 and TF == 1 and TW == 1 and TV == 1
    last_nan = t0 - 1  # steady steps come after the last missing value
    if steady:
        for t in range(t1 - 1, t0 - 1, -1):
            if last_nan >= t0:
                break
            for i in range(p):
                if math.isnan(y[b, t, i]):
                    last_nan = t
                    break
    # Gains of the steady steps: u, f, 1/f and log(2 pi f) of every scalar.
    gains = np.empty((p if steady else 1, n + 3))
    gain = _borrow(gains)
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
                _copy_matrix(Bt, B)
        if keep_predicted:
            _copy_state(a, R, pa[t], pR[t])
            if active:
                _copy_matrix(B, pB[t])
        tV = t if TV > 1 else 0
        step = 0.0
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
                    gain[i, r] = u[r]
                gain[i, n] = f
            if store:
                for r in range(n):
                    us[t, i, r] = u[r]
                fs[t, i] = f
                vs[t, i] = v
            total += ll
            step += ll
            if f - h > worst * h:
                worst = (f - h) / h if h > 0.0 else np.inf
        if not (total > -np.inf):
            return -np.inf, worst, t_end, n_inf, t_ss
        if keep_moments:
            ll_t[t] = step
            _copy_state(a, R, fm[t], fC[t])
            if active:
                _copy_matrix(B, fB[t])
        if active and not any_nonzero(B):
            active = False
            t_end = t + 1
        if steady and not step_diffuse and t > last_nan and t > t0 and _settled(R, C):
            frozen = True
            t_ss = t + 1
            for i in range(p):
                gain[i, n + 1] = 1.0 / gain[i, n]
                gain[i, n + 2] = LOG_2PI + math.log(gain[i, n])
        # The filtered moments become the next step's input. Copied, not swapped: arrays
        # rebound in the loop are reference-counted (atomically) wherever a helper reads
        # them, which cost more than this copy (see ``_copy_state``).
        _copy_state(a, R, m, C)
        if frozen:
            break
    # Steady steps: the mean only, in place.
    for t in range(t_ss, t1):
        _predict_mean(G_cnt, G_idx, G_val, m, a)
        for i in range(p):
            v = y[b, t, i]
            for j in range(F_cnt[i]):
                v -= F_val[i, j] * a[F_idx[i, j]]
            f = gain[i, n]
            vf = v * gain[i, n + 1]
            for r in range(n):
                a[r] += gain[i, r] * vf
            if store:
                for r in range(n):
                    us[t, i, r] = gain[i, r]
                fs[t, i] = f
                vs[t, i] = v
            total += -0.5 * (gain[i, n + 2] + v * vf)
        for r in range(n):
            m[r] = a[r]
    _keep_alive((G_pattern, F_pattern, WW_owner, gains))
    if active:  # fewer informative observations than diffuse states: improper
        return -np.inf, worst, T, n_inf, t_ss
    if not (total > -np.inf):
        return -np.inf, worst, t_end, n_inf, t_ss
    return total, worst, t_end, n_inf, t_ss


@_inline
def no_moments(n, d):
    """The ``mom`` argument of :func:`_forward` that records no moments."""
    return (
        np.empty((0, n)),
        np.empty((0, n, n)),
        np.empty((0, n, d)),
        np.empty((0, n)),
        np.empty((0, n, n)),
        np.empty((0, n, d)),
        np.empty(0),
    )


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
    """``m = a``, ``C = R``.

    Loops keep their state arrays for good and copy into them: swapping two arrays makes
    them loop-carried variables, and numba then increments and decrements their reference
    counts (atomic instructions) around every helper that reads them (see
    :data:`pymc_dlm.compat.borrow` for the rest of that cost).
    """
    n = a.shape[0]
    for r in range(n):
        m[r] = a[r]
        for c in range(n):
            C[r, c] = R[r, c]


@_inline
def _copy_matrix(A, out):
    """``out = A``, element by element (see :func:`_copy_state`)."""
    for r in range(A.shape[0]):
        for c in range(A.shape[1]):
            out[r, c] = A[r, c]
