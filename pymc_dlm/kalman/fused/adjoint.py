r"""The backward pass of the fused kernels: the exact reverse-mode gradient.

:func:`loglik_grad_into` runs the forward pass of every batch member with its record
(:func:`~pymc_dlm.kalman.fused.sqrtform._filter_member`), then the adjoint of exactly that
recursion backwards in time; the rules are listed in :mod:`pymc_dlm.kalman.fused.kernels`.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§7.3.3 (score).
"""

import math

import numba
import numpy as np

from pymc_dlm.kalman.fused.diffuse import (
    INFORMATIVE,
    SKIPPED,
    informative_adjoint,
    replay_informative,
)
from pymc_dlm.kalman.fused.forward import (
    _borrow,
    _borrow_inputs,
    _borrow_tuple9,
    _copy_state,
    _diffuse_work,
    _keep_alive,
    _layout,
    _noise_cov,
    _pick,
    _predict,
    _sandwich,
    _sparse,
    _sparse_into,
    _update,
)
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.sqrtform import _filter_member

__all__ = ["loglik_grad_kernel", "loglik_grad_into", "grad_outputs"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")
# Per-step helpers are inlined into the kernels at numba-IR level: no call overhead. (Their
# array arguments are still reference-counted at every call, atomically, unless they are
# borrowed views: see ``compat.borrow``.) The per-series drivers (``_forward``,
# ``_headed``, ``_filter_member``) are ordinary compiled functions: inlining them into each
# other multiplies the compiled code (and numba's compile time and memory).
_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


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

    Every output is overwritten (zeros where a gradient is skipped). With no gradient
    wanted (``need`` all false) only ``loglik`` is written: the value route of the kernels
    (:func:`~pymc_dlm.kalman.fused.kernels.loglik_kernel` and the value nodes), one compiled
    build for both. ``spec`` (int64, 2): the straight-line sandwiches of a constant G (see
    ``_forward``), or zeros.
    """
    # Borrowed views throughout (``compat.borrow``): the drivers called below take some
    # thirty arrays each, whose reference counts would otherwise be updated at every call.
    y, F, G, W, sd, m0, C0, Q = _borrow_inputs(y, F, G, W, sd, m0, C0, Q)
    g, spec = _borrow(g), _borrow(spec)
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
    lls, gy, gF, gG, gW, gsd, gm0, gC0, gQ = _borrow_tuple9(out)
    lls[:] = 0.0
    # With no gradient wanted this is the log-likelihood alone: no record, no backward
    # pass, and the gradient outputs are not touched (their addresses may be null).
    record = need_y or need_F or need_G or need_W or need_sd or need_m0 or need_C0 or need_Q
    if record:
        gy[...] = 0.0
        gF[...] = 0.0
        gG[...] = 0.0
        gW[...] = 0.0
        gsd[...] = 0.0
        gm0[...] = 0.0
        gC0[...] = 0.0
        gQ[...] = 0.0
    keep_states = need_F or need_G
    T_rec, p_rec = (T, p) if record else (1, 1)
    # Per-step storage for the backward pass. The loops use borrowed views of every array
    # (``compat.borrow``: no reference counting); the owners are kept alive to the end.
    owners_rec = (
        np.empty((T_rec, p_rec, n)),
        np.empty((T_rec, p_rec)),
        np.empty((T_rec, p_rec)),
        np.empty((T + 1, n)) if keep_states else np.empty((1, n)),
        np.empty((T + 1, n, n)) if keep_states else np.empty((1, n, n)),
    )
    us, fs, vs = _borrow(owners_rec[0]), _borrow(owners_rec[1]), _borrow(owners_rec[2])
    ms, Cs = _borrow(owners_rec[3]), _borrow(owners_rec[4])
    dw_owner = _diffuse_work(n, d, T_rec, p_rec, keep_states)
    dw = _borrow_tuple9(dw_owner)
    kinds, Ks, finfs, Pinfs = dw[5], dw[6], dw[7], dw[8]
    # Scratch matrices and vectors, one allocation each (an allocation and its release cost
    # about 25 ns, as much as a few steps of a small model).
    sq = np.empty((11, n, n))
    R, GC, C, Rbar = _borrow(sq[0]), _borrow(sq[1]), _borrow(sq[2]), _borrow(sq[3])
    Ibar, X, Pinf, GP = _borrow(sq[4]), _borrow(sq[5]), _borrow(sq[6]), _borrow(sq[7])
    no_WW, WW, Rsum = _borrow(sq[8]), _borrow(sq[9]), _borrow(sq[10])
    no_WW[:, :] = 0.0
    vec = np.empty((7, n))
    a, u, m, abar = _borrow(vec[0]), _borrow(vec[1]), _borrow(vec[2]), _borrow(vec[3])
    ubar, Ru, Kbar = _borrow(vec[4]), _borrow(vec[5]), _borrow(vec[6])
    work = (m, C, a, R, GC, u)
    rec = (us, fs, vs, ms, Cs)
    owners = (
        np.empty((p + 1, n)),
        np.empty((p + 1, n, n)),
        np.empty((p + 1 if diffuse and need_F else 1, n, n)),
        np.empty((p, n)),
        np.empty(p),
    )
    a_hist, R_hist, I_hist = _borrow(owners[0]), _borrow(owners[1]), _borrow(owners[2])
    ubar_acc = _borrow(owners[3])  # adjoints of the gains reused by the steady steps
    fbar_acc = _borrow(owners[4])
    w_rows_owner = np.empty(n, dtype=np.int64)
    w_rows = _borrow(w_rows_owner)
    pull_back_at = spec[1] if G.shape[1] == 1 and G.shape[0] == 1 else 0
    for b in range(B):
        gb = g[_pick(g.shape[0], b)]
        bm0, bC0 = _pick(m0.shape[0], b), _pick(C0.shape[0], b)
        bG, bF, bW, bsd, TG, TF, TW, TV = _layout(F, G, W, sd, b)
        total, t_end, n_inf, t_ss = _filter_member(
            y, F, G, W, sd, m0, C0, Q, b, record, rec, work, dw, spec
        )
        lls[b] = total
        if not record or not math.isfinite(total) or gb == 0.0:
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
        G_pattern = _sparse(G[bG, T - 1 if TG > 1 else 0])
        # Rows of G' (columns of G): the backward products gather instead of scatter.
        H_pattern = _sparse(G[bG, T - 1 if TG > 1 else 0].T)
        F_pattern = _sparse(F[bF, T - 1 if TF > 1 else 0])
        G_cnt, G_idx, G_val = _borrow(G_pattern[0]), _borrow(G_pattern[1]), _borrow(G_pattern[2])
        H_cnt, H_idx, H_val = _borrow(H_pattern[0]), _borrow(H_pattern[1]), _borrow(H_pattern[2])
        F_cnt, F_idx, F_val = _borrow(F_pattern[0]), _borrow(F_pattern[1]), _borrow(F_pattern[2])
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
        _keep_alive((G_pattern, H_pattern, F_pattern))
    _keep_alive((owners_rec, owners, w_rows_owner, sq, vec, dw_owner))
