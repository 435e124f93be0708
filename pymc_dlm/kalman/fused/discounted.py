r"""The numba kernel of the discounted log-likelihood and its exact reverse-mode gradient.

The recursion is that of :mod:`pymc_dlm.kalman.discount` from a proper start
:math:`(m_0, C_0)` (filtered moments at time 0; the caller may start later, for example at
the end of an exact diffuse period), one scalar observation at a time
(Durbin & Koopman 2012, §6.4):

.. math::

    a_t = G_t m_{t-1}, \quad P_t = G_t C_{t-1} G_t^\top, \quad
    R_t = P_t + D \circ P_t + L_W L_W^\top, \quad D_{ij} = B_{ij} (1/\delta_i - 1),

with :math:`B` the 0/1 mask of the discounted blocks; then for every observed scalar
:math:`y_{t,i}`: :math:`v = y_{t,i} - F_i a`, :math:`u = R F_i^\top`, :math:`f = F_i u + h_i`,
:math:`a \mathrel{+}= u v / f`, :math:`R \mathrel{-}= u u^\top / f`. With a known variance
:math:`h_i` is the observation variance and the term is :math:`\log N(v; 0, f)`. With a
learned variance (one series, unit scale, :math:`h = 1`) the carry adds
:math:`(n, d)` and, with :math:`\nu = \delta_V n_{t-1}`, :math:`d' = \delta_V d_{t-1}`,
:math:`q = v^2 / f`, the term is the Student-t

.. math::

    \log\Gamma(\tfrac{\nu+1}2) - \log\Gamma(\tfrac\nu2) - \tfrac12\log\pi
    + \tfrac\nu2 \log d' - \tfrac{\nu+1}2 \log(d' + q) - \tfrac12 \log f,

(:math:`\log t_\nu(v; 0, S_{t-1} f)`, :math:`S_{t-1} = d_{t-1}/n_{t-1}`), and
:math:`n_t = \nu + 1`, :math:`d_t = d' + q`; a missing value leaves :math:`n_t = \nu`,
:math:`d_t = d'`.

The backward pass is the adjoint of exactly this computation (Giles 2008), backwards in time
from the records of the forward pass: per step the predicted moments, the filtered moments
entering it and :math:`P_t`; per scalar :math:`u, f, v`; per step :math:`(n, d)` entering it.

Inputs (one batch axis of length 1 or B, time axes of length 1 or T): ``y`` (B, T, p), NaN
where missing; ``F`` (., ., p, n); ``G`` (., ., n, n); ``W_sqrt`` (., ., n, k), the factor of
the ``sigma`` blocks' noise; ``obs_sd`` (., ., p); ``m0`` (., n); ``C0`` (., n, n), a
covariance; ``discount`` (., n), :math:`\delta` per state; ``blocks`` (n, n); ``scale``
(., 3): :math:`(n_0, d_0, \delta_V)`, read when ``learned``.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, §4.6, §6.3,
§10.8. Durbin, J. and Koopman, S. J. (2012), §6.4. Giles, M. (2008). Collected matrix
derivative results for forward and reverse mode algorithmic differentiation.
"""

import math
from typing import NamedTuple

import numpy as np

from pymc_dlm.kalman.constants import LOG_2PI
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _pick,
    _sandwich,
    _settled,
    _sparse,
    _sparse_into,
    borrow_sparse,
)

__all__ = [
    "GENERAL_ROUTINE", "Tape", "borrow_tape", "discounted_loglik", "forward", "tape", "condition",
]  # fmt: skip

#: The ``spec`` argument of the general routine: no straight-line sandwich.
GENERAL_ROUTINE = np.zeros(2, dtype=np.int64)

_LOG_PI = math.log(math.pi)


class Tape(NamedTuple):
    """What the forward pass keeps for the backward pass (time on the first axis).

    Filtered moments entering step t (``ms``, ``Cs``), predicted ones (``As``, ``Rs``),
    :math:`P_t` (``Ps``), per scalar :math:`u, f, v` (``us``, ``fs``, ``vs``), the learned
    variance's :math:`(n, d)` entering step t (``ns``, ``ds``) and the gains
    :math:`(u_i, f_i)` of the last full step (``gain``, (p, n + 1)), reused by the steady steps.
    """

    ms: np.ndarray
    Cs: np.ndarray
    As: np.ndarray
    Rs: np.ndarray
    Ps: np.ndarray
    us: np.ndarray
    fs: np.ndarray
    vs: np.ndarray
    ns: np.ndarray
    ds: np.ndarray
    gain: np.ndarray


@_inline
def _student_term(nu, dp, q, f):
    """The Student-t term of one observed scalar (module docstring)."""
    return (
        math.lgamma(0.5 * (nu + 1.0))
        - math.lgamma(0.5 * nu)
        - 0.5 * _LOG_PI
        + 0.5 * nu * math.log(dp)
        - 0.5 * (nu + 1.0) * math.log(dp + q)
        - 0.5 * math.log(f)
    )


@_inline
def _predict(Gp, m, C, WW, disc, blocks, a, P, R, X, predict_at, Z):
    """``a = G m``, ``P = G C G'``, ``R = P + D∘P + WW`` (exactly symmetric).

    ``predict_at``: the address of the straight-line sandwich of a constant G
    (:mod:`~pymc_dlm.kalman.fused.specialize`; bitwise the general routine's), called with
    the zero matrix ``Z`` as its added term, or 0.
    """
    n = m.shape[0]
    for r in range(n):
        s = 0.0
        for j in range(Gp.cnt[r]):
            s += Gp.val[r, j] * m[Gp.idx[r, j]]
        a[r] = s
    if predict_at != 0:
        call_address(predict_at, C.ctypes.data, P.ctypes.data, Z.ctypes.data)
    else:
        _sandwich(Gp, C, X, P, WW, False)
    for r in range(n):
        fr = 1.0 / disc[r] - 1.0
        for c in range(n):
            R[r, c] = P[r, c] + blocks[r, c] * fr * P[r, c] + WW[r, c]


@_inline
def _noise(W_sqrt, b, t, WW):
    """``WW = L L'`` of the noise factor ``L = W_sqrt[b, t]``."""
    n, k = W_sqrt.shape[2], W_sqrt.shape[3]
    for r in range(n):
        for c in range(n):
            s = 0.0
            for j in range(k):
                s += W_sqrt[b, t, r, j] * W_sqrt[b, t, c, j]
            WW[r, c] = s


@_inline
def _gain(R, a, Fp, i, y, h, u):
    """``u = R F_i'``; returns ``(f, v)``."""
    n = a.shape[0]
    v = y
    for j in range(Fp.cnt[i]):
        v -= Fp.val[i, j] * a[Fp.idx[i, j]]
    for r in range(n):
        s = 0.0
        for j in range(Fp.cnt[i]):
            s += R[r, Fp.idx[i, j]] * Fp.val[i, j]
        u[r] = s
    f = h
    for j in range(Fp.cnt[i]):
        f += Fp.val[i, j] * u[Fp.idx[i, j]]
    return f, v


@_inline
def condition(R, a, u, f, v):
    """``a += u v / f``, ``R -= u u' / f`` (exactly symmetric)."""
    n = a.shape[0]
    inv = 1.0 / f
    vf = v * inv
    for r in range(n):
        a[r] += u[r] * vf
    for r in range(n):  # u_r u_c = u_c u_r keeps R exactly symmetric
        ur = u[r]
        for c in range(n):
            R[r, c] -= (ur * u[c]) * inv


@_jit
def forward(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, b, rec, keep,
            spec):  # fmt: skip
    """Filter member ``b``; returns its log-likelihood (-inf at a non-positive f).

    With ``keep``, fills the records ``rec`` = (ms, Cs, As, Rs, Ps, us, fs, vs, ns, ds) used
    by the backward pass: filtered moments entering step t, predicted ones, P_t, per scalar
    u, f, v, and (n, d) entering step t. ``spec`` (int64, 2): the addresses of the
    straight-line sandwiches of a constant G (used for a G shared by the batch and
    time-invariant), or zeros.
    """
    ms, Cs, As, Rs, Ps, us, fs, vs = rec.ms, rec.Cs, rec.As, rec.Rs, rec.Ps, rec.us, rec.fs, rec.vs
    ns, ds, gain = rec.ns, rec.ds, rec.gain
    T, p, n = y.shape[1], y.shape[2], G.shape[-1]
    bF, bG, bW = _pick(F.shape[0], b), _pick(G.shape[0], b), _pick(W_sqrt.shape[0], b)
    bV, bd, bs = _pick(obs_sd.shape[0], b), _pick(disc.shape[0], b), _pick(scale.shape[0], b)
    steady = F.shape[1] == 1 and G.shape[1] == 1 and W_sqrt.shape[1] == 1
    steady = steady and obs_sd.shape[1] == 1
    last_nan = -1
    for t in range(T):
        for i in range(p):
            if math.isnan(y[b, t, i]):
                last_nan = t
    G_pattern, F_pattern = _sparse(G[bG, 0]), _sparse(F[bF, 0])
    Gp, Fp = borrow_sparse(G_pattern), borrow_sparse(F_pattern)
    vec, sq = np.empty((3, n)), np.zeros((6, n, n))  # borrowed views of these, kept alive
    m, a, u = _borrow(vec[0]), _borrow(vec[1]), _borrow(vec[2])
    C, P, R, X, WW = _borrow(sq[0]), _borrow(sq[1]), _borrow(sq[2]), _borrow(sq[3]), _borrow(sq[4])
    Z = _borrow(sq[5])  # zeros: the added term of the straight-line sandwich
    predict_at = spec[0] if G.shape[0] == 1 and G.shape[1] == 1 else 0
    m[:] = m0[_pick(m0.shape[0], b)]
    C[:, :] = C0[_pick(C0.shape[0], b)]
    _noise(W_sqrt, bW, 0, WW)
    delta = disc[bd]
    nn, dd, dV = scale[bs, 0], scale[bs, 1], scale[bs, 2]
    total = 0.0
    t_ss = T
    for t in range(T):
        if G.shape[1] > 1:
            _sparse_into(G[bG, t], Gp)
        if F.shape[1] > 1:
            _sparse_into(F[bF, t], Fp)
        if W_sqrt.shape[1] > 1:
            _noise(W_sqrt, bW, t, WW)
        _predict(Gp, m, C, WW, delta, blocks, a, P, R, X, predict_at, Z)
        if keep:
            _keep(ms, Cs, As, Rs, Ps, t, m, C, a, R, P)
            ns[t], ds[t] = nn, dd
        tV = t if obs_sd.shape[1] > 1 else 0
        observed = False
        for i in range(p):
            yi = y[b, t, i]
            if math.isnan(yi):
                continue
            observed = True
            h = 1.0 if learned else obs_sd[bV, tV, i] * obs_sd[bV, tV, i]
            f, v = _gain(R, a, Fp, i, yi, h, u)
            if not (f > 0.0) or not math.isfinite(f):
                return -np.inf, T
            for r in range(n):
                gain[i, r] = u[r]
            gain[i, n] = f
            if keep:
                for r in range(n):
                    us[t, i, r] = u[r]
                fs[t, i], vs[t, i] = f, v
            if learned:
                nu, dp, q = dV * nn, dV * dd, v * v / f
                total += _student_term(nu, dp, q, f)
                nn, dd = nu + 1.0, dp + q
            else:
                total += -0.5 * (LOG_2PI + math.log(f) + v * v / f)
            condition(R, a, u, f, v)
        if learned and not observed:
            nn, dd = dV * nn, dV * dd
        settled = steady and t > last_nan and t > 0 and _settled(R, C)
        _copy(a, R, m, C)
        if settled:
            t_ss = t + 1
            break
    if t_ss < T:
        total = _steady_steps(y, Gp, Fp, gain, m, a, nn, dd, dV, learned, b, t_ss, rec, keep,
                              total)  # fmt: skip
    _keep_alive((vec, sq, G_pattern, F_pattern))
    return total, t_ss


@_inline
def _copy(a, R, m, C):
    """``m = a``, ``C = R`` element by element (no array object made in the loop)."""
    n = a.shape[0]
    for r in range(n):
        m[r] = a[r]
        for c in range(n):
            C[r, c] = R[r, c]


@_inline
def _keep(ms, Cs, As, Rs, Ps, t, m, C, a, R, P):
    """Record step t's moments entering it, predicted, and P (see :class:`Tape`)."""
    n = m.shape[0]
    for r in range(n):
        ms[t, r], As[t, r] = m[r], a[r]
        for c in range(n):
            Cs[t, r, c], Rs[t, r, c], Ps[t, r, c] = C[r, c], R[r, c], P[r, c]


@_inline
def _steady_steps(y, Gp, Fp, gain, m, a, nn, dd, dV, learned, b, t_ss, rec, keep, total):
    """Steps ``t_ss .. T - 1`` with the gains of step ``t_ss - 1``: the mean only."""
    ms, vs, ns, ds = rec.ms, rec.vs, rec.ns, rec.ds
    T, p, n = y.shape[1], y.shape[2], m.shape[0]
    for t in range(t_ss, T):
        if keep:
            ms[t], ns[t], ds[t] = m, nn, dd
        for r in range(n):
            s = 0.0
            for j in range(Gp.cnt[r]):
                s += Gp.val[r, j] * m[Gp.idx[r, j]]
            a[r] = s
        for i in range(p):
            v = y[b, t, i]
            for j in range(Fp.cnt[i]):
                v -= Fp.val[i, j] * a[Fp.idx[i, j]]
            f = gain[i, n]
            if keep:
                vs[t, i] = v
            for r in range(n):
                a[r] += gain[i, r] * v / f
            if learned:
                nu, dp, q = dV * nn, dV * dd, v * v / f
                total += _student_term(nu, dp, q, f)
                nn, dd = nu + 1.0, dp + q
            else:
                total += -0.5 * (LOG_2PI + math.log(f) + v * v / f)
        m[:] = a
    return total


@_jit
def discounted_loglik(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, spec):
    """The log-likelihood per batch member (B,): the forward pass alone.

    ``spec``: the straight-line sandwiches of a constant G, or zeros (see :func:`forward`).
    """
    B, T, p = y.shape
    n = G.shape[-1]
    if T == 0:
        return np.zeros(B)
    owner = tape(1, p, n)
    rec = borrow_tape(owner)
    out = np.empty(B)
    for b in range(B):
        out[b] = forward(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, b,
                          rec, bool(0), spec)[0]  # fmt: skip
    _keep_alive(owner)
    return out


@_inline
def borrow_tape(tape):
    """Borrowed views of a :class:`Tape`'s arrays (no reference counting in the loops)."""
    return Tape(
        ms=_borrow(tape.ms),
        Cs=_borrow(tape.Cs),
        As=_borrow(tape.As),
        Rs=_borrow(tape.Rs),
        Ps=_borrow(tape.Ps),
        us=_borrow(tape.us),
        fs=_borrow(tape.fs),
        vs=_borrow(tape.vs),
        ns=_borrow(tape.ns),
        ds=_borrow(tape.ds),
        gain=_borrow(tape.gain),
    )


@_inline
def tape(T, p, n):
    """A :class:`Tape` for T steps of p scalars and n states (T = 1: no tape kept)."""
    return Tape(
        ms=np.empty((T, n)),
        Cs=np.empty((T, n, n)),
        As=np.empty((T, n)),
        Rs=np.empty((T, n, n)),
        Ps=np.empty((T, n, n)),
        us=np.empty((T, p, n)),
        fs=np.empty((T, p)),
        vs=np.empty((T, p)),
        ns=np.empty(T),
        ds=np.empty(T),
        gain=np.empty((p, n + 1)),
    )
