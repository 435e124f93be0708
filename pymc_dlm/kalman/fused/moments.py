r"""Filtered, predicted and smoothed moments at fixed values: the kernels of ``kalman_smoother``.

:func:`pymc_dlm.kalman_filter` and :func:`pymc_dlm.kalman_smoother` run, for every batch
member, the forward pass of the state draws
(:func:`~pymc_dlm.kalman.fused.states._filter_states`: the univariate covariance filter, with
exact diffuse steps while :math:`P_\infty \neq 0` and square-root steps where a vague proper
prior would make the covariance form lose digits) recording the predicted and the filtered
moments, then the backward pass of
:func:`~pymc_dlm.kalman.fused.backward.backward_pass` in its smoothing mode. Timing as in R
``dlm``, t = 1..T (index t - 1 here):

* predicted :math:`a_t = E[\theta_t | y_{1:t-1}]`, :math:`R_t` (the finite part
  :math:`P_{*,t}` while diffuse) and the diffuse factor :math:`B^-_t` (``pPinf_f``),
  :math:`P_{\infty,t} = B^-_t B_t^{-\top}`;
* filtered :math:`m_t, C_t` (finite part) and :math:`B_t` (``fPinf_f``);
* the log-likelihood term of every step (exact diffuse terms while diffuse);
* smoothed :math:`s_t = E[\theta_t | y_{1:T}]`, :math:`S_t`.

The kernels are compiled once and cached on disk by numba: a new model structure compiles
nothing here.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §4.4, §5.2, §6.4; Särkkä, S. (2013). *Bayesian Filtering and Smoothing*, §8.2.
"""

import numpy as np

from pymc_dlm.kalman.constants import FAILED, NOT_IDENTIFIED, OK
from pymc_dlm.kalman.fused.backward import backward_pass
from pymc_dlm.kalman.fused.prebuilt import attach
from pymc_dlm.kalman.fused.records import MomentOutputs, Moments
from pymc_dlm.kalman.fused.states import _filter_states
from pymc_dlm.kalman.fused.steps import _jit

__all__ = ["FAILED", "NOT_IDENTIFIED", "OK", "moment_outputs", "moments_into"]


def moment_outputs(B, T, n, d, smooth=True):
    """New :class:`~pymc_dlm.kalman.fused.records.MomentOutputs` for :func:`moments_into`.

    B members, T steps, n states, d diffuse columns (the diffuse factors start at zero);
    without ``smooth`` the smoothed moments have no member entries (no smoother run).
    """
    S = B if smooth else 0
    return MomentOutputs(
        pa=np.empty((B, T, n)), pR=np.empty((B, T, n, n)), pPinf_f=np.zeros((B, T, n, d)),
        fm=np.empty((B, T, n)), fC=np.empty((B, T, n, n)), fPinf_f=np.zeros((B, T, n, d)),
        ll_t=np.empty((B, T)), sm=np.empty((S, T, n)), sC=np.empty((S, T, n, n)),
        status=np.empty(B, dtype=np.int64),
    )  # fmt: skip


@_jit
def moments_into(inp, out, lo, hi):
    """Moments of members ``lo .. hi - 1`` into the given arrays (module docstring).

    ``inp``: the :data:`~pymc_dlm.kalman.fused.records.Inputs` in the layout of
    :mod:`pymc_dlm.kalman.fused.kernels`; ``out``: a
    :class:`~pymc_dlm.kalman.fused.records.MomentOutputs`, whose ``status`` receives per
    member :data:`OK`, :data:`FAILED` or :data:`NOT_IDENTIFIED` (the callers then run the
    square-root scans, the definition).
    """
    smooth = out.sm.shape[0] > 0
    eps = np.empty((1, 1))  # the smoothing mode draws nothing
    status = out.status
    T, n = out.fm.shape[1], out.fm.shape[2]
    Us = np.empty((T if smooth else 0, n, n))  # factors of the square-root steps
    n_sqrt = np.zeros(1, dtype=np.int64)
    for b in range(lo, hi):
        out.ll_t[b] = 0.0
        out.pPinf_f[b] = 0.0
        out.fPinf_f[b] = 0.0
        mom = Moments(
            pa=out.pa[b],
            pR=out.pR[b],
            pPinf_f=out.pPinf_f[b],
            fm=out.fm[b],
            fC=out.fC[b],
            fPinf_f=out.fPinf_f[b],
            ll_t=out.ll_t[b],
            fU=Us,
            n_sqrt=n_sqrt,
        )
        t_end, ok = _filter_states(inp, b, mom)
        status[b] = OK
        if not ok:
            status[b] = FAILED
            continue
        if smooth:
            filtered = (mom.fm, mom.fC, mom.fPinf_f, Us, n_sqrt[0])
            smoothed = (out.sm[b], out.sC[b])
            found = backward_pass(inp.G, inp.W_sqrt, b, filtered, t_end, eps, smoothed, bool(1))
            if not found:
                status[b] = NOT_IDENTIFIED


# Loaded from the store of prebuilt kernels when it has them (kalman.fused.prebuilt).
attach(moments_into, "moments_into")
