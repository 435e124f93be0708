r"""Filtered, predicted and smoothed moments at fixed values: the kernels of ``kalman_smoother``.

:func:`pymc_dlm.kalman_filter` and :func:`pymc_dlm.kalman_smoother` run, for every batch
member, the forward pass of the state draws
(:func:`~pymc_dlm.kalman.fused.states._filter_states`: the univariate covariance filter, with
exact diffuse steps while :math:`P_\infty \neq 0`) recording the predicted and the filtered
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

from pymc_dlm.kalman.constants import CANCELLATION_LIMIT, FAILED, LOSSY, NOT_IDENTIFIED, OK
from pymc_dlm.kalman.fused.backward import backward_pass
from pymc_dlm.kalman.fused.records import Inputs, Moments
from pymc_dlm.kalman.fused.states import _filter_states
from pymc_dlm.kalman.fused.steps import _jit

__all__ = ["FAILED", "LOSSY", "NOT_IDENTIFIED", "OK", "moments_into"]


@_jit
def moments_into(
    y,
    F,
    G,
    W_sqrt,
    obs_sd,
    m0,
    C0,
    Pinf_sqrt,
    pa,
    pR,
    pPinf_f,
    fm,
    fC,
    fPinf_f,
    ll_t,
    sm,
    sC,
    status,
    lo,
    hi,
):
    """Moments of members ``lo .. hi - 1`` into the given arrays (module docstring).

    Inputs in the layout of :mod:`pymc_dlm.kalman.fused.kernels`. Outputs, per member b:
    ``pa``, ``fm`` (n_batch, T, n); ``pR``, ``fC`` (n_batch, T, n, n); ``pPinf_f``,
    ``fPinf_f`` (n_batch, T, n, d), zero outside the diffuse period; ``ll_t`` (n_batch, T);
    ``sm`` (n_batch, T, n) and ``sC`` (n_batch, T, n, n), or arrays with no member axis
    entries (shape (0, ...)) to skip the smoother; ``status`` (n_batch,) int64: :data:`OK`,
    :data:`FAILED`, :data:`NOT_IDENTIFIED` or :data:`LOSSY` (the callers then run the
    square-root scans, the definition).
    """
    inp = Inputs(y, F, G, W_sqrt, obs_sd, m0, C0, Pinf_sqrt)
    smooth = sm.shape[0] > 0
    eps = np.empty((1, 1))  # the smoothing mode draws nothing
    for b in range(lo, hi):
        ll_t[b] = 0.0
        pPinf_f[b] = 0.0
        fPinf_f[b] = 0.0
        mom = Moments(
            pa=pa[b],
            pR=pR[b],
            pPinf_f=pPinf_f[b],
            fm=fm[b],
            fC=fC[b],
            fPinf_f=fPinf_f[b],
            ll_t=ll_t[b],
        )
        t_end, ok, worst = _filter_states(inp, b, mom)
        status[b] = OK
        if not ok:
            status[b] = FAILED
            continue
        if Pinf_sqrt.shape[2] == 0 and worst > CANCELLATION_LIMIT:
            status[b] = LOSSY
            continue
        if smooth:
            Pinf_f = fPinf_f[b]
            found = backward_pass(
                G, W_sqrt, b, fm[b], fC[b], Pinf_f, t_end, eps, sm[b], sC[b], bool(1)
            )
            if not found:
                status[b] = NOT_IDENTIFIED
