r"""Predicted and filtered moments of a discounted DLM at fixed values: ``kalman_filter``'s kernel.

:func:`discounted_moments_into` runs, for every batch member, the kernels' one forward pass
(:func:`~pymc_dlm.kalman.fused.sqrtform._filter_member`, accuracy guard included) with a
:class:`~pymc_dlm.kalman.fused.records.Discounting`, recording instead of the adjoint's tape
the moments of :mod:`~pymc_dlm.kalman.fused.moments` (timing as in R ``dlm``, t = 1..T,
index t - 1 here): :math:`a_t, R_t` with

.. math::

    R_t = P_t + D \circ P_t + L_W L_W^\top, \quad P_t = G_t C_{t-1} G_t^\top,

:math:`m_t, C_t`, the diffuse factors while diffuse, every step's log-likelihood term, and,
with a learned variance, the carry :math:`(n_{t-1}, d_{t-1})` entering every step, all at
unit scale (West & Harrison 1997, §4.6, §6.3, §10.8). Where a proper prior is vague against
the noise the steps are the square-root ones of
:mod:`~pymc_dlm.kalman.fused.discounting_sqrt`, as in the log-likelihood.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§6.3, §6.4.
"""

import numpy as np

from pymc_dlm.kalman.constants import FAILED, OK
from pymc_dlm.kalman.fused.discounted import Tape, discounting
from pymc_dlm.kalman.fused.forward import _diffuse_work
from pymc_dlm.kalman.fused.records import Moments, PassBuffers
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import _jit, _keep_alive, no_record, scratch_work

__all__ = ["FAILED", "OK", "discounted_moments_into"]


@_jit
def discounted_moments_into(inp, dinp, learned, out, ns, ds):
    """Moments of every member into ``out``, the learned variance's carry into ``ns``, ``ds``.

    ``out``: a :class:`~.records.MomentOutputs`; ``inp``, ``dinp``, ``learned``: as for
    :func:`~pymc_dlm.kalman.fused.discounted.discounted_loglik`. ``out``'s smoothed moments
    have no member entries (no smoother runs here); ``out.status`` receives :data:`OK`, or
    :data:`FAILED` for a member whose log-likelihood is -inf (a forecast variance that is
    not positive, or diffuse states left at the end: moments then up to that step).
    ``ns``, ``ds`` (B, T): the learned variance's carry entering every step.
    """
    B, T, p = inp.y.shape
    n, d = inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    vec, sq = np.empty((3, n)), np.zeros((5, n, n))
    bars = np.zeros((2, max(n, 5)))
    work = scratch_work(vec, sq)
    Ps = np.empty((T, n, n))  # the discounting's record of P_t (not read here)
    unused = np.empty((0, n, n))  # no factors of the square-root steps kept
    n_sqrt = np.zeros(0, dtype=np.int64)
    # The general prediction routine, as an array of the callers' type (a global would be a
    # read-only constant here: a type of its own, and the forward pass compiled again).
    spec = np.zeros(2, dtype=np.int64)
    for b in range(B):
        out.ll_t[b] = 0.0
        out.pPinf_f[b] = 0.0
        out.fPinf_f[b] = 0.0
        ns[b] = np.nan
        ds[b] = np.nan
        tape = Tape(
            us=np.empty((1, 1, 1)), fs=np.empty((1, 1)), vs=np.empty((1, 1)),
            Ps=Ps, ns=ns[b], ds=ds[b],
        )  # fmt: skip
        dsc = discounting(dinp, learned, b, bool(1), (sq[3], sq[4], bars), tape)
        buf = PassBuffers(no_record(n), work, _diffuse_work(n, d, T, p, False), dsc)
        mom = Moments(
            pa=out.pa[b], pR=out.pR[b], pPinf_f=out.pPinf_f[b], fm=out.fm[b], fC=out.fC[b],
            fPinf_f=out.fPinf_f[b], ll_t=out.ll_t[b], fU=unused, n_sqrt=n_sqrt,
        )  # fmt: skip
        run = _filter_member(inp, b, bool(0), buf, spec, mom)
        out.status[b] = OK if run.loglik > -np.inf else FAILED
    _keep_alive((vec, sq, bars, Ps))
