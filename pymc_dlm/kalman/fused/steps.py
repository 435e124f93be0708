r"""The per-step routines of the fused kernels: sparse patterns, prediction, scalar update.

Shared by the forward pass (:mod:`~pymc_dlm.kalman.fused.forward`), the square-root route
(:mod:`~pymc_dlm.kalman.fused.sqrtform`), the backward pass
(:mod:`~pymc_dlm.kalman.fused.adjoint`) and the state draws. The recursion and the structure
exploited are described in :mod:`pymc_dlm.kalman.fused.kernels`; the structures passed
around are declared in :mod:`~pymc_dlm.kalman.fused.records`.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §6.4 (univariate treatment).
"""

import numba
import numpy as np

from pymc_dlm.compat import borrow as _borrow
from pymc_dlm.compat import keep_alive as _keep_alive
from pymc_dlm.kalman.constants import STEADY_TOL
from pymc_dlm.kalman.fused.diffuse import condition, mirror
from pymc_dlm.kalman.fused.records import (
    AdjointWork,
    DiffuseWork,
    Discounting,
    Gradients,
    Inputs,
    Member,
    Record,
    Sparse,
    Work,
)

__all__ = ["STEADY_TOL", "_borrow", "_keep_alive"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Per-step helpers are inlined into the kernels at numba-IR level: no call overhead. (Their
# array arguments are still reference-counted at every call, atomically, unless they are
# borrowed views: see ``pymc_dlm.compat.borrow``.) The per-series drivers (``_forward``,
# ``_headed``, ``_filter_member``) are ordinary compiled functions: inlining them into each
# other multiplies the compiled code (and numba's compile time and memory). They are called
# with typed values, never literals: numba compiles one version of a function per literal
# argument (``f(x, False)`` and ``f(x, True)`` are two compilations), so a constant flag or
# count is passed as ``bool(0)`` or ``int(0)``, which type as ``bool`` and ``int64``; so is a
# variable that starts at a constant and is passed to one (``n = int(0)``, not ``n = 0``).
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def borrow_inputs(inp):
    """Borrowed views of the eight kernel inputs (see :data:`pymc_dlm.compat.borrow`).

    For C-contiguous inputs only (those of the log-likelihood entries): a view of a strided
    array would read the wrong entries.
    """
    return Inputs(
        y=_borrow(inp.y),
        F=_borrow(inp.F),
        G=_borrow(inp.G),
        W_sqrt=_borrow(inp.W_sqrt),
        obs_sd=_borrow(inp.obs_sd),
        m0=_borrow(inp.m0),
        C0=_borrow(inp.C0),
        Pinf_sqrt=_borrow(inp.Pinf_sqrt),
    )


@_inline
def borrow_gradients(out):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.Gradients`."""
    return Gradients(
        loglik=_borrow(out.loglik),
        d_y=_borrow(out.d_y),
        d_F=_borrow(out.d_F),
        d_G=_borrow(out.d_G),
        d_W_sqrt=_borrow(out.d_W_sqrt),
        d_obs_sd=_borrow(out.d_obs_sd),
        d_m0=_borrow(out.d_m0),
        d_C0=_borrow(out.d_C0),
        d_Pinf_sqrt=_borrow(out.d_Pinf_sqrt),
    )


@_inline
def borrow_diffuse_work(dw):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.DiffuseWork`."""
    return DiffuseWork(
        Pinf_f=_borrow(dw.Pinf_f),
        Pinf_f_next=_borrow(dw.Pinf_f_next),
        K=_borrow(dw.K),
        ud=_borrow(dw.ud),
        Pinf_fv=_borrow(dw.Pinf_fv),
        kinds=_borrow(dw.kinds),
        Ks=_borrow(dw.Ks),
        f_infs=_borrow(dw.f_infs),
        Pinfs=_borrow(dw.Pinfs),
    )


@_inline
def borrow_record(rec):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.Record`."""
    return Record(
        us=_borrow(rec.us),
        fs=_borrow(rec.fs),
        vs=_borrow(rec.vs),
        ms=_borrow(rec.ms),
        Cs=_borrow(rec.Cs),
    )


@_inline
def borrow_discounting(dsc):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.Discounting`."""
    return Discounting(
        on=dsc.on,
        learned=dsc.learned,
        keep=dsc.keep,
        delta=_borrow(dsc.delta),
        blocks=_borrow(dsc.blocks),
        scale=_borrow(dsc.scale),
        P=_borrow(dsc.P),
        Z=_borrow(dsc.Z),
        Ps=_borrow(dsc.Ps),
        ns=_borrow(dsc.ns),
        ds=_borrow(dsc.ds),
        delta_bar=_borrow(dsc.delta_bar),
        scale_bar=_borrow(dsc.scale_bar),
        carry=_borrow(dsc.carry),
    )


@_inline
def borrow_work(work):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.Work`."""
    return Work(
        m=_borrow(work.m),
        C=_borrow(work.C),
        a=_borrow(work.a),
        R=_borrow(work.R),
        GC=_borrow(work.GC),
        u=_borrow(work.u),
    )


@_inline
def no_record(n):
    """An empty :class:`~pymc_dlm.kalman.fused.records.Record`: a pass that keeps no tape."""
    return Record(
        us=np.empty((1, 1, 1)),
        fs=np.empty((1, 1)),
        vs=np.empty((1, 1)),
        ms=np.empty((1, n)),
        Cs=np.empty((1, n, n)),
    )


@_inline
def scratch_work(vec, sq):
    """A :class:`~pymc_dlm.kalman.fused.records.Work` of borrowed views into scratch rows.

    ``vec`` (at least 3, n) and ``sq`` (at least 3, n, n): rows 0 to 2 are used, the caller
    owns the arrays and keeps them alive.
    """
    return Work(
        m=_borrow(vec[2]),
        C=_borrow(sq[2]),
        a=_borrow(vec[0]),
        R=_borrow(sq[0]),
        GC=_borrow(sq[1]),
        u=_borrow(vec[1]),
    )


@_inline
def borrow_sparse(pattern):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.Sparse`."""
    return Sparse(cnt=_borrow(pattern.cnt), idx=_borrow(pattern.idx), val=_borrow(pattern.val))


@_inline
def borrow_adjoint_work(aw):
    """Borrowed views of the arrays of a :class:`~pymc_dlm.kalman.fused.records.AdjointWork`."""
    return AdjointWork(
        Rbar=_borrow(aw.Rbar),
        Pinf_bar=_borrow(aw.Pinf_bar),
        Rsum=_borrow(aw.Rsum),
        X=_borrow(aw.X),
        Pinf=_borrow(aw.Pinf),
        GP=_borrow(aw.GP),
        no_WW=_borrow(aw.no_WW),
        WW=_borrow(aw.WW),
        abar=_borrow(aw.abar),
        ubar=_borrow(aw.ubar),
        Ru=_borrow(aw.Ru),
        Kbar=_borrow(aw.Kbar),
        a_hist=_borrow(aw.a_hist),
        R_hist=_borrow(aw.R_hist),
        Pinf_hist=_borrow(aw.Pinf_hist),
        ubar_acc=_borrow(aw.ubar_acc),
        fbar_acc=_borrow(aw.fbar_acc),
        w_rows=_borrow(aw.w_rows),
    )


@_inline
def _sparse(A):
    """Non-zero pattern of a matrix, by rows: a :class:`~pymc_dlm.kalman.fused.records.Sparse`."""
    rows, cols = A.shape
    pattern = Sparse(
        cnt=np.zeros(rows, dtype=np.int64),
        idx=np.zeros((rows, cols), dtype=np.int64),
        val=np.zeros((rows, cols)),
    )
    _sparse_into(A, pattern)
    return pattern


@_inline
def _sparse_into(A, pattern):
    """Refill a pattern made by :func:`_sparse` (time-varying matrices: no allocation)."""
    count, idx, val = pattern.cnt, pattern.idx, pattern.val
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
def _sandwich(S, M, X, out, add, has_add):
    r"""``out = S M S^\top`` (``+ add`` when ``has_add``) for a symmetric ``M`` and a sparse-row S.

    S is given by its rows (a :class:`~pymc_dlm.kalman.fused.records.Sparse`). ``X = S M`` is
    kept: row r is a sum of rows of M (contiguous inner loops, SIMD). The upper triangle of
    ``out`` is gathered from X and mirrored, so ``out`` is exactly symmetric. ``out`` may be
    ``M`` (and ``add`` anything when ``has_add`` is false).
    """
    cnt, idx, val = S.cnt, S.idx, S.val
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
def _predict(Gp, m, C, WW, a, R, GC):
    r"""Prediction: a = G m, R = G C G' + WW (exactly symmetric), and GC = G C.

    ``Gp`` is the sparse pattern of G; ``WW`` the noise covariance :math:`W = L_W L_W^\top`
    (see :func:`_noise_cov`).
    """
    _predict_mean(Gp, m, a)
    _sandwich(Gp, C, GC, R, WW, True)


@_inline
def _predict_mean(Gp, m, a):
    """``a = G m`` through the sparse rows of G (pattern ``Gp``)."""
    G_cnt, G_idx, G_val = Gp.cnt, Gp.idx, Gp.val
    for r in range(m.shape[0]):
        s = 0.0
        for j in range(G_cnt[r]):
            s += G_val[r, j] * m[G_idx[r, j]]
        a[r] = s


@_inline
def _noise_cov(W_sqrt, bW, tW, WW):
    """``WW = L L'`` for the noise factor ``L = W_sqrt[bW, tW]`` (n, k), skipping its zeros."""
    n = WW.shape[0]
    for r in range(n):
        for c in range(r, n):
            WW[r, c] = 0.0
    for j in range(W_sqrt.shape[3]):
        for r in range(n):
            w_r = W_sqrt[bW, tW, r, j]
            if w_r != 0.0:
                for c in range(r, n):
                    WW[r, c] += w_r * W_sqrt[bW, tW, c, j]
    mirror(WW)


@_inline
def _update(R, a, Fp, i, y, h, u):
    """Scalar observation i: returns (f, v, loglik term); updates a, R in place, fills u.

    Row i of the sparse F (pattern ``Fp``) is ``Fp.idx[i, :Fp.cnt[i]]``,
    ``Fp.val[i, :Fp.cnt[i]]``.
    """
    f, v = _innovation(R, a, Fp, i, y, h, u)
    return f, v, condition(R, a, u, f, v)


@_inline
def _innovation(R, a, Fp, i, y, h, u):
    """Scalar observation i: ``u = R F_i'`` in place; returns ``(f, v)`` (see :func:`_update`)."""
    z_cnt, z_idx, z_val = Fp.cnt, Fp.idx, Fp.val
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
    return f, v


@_inline
def _pick(shape0, b):
    return b if shape0 > 1 else 0


@_inline
def _layout(F, G, W_sqrt, obs_sd, b):
    """Where member ``b`` reads G, F, W_sqrt, obs_sd: a :class:`~.records.Member`."""
    return Member(
        b=b,
        bG=_pick(G.shape[0], b),
        bF=_pick(F.shape[0], b),
        bW=_pick(W_sqrt.shape[0], b),
        bV=_pick(obs_sd.shape[0], b),
        TG=G.shape[1],
        TF=F.shape[1],
        TW=W_sqrt.shape[1],
        TV=obs_sd.shape[1],
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
