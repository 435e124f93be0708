r"""The reverse-mode gradient of the discounted kernel (:mod:`~pymc_dlm.kalman.fused.discounted`).

:func:`discounted_loglik_grad` runs the forward pass of every batch member with its
:class:`~pymc_dlm.kalman.fused.discounted.Tape`, then the adjoint of exactly that computation
backwards in time (Giles 2008): per observed scalar the adjoints of :math:`a \mathrel{+}=
uv/f`, :math:`R \mathrel{-}= uu^\top/f`, of the log-density term (Gaussian, or Student-t with
the chain of :math:`(n, d)`), of :math:`f = F_i u + h_i`, :math:`u = R F_i^\top` and
:math:`v = y - F_i a`; per step that of the prediction :math:`a = Gm`, :math:`R = P + D \circ
P + L_W L_W^\top`, :math:`P = G C G^\top`, which gives the discount factors' gradient
:math:`\bar\delta_i = -\delta_i^{-2} \sum_j B_{ij} \bar R_{ij} P_{ij}`. The steady steps
(which reuse the gains of step :math:`t_{ss} - 1`) sum the adjoints of those gains and pass
them to that step.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35-44.
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, §4.6, §6.3.
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.diffuse import condition
from pymc_dlm.kalman.fused.discounted import borrow_tape, forward, tape
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _pick,
    _sandwich,
    _sparse,
    _sparse_into,
    borrow_sparse,
)

__all__ = ["discounted_loglik_grad"]


@_inline
def _digamma(x):
    """The digamma function for x > 0 (recurrence to x >= 6, then the asymptotic series)."""
    acc = 0.0
    while x < 6.0:
        acc -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (
        1.0 / 240 - inv2 * (1.0 / 132)))))  # fmt: skip
    return acc + math.log(x) - 0.5 * inv - series


@_jit
def discounted_loglik_grad(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, g,
                           need, spec):  # fmt: skip
    """``(loglik, *gradients)``: gradients of ``sum_b g[b] loglik[b]`` shaped like the inputs.

    ``spec`` (int64, 2): the straight-line sandwiches of a constant G, or zeros
    (:func:`~pymc_dlm.kalman.fused.discounted.forward`).

    ``need`` (10 booleans, in the order of the inputs) skips the costly gradients nobody uses
    (those of y, F, G and W_sqrt). A member whose log-likelihood is not finite gets zero
    gradients.
    """
    B, T, p = y.shape
    n = G.shape[-1]
    out = (
        np.empty(B), np.zeros(y.shape), np.zeros(F.shape), np.zeros(G.shape),
        np.zeros(W_sqrt.shape), np.zeros(obs_sd.shape), np.zeros(m0.shape), np.zeros(C0.shape),
        np.zeros(disc.shape), np.zeros(blocks.shape), np.zeros(scale.shape),
    )  # fmt: skip
    if T == 0:
        out[0][:] = 0.0
        return out
    owner = tape(T, p, n)
    rec = borrow_tape(owner)
    for b in range(B):
        ll, t_ss = forward(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, b,
                            rec, bool(1), spec)  # fmt: skip
        out[0][b] = ll
        gb = g[_pick(g.shape[0], b)]
        if math.isfinite(ll) and gb != 0.0:
            _backward(y, F, G, W_sqrt, obs_sd, disc, blocks, scale, learned, b, rec, gb, need,
                      t_ss, out, spec)  # fmt: skip
    _keep_alive(owner)
    return out


@_inline
def _scalar_adjoint(ab, Rb, u, f, v, Rbu):
    """Adjoints (ubar, fbar, vbar) of u, f, v through ``a += uv/f``, ``R -= uu'/f``."""
    n = u.shape[0]
    au = 0.0
    uRu = 0.0
    for r in range(n):
        s = 0.0
        for c in range(n):
            s += Rb[r, c] * u[c]
        Rbu[r] = s
        au += ab[r] * u[r]
        uRu += u[r] * s
    inv = 1.0 / f
    for r in range(n):
        Rbu[r] = -2.0 * Rbu[r] * inv + ab[r] * v * inv  # now ubar
    return uRu * inv * inv - au * v * inv * inv, au * inv


@_inline
def _student_adjoint(nn, dd, dV, v, f, gb, nb, db):
    """Adjoints through the Student-t term and (n, d) of one observed scalar.

    Returns (vbar, fbar, nbar_prev, dbar_prev, dVbar) given the adjoints nb, db of the new
    (n, d).
    """
    nu, dp, q = dV * nn, dV * dd, v * v / f
    qbar = db - gb * (nu + 1.0) / (2.0 * (dp + q))
    psi = _digamma(0.5 * (nu + 1.0)) - _digamma(0.5 * nu)
    nubar = nb + 0.5 * gb * (psi + math.log(dp) - math.log(dp + q))
    dpbar = db + gb * (nu / (2.0 * dp) - (nu + 1.0) / (2.0 * (dp + q)))
    vbar = qbar * 2.0 * v / f
    fbar = -0.5 * gb / f - qbar * v * v / (f * f)
    return vbar, fbar, dV * nubar, dV * dpbar, nn * nubar + dd * dpbar


@_inline
def _replay(As, Rs, us, fs, vs, y, b, t, ha, hR):
    """The moments before every observed scalar of step t (rows 0.. of ``ha``, ``hR``)."""
    ha[0] = As[t]
    hR[0] = Rs[t]
    j = 0
    for i in range(y.shape[2]):
        if math.isnan(y[b, t, i]):
            continue
        ha[j + 1] = ha[j]
        hR[j + 1] = hR[j]
        condition(hR[j + 1], ha[j + 1], us[t, i], fs[t, i], vs[t, i])
        j += 1
    return j


@_jit
def _backward(y, F, G, W_sqrt, obs_sd, disc, blocks, scale, learned, b, rec, gb, need, t_ss,
              out, spec):  # fmt: skip
    """Add the gradient of ``gb`` times member b's log-likelihood to ``out`` (module doc).

    Steps from ``t_ss`` on are steady (they reused the gains of step ``t_ss - 1``): their
    adjoints with respect to those gains are summed and added at step ``t_ss - 1``.
    """
    As, Rs, us, fs, vs, ns, ds = rec.As, rec.Rs, rec.us, rec.fs, rec.vs, rec.ns, rec.ds
    gain = rec.gain
    _, d_y, d_F, d_G, d_W, d_sd, d_m0, d_C0, d_disc, _, d_scale = out
    T, p, n = y.shape[1], y.shape[2], G.shape[-1]
    bF, bG, bW = _pick(F.shape[0], b), _pick(G.shape[0], b), _pick(W_sqrt.shape[0], b)
    bV, bd, bs = _pick(obs_sd.shape[0], b), _pick(disc.shape[0], b), _pick(scale.shape[0], b)
    dV = scale[bs, 2]
    patterns = (_sparse(G[bG, 0]), _sparse(G[bG, 0].T.copy()), _sparse(F[bF, 0]))
    pull_back_at = spec[1] if G.shape[0] == 1 and G.shape[1] == 1 else 0
    Gp, Hp, Fp = borrow_sparse(patterns[0]), borrow_sparse(patterns[1]), borrow_sparse(patterns[2])
    vec, sq = np.zeros((2, n)), np.zeros((4, n, n))  # borrowed views of these, kept alive
    ab, ubar = _borrow(vec[0]), _borrow(vec[1])
    Rb, Pb, X, Rsum = _borrow(sq[0]), _borrow(sq[1]), _borrow(sq[2]), _borrow(sq[3])
    hist = (np.empty((p + 1, n)), np.empty((p + 1, n, n)), np.zeros((p, n + 1)))
    ha, hR, acc = _borrow(hist[0]), _borrow(hist[1]), _borrow(hist[2])  # acc: steady gains
    nb, db, dVb = 0.0, 0.0, 0.0
    for t in range(T - 1, t_ss - 1, -1):
        nb, db, dVb = _steady_adjoint(y, Gp, Fp, gain, learned, b, t, rec, gb, need, dV,
                                      ab, acc, ha, nb, db, dVb, out)  # fmt: skip
        for r in range(n):  # ab = G' ab
            s = 0.0
            for j in range(Hp.cnt[r]):
                s += Hp.val[r, j] * ab[Hp.idx[r, j]]
            ubar[r] = s
        ab[:] = ubar
    for t in range(min(T, t_ss) - 1, -1, -1):
        tF = t if F.shape[1] > 1 else 0
        tV = t if obs_sd.shape[1] > 1 else 0
        if F.shape[1] > 1:
            _sparse_into(F[bF, t], Fp)
        k = _replay(As, Rs, us, fs, vs, y, b, t, ha, hR) if need[1] else _n_observed(y, b, t)
        if learned and k == 0:
            dVb += ns[t] * nb + ds[t] * db
            nb, db = dV * nb, dV * db
        for i in range(p - 1, -1, -1):
            if math.isnan(y[b, t, i]):
                continue
            k -= 1
            u, f, v = us[t, i], fs[t, i], vs[t, i]  # a view of a borrowed array: no counting
            fbar, vbar = _scalar_adjoint(ab, Rb, u, f, v, ubar)
            if t == t_ss - 1:
                for r in range(n):
                    ubar[r] += acc[i, r]
                fbar += acc[i, n]
            if learned:
                dv, df, nb, db, dvb = _student_adjoint(ns[t], ds[t], dV, v, f, gb, nb, db)
                vbar, fbar, dVb = vbar + dv, fbar + df, dVb + dvb
            else:
                vbar -= gb * v / f
                fbar -= 0.5 * gb * (1.0 / f - v * v / (f * f))
            if need[0]:
                d_y[b, t, i] += vbar
            if not learned:
                d_sd[bV, tV, i] += 2.0 * obs_sd[bV, tV, i] * fbar
            cnt, idx, val = Fp.cnt[i], Fp.idx[i], Fp.val[i]
            for j in range(cnt):
                ubar[idx[j]] += fbar * val[j]
            if need[1]:
                a_pre, R_pre = ha[k], hR[k]
                for r in range(n):
                    s = fbar * u[r] - vbar * a_pre[r]
                    for c in range(n):
                        s += R_pre[r, c] * ubar[c]
                    d_F[bF, tF, i, r] += s
            for j in range(cnt):  # Rb += (ubar F + F' ubar') / 2, ab -= vbar F'
                c, w = idx[j], 0.5 * val[j]
                for r in range(n):
                    Rb[r, c] += w * ubar[r]
                    Rb[c, r] += w * ubar[r]
                ab[c] -= vbar * val[j]
        _predict_adjoint(G, W_sqrt, disc, blocks, need, b, bG, bW, bd, t, rec, Gp, Hp,
                         ab, Rb, Pb, X, Rsum, ubar, d_G, d_W, d_disc, pull_back_at)  # fmt: skip
    if need[3] and W_sqrt.shape[1] == 1:
        _add_noise_grad(Rsum, W_sqrt, bW, 0, d_W)
    d_m0[_pick(d_m0.shape[0], b)] += ab
    d_C0[_pick(d_C0.shape[0], b)] += Rb
    if learned:
        d_scale[bs, 0] += nb
        d_scale[bs, 1] += db
        d_scale[bs, 2] += dVb
    _keep_alive((vec, sq, hist, patterns))


@_inline
def _n_observed(y, b, t):
    """The number of observed scalars of step t."""
    k = 0
    for i in range(y.shape[2]):
        if not math.isnan(y[b, t, i]):
            k += 1
    return k


@_inline
def _steady_adjoint(y, Gp, Fp, gain, learned, b, t, rec, gb, need, dV, ab, acc, ha, nb, db,
                    dVb, out):  # fmt: skip
    """Adjoint of steady step t: ab becomes that of a_t; gains' adjoints summed in ``acc``.

    With the gradient of F wanted, the means before every scalar are recomputed into ``ha``
    from the mean entering the step and the stored innovations.
    """
    ms, vs, ns, ds = rec.ms, rec.vs, rec.ns, rec.ds
    d_y, d_F = out[1], out[2]
    p, n = y.shape[2], ab.shape[0]
    nn, dd = ns[t], ds[t]
    if need[1]:
        m = ms[t]
        for r in range(n):
            s = 0.0
            for j in range(Gp.cnt[r]):
                s += Gp.val[r, j] * m[Gp.idx[r, j]]
            ha[0, r] = s
        for i in range(p - 1):
            for r in range(n):
                ha[i + 1, r] = ha[i, r] + gain[i, r] * vs[t, i] / gain[i, n]
    for i in range(p - 1, -1, -1):
        v, f = vs[t, i], gain[i, n]
        au = 0.0
        for r in range(n):
            au += ab[r] * gain[i, r]
            acc[i, r] += ab[r] * v / f
        vbar = au / f
        fbar = -au * v / (f * f)
        if learned:
            dv, df, nb, db, dvb = _student_adjoint(nn, dd, dV, v, f, gb, nb, db)
            vbar, fbar, dVb = vbar + dv, fbar + df, dVb + dvb
        else:
            vbar -= gb * v / f
            fbar -= 0.5 * gb * (1.0 / f - v * v / (f * f))
        acc[i, n] += fbar
        if need[0]:
            d_y[b, t, i] += vbar
        if need[1]:
            for r in range(n):
                d_F[_pick(d_F.shape[0], b), 0, i, r] -= vbar * ha[i, r]
        for j in range(Fp.cnt[i]):
            ab[Fp.idx[i, j]] -= vbar * Fp.val[i, j]
    if need[2]:
        m = ms[t]
        d_G = out[3]
        for r in range(n):
            for c in range(n):
                d_G[_pick(d_G.shape[0], b), 0, r, c] += ab[r] * m[c]
    return nb, db, dVb


@_inline
def _add_noise_grad(Rb, W_sqrt, bW, tW, d_W):
    """``d_W_sqrt += 2 Rb L`` (Rb symmetric), the adjoint of ``WW = L L'``."""
    n, k = W_sqrt.shape[2], W_sqrt.shape[3]
    for r in range(n):
        for j in range(k):
            s = 0.0
            for c in range(n):
                s += Rb[r, c] * W_sqrt[bW, tW, c, j]
            d_W[bW, tW, r, j] += 2.0 * s


@_inline
def _predict_adjoint(G, W_sqrt, disc, blocks, need, b, bG, bW, bd, t, rec, Gp, Hp, ab, Rb,
                     Pb, X, Rsum, mb, d_G, d_W, d_disc, pull_back_at):  # fmt: skip
    """Adjoint of step t's prediction; leaves the adjoints of (m_{t-1}, C_{t-1}) in ab, Rb.

    ``pull_back_at``: the straight-line pull-back of a constant G, or 0 (the general one).
    """
    ms, Cs, Ps = rec.ms, rec.Cs, rec.Ps
    n = ab.shape[0]
    if G.shape[1] > 1:
        _sparse_into(G[bG, t], Gp)
        _sparse_into(G[bG, t].T.copy(), Hp)
    if need[3]:
        if W_sqrt.shape[1] > 1:
            _add_noise_grad(Rb, W_sqrt, bW, t, d_W)
        else:
            for r in range(n):
                for c in range(n):
                    Rsum[r, c] += Rb[r, c]
    delta = disc[bd]
    P = Ps[t]
    for r in range(n):
        fr = 1.0 / delta[r] - 1.0
        s = 0.0
        for c in range(n):
            Pb[r, c] = Rb[r, c] * (1.0 + blocks[r, c] * fr)
            s += blocks[r, c] * Rb[r, c] * P[r, c]
        d_disc[bd, r] -= s / (delta[r] * delta[r])
    if need[2]:  # dG += ab m' + 2 Pb G C
        tG = t if G.shape[1] > 1 else 0
        _sandwich(Gp, Cs[t], X, Rb, Rb, False)  # X = G C (Rb is overwritten below)
        m = ms[t]
        for r in range(n):
            for c in range(n):
                s = 0.0
                for j in range(n):
                    s += Pb[r, j] * X[j, c]
                d_G[bG, tG, r, c] += ab[r] * m[c] + 2.0 * s
    for r in range(n):  # mb = G' ab
        s = 0.0
        for j in range(Hp.cnt[r]):
            s += Hp.val[r, j] * ab[Hp.idx[r, j]]
        mb[r] = s
    ab[:] = mb
    if pull_back_at != 0:  # Rb = G' Pb G, straight-line (bitwise the same)
        call_address(pull_back_at, Pb.ctypes.data, Rb.ctypes.data, 0)
    else:
        _sandwich(Hp, Pb, X, Rb, Rb, False)  # Rb = G' Pb G
