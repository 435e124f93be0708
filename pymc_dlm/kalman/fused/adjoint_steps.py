r"""The adjoints of one step of the fused kernels, block by block, for the backward pass.

Each helper is the reverse of one block of :func:`~pymc_dlm.kalman.fused.forward._forward`
(rules in :mod:`pymc_dlm.kalman.fused.kernels`), inlined into
:func:`~pymc_dlm.kalman.fused.adjoint._backward`: the adjoint of an ordinary scalar update
(:func:`_ordinary_adjoint`; the informative diffuse one is
:func:`~pymc_dlm.kalman.fused.diffuse.informative_adjoint`), of a steady step, of the
prediction (:func:`_noise_adjoint_step`, :func:`_dG_step`, :func:`_pull_back_step`) and of
the start (:func:`_input_adjoints`). Adjoints are written with a ``bar``; the scratch is an
:class:`~pymc_dlm.kalman.fused.records.AdjointWork`.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
"""

import math

from pymc_dlm.kalman.constants import INFORMATIVE, SKIPPED
from pymc_dlm.kalman.fused.diffuse import replay_informative
from pymc_dlm.kalman.fused.discounting_adjoint import _replay_discounted, _student_adjoint
from pymc_dlm.kalman.fused.records import ScalarBar
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steps import (
    _copy_state,
    _inline,
    _jit,
    _noise_cov,
    _pick,
    _predict,
    _sandwich,
    _update,
)


@_inline
def _pull_back_mean(Hp, v, x):
    """``v = G' v`` in place through the rows of G' (pattern ``Hp``; ``x`` scratch)."""
    H_cnt, H_idx, H_val = Hp.cnt, Hp.idx, Hp.val
    n = v.shape[0]
    for k in range(n):
        acc = 0.0
        for j in range(H_cnt[k]):
            acc += H_val[k, j] * v[H_idx[k, j]]
        x[k] = acc
    for k in range(n):
        v[k] = x[k]


@_inline
def _pull_back(Hp, M, X):
    """``M = G' M G`` in place for a symmetric ``M``, through the rows of G' (``X`` scratch)."""
    _sandwich(Hp, M, X, M, M, False)


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


@_inline
def _noise_rows(W_sqrt, bW, w_rows):
    """Rows of the constant factor ``W_sqrt[bW, 0]`` with a non-zero, into ``w_rows``; count."""
    n_rows = int(0)  # not a literal: see steps._inline
    for r in range(W_sqrt.shape[2]):
        for k in range(W_sqrt.shape[3]):
            if W_sqrt[bW, 0, r, k] != 0.0:
                w_rows[n_rows] = r
                n_rows += 1
                break
    return n_rows


@_inline
def _count_observed(y, b, t):
    """Number of observed scalars of step t."""
    count = 0
    for i in range(y.shape[2]):
        if not math.isnan(y[b, t, i]):
            count += 1
    return count


@_jit
def _count_informative(y, b, t, kinds, n_inf):
    """``n_inf`` less the informative scalars of step t: the index of the first of them."""
    first_inf = n_inf
    for i in range(y.shape[2]):
        if not math.isnan(y[b, t, i]) and kinds[t, i] == INFORMATIVE:
            first_inf -= 1
    return first_inf


@_inline
def _steady_adjoint(kit, b, t, tgt):
    """Adjoint of steady step t (``a += u v / f`` with reused gains) but its prediction.

    The adjoints of the reused gains u, f are summed into ``aw.ubar_acc``, ``aw.fbar_acc``;
    with a learned variance (``kit.dsc``) the term is the Student-t one. ``kit``: the
    :class:`~.records.AdjointKit`; ``tgt``: the :class:`~.records.Target`.
    """
    rec, aw, Fz, dsc = kit.rec, kit.aw, kit.sys.F, kit.dsc
    gb, want_y, d_y = tgt.gb, tgt.want.y, tgt.out.d_y
    us, fs, vs = rec.us, rec.fs, rec.vs
    abar, ubar_acc, fbar_acc = aw.abar, aw.ubar_acc, aw.fbar_acc
    F_cnt, F_idx, F_val = Fz.cnt, Fz.idx, Fz.val
    n, p = abar.shape[0], fs.shape[1]
    for i in range(p - 1, -1, -1):
        inv = 1.0 / fs[t, i]  # one division per scalar
        vf = vs[t, i] * inv
        au = 0.0
        for r in range(n):
            au += abar[r] * us[t, i, r]
            ubar_acc[i, r] += abar[r] * vf
        if dsc.learned:
            v_term, f_term = _student_adjoint(dsc, t, vs[t, i], fs[t, i])
            vbar = au * inv + v_term
            fbar_acc[i] += -au * vf * inv + f_term
        else:
            vbar = (au - vs[t, i]) * inv
            fbar_acc[i] += -au * vf * inv - 0.5 * (inv - vf * vf)
        if want_y:
            d_y[b, t, i] += gb * vbar
        for j in range(F_cnt[i]):
            abar[F_idx[i, j]] -= vbar * F_val[i, j]


@_inline
def _replay_step(inp, mb, t, in_diffuse, kit, first_inf):
    """Re-run step t from its record: a, R (and P_inf) before every scalar, into ``aw``'s history.

    For the gradient of F. ``first_inf``: the index of the step's first informative scalar;
    ``kit``: the :class:`~.records.AdjointKit` (``kit.dsc`` that of the forward pass).
    """
    sys, rec, work, dw, aw, dsc = kit.sys, kit.rec, kit.work, kit.dw, kit.aw, kit.dsc
    y, b = inp.y, mb.b
    a, R, u, Pinf = work.a, work.R, work.u, aw.Pinf
    ms, Cs, Pinfs = rec.ms, rec.Cs, dw.Pinfs
    if not (inp.Pinf_sqrt.shape[2] > 0 and t == 0 and not dsc.on):  # a start not predicted
        _noise_cov(inp.W_sqrt, mb.bW, t if mb.TW > 1 else 0, sys.WW)
        _predict(sys.G, ms[t], Cs[t], sys.WW, a, R, work.GC)
        if dsc.on:
            _replay_discounted(dsc, t, sys.WW, R)
        if in_diffuse:
            _predict(sys.G, ms[t], Pinfs[t], aw.no_WW, u, Pinf, aw.GP)
    else:
        _copy_state(ms[t], Cs[t], a, R)
        Pinf[:, :] = Pinfs[t]
    aw.a_hist[0] = a
    aw.R_hist[0] = R
    if in_diffuse:
        aw.Pinf_hist[0] = Pinf
    j = 0
    k_inf = first_inf
    tV = t if mb.TV > 1 else 0
    for i in range(y.shape[2]):
        if not math.isnan(y[b, t, i]):
            kind = dw.kinds[t, i] if in_diffuse else 1
            if kind == INFORMATIVE:
                u_i, f, v, f_inf = rec.us[t, i], rec.fs[t, i], rec.vs[t, i], dw.f_infs[k_inf]
                replay_informative(a, R, Pinf, dw.Ks[k_inf], u_i, f, f_inf, v)
                k_inf += 1
            elif kind != SKIPPED:
                h = 1.0 if dsc.learned else inp.obs_sd[mb.bV, tV, i] ** 2
                _update(R, a, sys.F, i, y[b, t, i], h, u)
            j += 1
            aw.a_hist[j] = a
            aw.R_hist[j] = R
            if in_diffuse:
                aw.Pinf_hist[j] = Pinf


@_inline
def _ordinary_adjoint(rec, aw, Fz, t, i, reused, means_only, dsc):
    r"""Adjoint of the ordinary update of scalar i of step t: a :class:`~.records.ScalarBar`.

    Leaves :math:`\bar u` in ``aw.ubar`` (complete: its :math:`R` term is then added by
    :func:`_sym_outer_add`) and updates ``aw.abar``. ``reused``: the step whose gains the
    steady steps reused (their summed adjoints are added). ``means_only``: only
    :math:`\bar v` and ``aw.abar`` (they do not depend on :math:`\bar R`; the gradients of
    the data and of m0 need nothing else); ``fbar`` is then 0 and ``aw.ubar`` is not written.
    With a learned variance (``dsc``) the term is the Student-t one.
    """
    us = rec.us
    abar, ubar, Rbar, Ru = aw.abar, aw.ubar, aw.Rbar, aw.Ru
    F_cnt, F_idx, F_val = Fz.cnt, Fz.idx, Fz.val
    n = abar.shape[0]
    f = rec.fs[t, i]
    v = rec.vs[t, i]
    cnt = F_cnt[i]
    # a' = a + u v / f (u of this scalar is us[t, i], indexed in place: a view per scalar
    # costs reference counting at every step)
    inv = 1.0 / f  # one division per scalar
    vf = v * inv
    au = 0.0
    for r in range(n):
        au += abar[r] * us[t, i, r]
    vbar = au * inv
    v_term, f_term = -vf, -0.5 * (inv - vf * vf)
    if dsc.learned:
        v_term, f_term = _student_adjoint(dsc, t, v, f)
    if means_only:
        vbar += v_term
        for j in range(cnt):
            abar[F_idx[i, j]] -= vbar * F_val[i, j]
        return ScalarBar(vbar=vbar, fbar=0.0, finf_bar=0.0)
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
    fbar += f_term
    vbar += v_term
    if reused:
        fbar += aw.fbar_acc[i]
        for r in range(n):
            ubar[r] += aw.ubar_acc[i, r]
    # v = y - z.a ; f = z.u + h
    for j in range(cnt):
        abar[F_idx[i, j]] -= vbar * F_val[i, j]
    for j in range(cnt):
        ubar[F_idx[i, j]] += fbar * F_val[i, j]
    return ScalarBar(vbar=vbar, fbar=fbar, finf_bar=0.0)


@_inline
def _sym_outer_add(Rbar, ubar, Fz, i):
    """``Rbar += sym(ubar z')`` for row i of F (the adjoint of u = R z)."""
    n = Rbar.shape[0]
    for j in range(Fz.cnt[i]):
        c = Fz.idx[i, j]
        zc = 0.5 * Fz.val[i, j]
        for r in range(n):
            Rbar[r, c] += ubar[r] * zc
            Rbar[c, r] += ubar[r] * zc


@_inline
def _scalar_gradients(inp, mb, t, i, tgt, bars):
    """The gradients of y and obs_sd from the adjoints ``bars`` of scalar i of step t."""
    gb, want, out = tgt.gb, tgt.want, tgt.out
    if want.y:
        out.d_y[mb.b, t, i] += gb * bars.vbar
    if want.obs_sd:
        tV = t if mb.TV > 1 else 0
        out.d_obs_sd[mb.bV, tV, i] += gb * bars.fbar * 2.0 * inp.obs_sd[mb.bV, tV, i]


@_inline
def _dF_ordinary(rec, aw, t, i, j_obs, bars, gb, dF):
    r"""``dF += gb`` :math:`\bar z` for an ordinary update (the ``j_obs``-th observed scalar)."""
    vbar, fbar, ubar = bars.vbar, bars.fbar, aw.ubar
    a_before = aw.a_hist[j_obs]
    R_before = aw.R_hist[j_obs]
    n = ubar.shape[0]
    for c in range(n):
        s = -vbar * a_before[c] + fbar * rec.us[t, i, c]
        for r in range(n):
            s += R_before[c, r] * ubar[r]
        dF[c] += gb * s


@_jit
def _dF_informative(kit, t, i, j_obs, bars, k, gb, dF):
    r"""``dF += gb`` :math:`\bar z` for the k-th informative diffuse update (scalar i of t)."""
    rec, aw = kit.rec, kit.aw
    K, f_inf = kit.dw.Ks[k], kit.dw.f_infs[k]
    vbar, fbar, finf_bar, ubar, Kbar = bars.vbar, bars.fbar, bars.finf_bar, aw.ubar, aw.Kbar
    a_before = aw.a_hist[j_obs]
    R_before = aw.R_hist[j_obs]
    I_before = aw.Pinf_hist[j_obs]
    n = ubar.shape[0]
    for c in range(n):
        s = -vbar * a_before[c] + fbar * rec.us[t, i, c] + finf_bar * f_inf * K[c]
        for r in range(n):
            s += R_before[c, r] * ubar[r] + I_before[c, r] * Kbar[r]
        dF[c] += gb * s


@_inline
def _noise_adjoint_step(W_sqrt, mb, t, aw, gb, dW, n_rows):
    """The gradient of W_sqrt from step t's prediction (summed first when W is constant)."""
    if mb.TW > 1:
        _noise_adjoint(aw.Rbar, W_sqrt[mb.bW, t], dW[mb.bW, t], 2.0 * gb)
        return
    # constant W: W_sqrt_bar = 2 (sum_t R_bar_t) L_W, multiplied once (``_input_adjoints``)
    n = aw.Rbar.shape[0]
    for q in range(n_rows):  # only the rows that meet a non-zero of L_W
        r = aw.w_rows[q]
        for c in range(n):
            aw.Rsum[r, c] += aw.Rbar[r, c]


@_inline
def _dG_step(inp, mb, t, in_diffuse, kit, gb, dG):
    r"""The gradient of G from step t: :math:`\bar a m^\top + 2 \bar R G C` (+ the P_inf term)."""
    sys, rec, work, dw, aw = kit.sys, kit.rec, kit.work, kit.dw, kit.aw
    ms, a, R, GC = rec.ms, work.a, work.R, work.GC
    abar, Rbar, Pinf_bar, GP = aw.abar, aw.Rbar, aw.Pinf_bar, aw.GP
    _noise_cov(inp.W_sqrt, mb.bW, t if mb.TW > 1 else 0, sys.WW)
    _predict(sys.G, ms[t], rec.Cs[t], sys.WW, a, R, GC)
    if in_diffuse:
        _predict(sys.G, ms[t], dw.Pinfs[t], aw.no_WW, work.u, aw.Pinf, GP)
    n = abar.shape[0]
    tG = t if mb.TG > 1 else 0
    for r in range(n):
        for c in range(n):
            s = abar[r] * ms[t][c]
            for k in range(n):
                s += 2.0 * Rbar[r, k] * GC[k, c]
                if in_diffuse:
                    s += 2.0 * Pinf_bar[r, k] * GP[k, c]
            dG[mb.bG, tG, r, c] += gb * s


@_inline
def _pull_back_step(Hp, aw, pull_back_at, in_diffuse):
    r"""The prediction's pull-back of the adjoints of a, R (and P_inf while diffuse).

    :math:`\bar m = G^\top \bar a`, :math:`\bar C = G^\top \bar R G`,
    :math:`\bar P_\infty \leftarrow G^\top \bar P_\infty G`.
    """
    _pull_back_mean(Hp, aw.abar, aw.ubar)
    if pull_back_at != 0:  # straight-line, in place (bitwise the same)
        call_address(pull_back_at, aw.Rbar.ctypes.data, aw.Rbar.ctypes.data, 0)
        if in_diffuse:
            call_address(pull_back_at, aw.Pinf_bar.ctypes.data, aw.Pinf_bar.ctypes.data, 0)
    else:
        _pull_back(Hp, aw.Rbar, aw.X)
        if in_diffuse:
            _pull_back(Hp, aw.Pinf_bar, aw.X)


@_inline
def _input_adjoints(inp, mb, tgt, aw, n_rows, dsc):
    """The gradients of a constant W_sqrt, of m0, C0 and Pinf_sqrt, from the start's adjoints.

    ``C0`` is a covariance when diffuse or discounted (``dsc.on``), else a factor.
    """
    gb, want, out = tgt.gb, tgt.want, tgt.out
    n, b = aw.abar.shape[0], mb.b
    if want.W_sqrt and mb.TW == 1:
        L = inp.W_sqrt[mb.bW, 0]
        for r in range(n):
            for k in range(L.shape[1]):
                s = 0.0
                for q in range(n_rows):  # (Rsum L)[r, k], Rsum symmetric
                    c = aw.w_rows[q]
                    s += aw.Rsum[c, r] * L[c, k]
                out.d_W_sqrt[mb.bW, 0, r, k] += 2.0 * gb * s
    if want.m0:
        bm0 = _pick(inp.m0.shape[0], b)
        for r in range(n):
            out.d_m0[bm0, r] += gb * aw.abar[r]
    if want.C0:
        bC0 = _pick(inp.C0.shape[0], b)
        if inp.Pinf_sqrt.shape[2] > 0 or dsc.on:  # the gradient of a covariance
            out.d_C0[bC0] += gb * aw.Rbar
        else:
            L0 = inp.C0[bC0]
            out.d_C0[bC0] += gb * 2.0 * (aw.Rbar @ L0)
    if want.Pinf_sqrt:
        bP = _pick(inp.Pinf_sqrt.shape[0], b)
        out.d_Pinf_sqrt[bP] += gb * 2.0 * (aw.Pinf_bar @ inp.Pinf_sqrt[bP])
