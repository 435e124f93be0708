r"""The discounted log-likelihood in numba: the kernels' one forward pass, and its tape.

:func:`forward` runs :func:`pymc_dlm.kalman.fused.forward._forward` (the forward recursion
of every fused kernel) with a :class:`~pymc_dlm.kalman.fused.records.Discounting`, and keeps
the :class:`Tape` that :mod:`~pymc_dlm.kalman.fused.discounted_adjoint` differentiates.
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

from typing import NamedTuple

import numpy as np

from pymc_dlm.kalman.fused.forward import _diffuse_work, _forward, no_moments
from pymc_dlm.kalman.fused.records import Discounting, Inputs, Record
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _inline,
    _jit,
    _keep_alive,
    _pick,
    scratch_work,
)

__all__ = ["GENERAL_ROUTINE", "Tape", "borrow_tape", "discounted_loglik", "forward", "tape"]

#: The ``spec`` argument of the general routine: no straight-line sandwich.
GENERAL_ROUTINE = np.zeros(2, dtype=np.int64)


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


@_jit
def forward(y, F, G, W_sqrt, obs_sd, m0, C0, disc, blocks, scale, learned, b, rec, keep,
            spec):  # fmt: skip
    """Filter member ``b`` by the kernels' one forward pass; returns ``(loglik, t_ss)``.

    :func:`pymc_dlm.kalman.fused.forward._forward` with a
    :class:`~pymc_dlm.kalman.fused.records.Discounting` (the log-likelihood is -inf at a
    non-positive f). With ``keep``, fills the :class:`Tape` ``rec`` read by the backward
    pass, including the gains of step ``t_ss - 1`` reused by the steady steps from ``t_ss``
    on (``t_ss = T`` when the recursion does not settle). ``spec`` (int64, 2): the
    addresses of the straight-line sandwiches of a constant G (used for a G shared by the
    batch and time-invariant), or zeros.
    """
    T, p, n = y.shape[1], y.shape[2], G.shape[-1]
    inp = Inputs(y=y, F=F, G=G, W_sqrt=W_sqrt, obs_sd=obs_sd, m0=m0, C0=C0,
                 Pinf_sqrt=np.empty((1, n, 0)))  # fmt: skip
    vec, sq = np.empty((3, n)), np.empty((5, n, n))  # borrowed views of these, kept alive
    work = scratch_work(vec, sq)
    sq[4] = 0.0
    steps = Record(us=rec.us, fs=rec.fs, vs=rec.vs, ms=np.empty((1, n)), Cs=np.empty((1, n, n)))
    dsc = Discounting(
        on=True, learned=learned, keep=keep, delta=disc[_pick(disc.shape[0], b)],
        blocks=blocks, scale=scale[_pick(scale.shape[0], b)], P=sq[3], Z=sq[4], ms=rec.ms,
        Cs=rec.Cs, As=rec.As, Rs=rec.Rs, Ps=rec.Ps, ns=rec.ns, ds=rec.ds,
    )  # fmt: skip
    dw = _diffuse_work(n, 0, 1, p, False)
    run = _forward(inp, b, keep, steps, work, dw, no_moments(n, 0), spec, int(0), T, bool(1), dsc)
    if keep and run.t_ss < T:  # the gains the steady steps reused
        for i in range(p):
            for r in range(n):
                rec.gain[i, r] = rec.us[run.t_ss - 1, i, r]
            rec.gain[i, n] = rec.fs[run.t_ss - 1, i]
    _keep_alive((vec, sq))
    return run.loglik, run.t_ss


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
