r"""The discounted log-likelihood in numba: the kernels' one forward pass.

:func:`forward` runs :func:`pymc_dlm.kalman.fused.sqrtform._filter_member` (the forward
pass of every fused kernel, with its accuracy guard) with a
:class:`~pymc_dlm.kalman.fused.records.Discounting`; its
gradient (:mod:`~pymc_dlm.kalman.fused.discounted_adjoint`) runs the kernels' one backward
pass too.
The recursion is that of :mod:`pymc_dlm.kalman.discount` from the start
:math:`(m_0, C_0)` (filtered moments at time 0, with exact diffuse states if any), one scalar
observation at a time
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

The backward pass reads the records of the forward pass: per scalar :math:`u, f, v`, per full
step :math:`P_t`, per step :math:`(n, d)` entering it (and the filtered moments entering
every step when the gradients of F or G are wanted).

Inputs (one batch axis of length 1 or B, time axes of length 1 or T), an
:data:`~pymc_dlm.kalman.fused.records.Inputs` ``inp``: ``y`` (B, T, p), NaN where missing;
``F`` (., ., p, n); ``G`` (., ., n, n); ``W_sqrt`` (., ., n, k), the factor of the ``sigma``
blocks' noise; ``obs_sd`` (., ., p); ``m0`` (., n); ``C0`` (., n, n), a covariance;
``Pinf_sqrt`` (1, n, d), the unit columns of the d exact diffuse states
(``model.priors.diffuse_columns``), or (1, 0, 0) without diffuse states; and a
:class:`~pymc_dlm.kalman.fused.records.DiscountInputs` ``dinp``: ``discount`` (., n),
:math:`\delta` per state; ``blocks`` (n, n); ``scale`` (., 3): :math:`(n_0, d_0, \delta_V)`,
read when ``learned``. With diffuse states ``m0`` and ``C0`` are the finite part of the
prior at time 0 and the kernel runs the exact diffuse period (``forward._forward``).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, §4.6, §6.3,
§10.8. Durbin, J. and Koopman, S. J. (2012), §6.4. Giles, M. (2008). Collected matrix
derivative results for forward and reverse mode algorithmic differentiation.
"""

from typing import NamedTuple

import numpy as np

from pymc_dlm.kalman.fused.forward import _diffuse_work, no_moments
from pymc_dlm.kalman.fused.native import contiguous
from pymc_dlm.kalman.fused.records import Discounting, PassBuffers, Record
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import (
    _inline,
    _jit,
    _keep_alive,
    _pick,
    borrow_inputs,
    scratch_work,
)

__all__ = ["GENERAL_ROUTINE", "Tape", "discounted_loglik", "discounting", "forward", "tape"]

#: The ``spec`` argument of the general routine: no straight-line sandwich.
GENERAL_ROUTINE = np.zeros(2, dtype=np.int64)


class Tape(NamedTuple):
    """What :func:`forward` keeps of a run (time on the first axis).

    Per scalar :math:`u, f, v` (``us``, ``fs``, ``vs``), per full step :math:`P_t`
    (``Ps``), and the learned variance's :math:`(n, d)` entering step t (``ns``, ``ds``).
    """

    us: np.ndarray
    fs: np.ndarray
    vs: np.ndarray
    Ps: np.ndarray
    ns: np.ndarray
    ds: np.ndarray


@_jit
def forward(inp, dinp, learned, b, rec, keep, spec):
    """Filter member ``b`` by the kernels' one forward pass; returns ``(loglik, t_ss)``.

    :func:`pymc_dlm.kalman.fused.sqrtform._filter_member` with a
    :class:`~pymc_dlm.kalman.fused.records.Discounting` (the log-likelihood is -inf at a
    non-positive f): covariance steps, and square-root steps where a proper prior is vague
    against the noise (the record is then that of covariance steps started from the
    square-root steps' moments, ``head_record.record_head``). With ``keep``,
    fills the :class:`Tape` ``rec``; the steady steps run from ``t_ss`` on (``t_ss = T``
    when the recursion does not settle). ``spec`` (int64, 2): the addresses of the
    straight-line sandwiches of a constant G (used for a G shared by the batch and
    time-invariant), or zeros.
    """
    T, p, n = inp.y.shape[1], inp.y.shape[2], inp.G.shape[-1]
    d = inp.Pinf_sqrt.shape[2]
    vec, sq = np.empty((3, n)), np.zeros((5, n, n))  # borrowed views of these, kept alive
    bars = np.zeros((2, max(n, 5)))
    work = scratch_work(vec, sq)
    steps = Record(us=rec.us, fs=rec.fs, vs=rec.vs, ms=np.empty((1, n)), Cs=np.empty((1, n, n)))
    dsc = discounting(dinp, learned, b, keep, (sq[3], sq[4], bars), rec)
    dw = _diffuse_work(n, d, T if keep else 1, p if keep else 1, False)
    buf = PassBuffers(steps, work, dw, dsc)
    run = _filter_member(inp, b, keep, buf, spec, no_moments(n, d))
    _keep_alive((vec, sq, bars))
    return run.loglik, run.t_ss


@_inline
def discounting(dinp, learned, b, keep, scratch, rec):
    """The :class:`~pymc_dlm.kalman.fused.records.Discounting` of member ``b``.

    ``scratch``: ``P``, ``Z`` (n, n) (``Z`` zeros) and ``bars`` (2, max(n, 5)), whose rows 0
    (first n entries) and 1 (first 3) receive the adjoints and row 1's entries 3, 4 the
    carry handed to the covariance steps after square-root steps; ``rec`` a :class:`Tape` whose
    ``Ps``, ``ns``, ``ds`` receive the records.
    """
    P, Z, bars = scratch
    return Discounting(
        on=True, learned=learned, keep=keep, delta=dinp.discount[_pick(dinp.discount.shape[0], b)],
        blocks=dinp.blocks, scale=dinp.scale[_pick(dinp.scale.shape[0], b)], P=P, Z=Z,
        Ps=rec.Ps, ns=rec.ns, ds=rec.ds, delta_bar=bars[0, :dinp.blocks.shape[0]],
        scale_bar=bars[1, :3], carry=bars[1, 3:5],
    )  # fmt: skip


@_jit
def discounted_loglik(inp, dinp, learned, spec):
    """The log-likelihood per batch member (B,): the forward pass alone.

    ``spec``: the straight-line sandwiches of a constant G, or zeros (see :func:`forward`).
    """
    B, T, p = inp.y.shape
    n = inp.G.shape[-1]
    if T == 0:
        return np.zeros(B)
    # Borrowed views (no reference counting at the pass's steps) of C-contiguous inputs
    # (``contiguous`` copies only those that are not).
    held = contiguous(inp)
    rec = tape(1, p, n)
    out = np.empty(B)
    for b in range(B):
        out[b] = forward(borrow_inputs(held), dinp, learned, b, rec, bool(0), spec)[0]
    _keep_alive(held)
    return out


@_inline
def tape(T, p, n):
    """A :class:`Tape` for T steps of p scalars and n states (T = 1: no tape kept)."""
    return Tape(
        us=np.empty((T, p, n)),
        fs=np.empty((T, p)),
        vs=np.empty((T, p)),
        Ps=np.empty((T, n, n)),
        ns=np.empty(T),
        ds=np.empty(T),
    )
