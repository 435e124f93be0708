r"""Forecast draws of a DLM with a non-Gaussian family, past the data or from inside it.

For every posterior draw of the static parameters :math:`\psi`, one state path
:math:`\theta_{1:T}` is resampled from the approximating model's importance draws
(:func:`~pymc_dlm.postprocess.family_posterior.resampled_paths`; exact as ``n_importance``
grows). Then

* past the data (:func:`family_forecast_draws`): the state equation forward from
  :math:`\theta_T`, :math:`\theta_{T+h} = G_{T+h}\theta_{T+h-1} + w_{T+h}`, with the
  matrices, offset and trials of the future times (given through ``new_data`` where they
  vary over time), and :math:`y_{T+h} \sim p(y \mid \eta_{T+h})`,
  :math:`\eta_{T+h} = F_{T+h}\theta_{T+h} + o_{T+h}`;
* from an origin :math:`k` inside the data (:func:`family_insample_draws`): the observations
  after :math:`k` are treated as missing, so that the resampled path at :math:`k+1, \dots,
  k+H` is a draw of :math:`p(\theta_{k+1:k+H} \mid y_{1:k}, \psi)`, and the observations
  are drawn from the family with the in-sample matrices, offset and trials of those times.
  As for Gaussian models, the static parameters are the posterior's, fitted on the whole
  series (see :func:`pymc_dlm.lfo` for forecasts that never saw the future).

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.11 (forecasting as filtering with missing observations), §11.5 (importance sampling for
the states).
"""

import dataclasses

import numpy as np

from pymc_dlm.laplace.mode import signal_rows
from pymc_dlm.postprocess.family_posterior import (
    counts_on_path,
    draw_counts,
    resampled_paths,
    stacked,
)
from pymc_dlm.postprocess.over_draws import compile_at_draw

__all__ = ["family_forecast_draws", "family_insample_draws"]


def _at_step(x, h, time_varying, core_ndim):
    """Entry ``h`` of a future matrix with a time axis before its ``core_ndim`` core axes."""
    if not time_varying:
        return x
    return x[(..., h) + (slice(None),) * core_ndim]


def family_forecast_draws(target, draws, n_total, rng, n_importance, steps, future, progress):
    """Future observations (S, batch..., H) and states (S, batch..., H, n) past the data.

    ``future`` holds the target's parameters (F, G, W_sqrt, m0, C0_sqrt, offset, the family's
    parameter) with the model's ``pm.Data`` replaced by their future values, the offset and
    trials of length ``steps`` (or 1) along their last axis.
    """
    tv = target.op.time_varying
    fn = compile_at_draw(target, future)
    y_f, th_f = None, None
    for i, _, _, _, family, _, path, _ in resampled_paths(
        target, draws, n_total, rng, n_importance, progress, "forecast"
    ):
        F, G, W_sqrt, _, _, offset, param = (
            np.asarray(v, dtype="float64") for v in fn(*[d[i] for d in draws])
        )
        rows = signal_rows(F, "F" in tv)
        offset = np.broadcast_to(offset, (*offset.shape[:-1], steps))
        param = np.broadcast_to(param, (*param.shape[:-1], steps))
        theta = path[..., -1, :]
        thetas, ys = [], []
        for h in range(steps):
            G_h = _at_step(G, h, "G" in tv, 2)
            W_h = _at_step(W_sqrt, h, "W" in tv, 2)
            noise = rng.standard_normal((*theta.shape[:-1], W_h.shape[-1]))
            theta = np.einsum("...ij,...j->...i", G_h, theta) + np.einsum(
                "...ij,...j->...i", W_h, noise
            )
            row = rows[..., h if "F" in tv else 0, :]
            eta = np.sum(row * theta, axis=-1) + offset[..., h]
            thetas.append(theta)
            ys.append(draw_counts(family.name, eta, param[..., h], rng))
        y_f = stacked(y_f, i, n_total, np.stack(ys, axis=-1))
        th_f = stacked(th_f, i, n_total, np.stack(thetas, axis=-2))
    return y_f, th_f


def family_insample_draws(target, draws, n_total, rng, n_importance, origin, steps, progress):
    """Observations (S, batch..., H) and states (S, batch..., H, n) forecast from ``origin``."""
    data = np.array(target.data, dtype=np.float64)
    data[..., origin:] = np.nan
    masked = dataclasses.replace(target, data=data)
    window = slice(origin, origin + steps)
    y_f, th_f = None, None
    for i, _, offset, param, family, rows, path, _ in resampled_paths(
        masked, draws, n_total, rng, n_importance, progress, "forecast"
    ):
        y = counts_on_path(family, rows, path, offset, param, rng, window)
        y_f = stacked(y_f, i, n_total, y)
        th_f = stacked(th_f, i, n_total, path[..., window, :])
    return y_f, th_f
