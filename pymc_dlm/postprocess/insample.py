r"""Forecasts from an origin inside the sample, for backtesting.

With the observations after the origin :math:`k` treated as missing, the Kalman filter and
FFBS give, for every posterior draw, a joint path
:math:`\theta_{k+1:k+H} \sim p(\theta_{k+1:k+H} | y_{1:k}, \psi)`: the model's own
:math:`H`-step forecast from :math:`k`, with the in-sample matrices (regressors included) of
those times. Observations :math:`y_{k+h} = F_{k+h}\theta_{k+h} + v_{k+h}` are added as in
:func:`pymc_dlm.posterior_predictive`. The static parameters are the posterior's, fitted on
the whole series, as statsmodels' ``get_prediction(dynamic=...)`` uses the full-sample
estimates; for a forecast that never saw the future, refit (see :func:`pymc_dlm.lfo`).

References
----------
Durbin & Koopman (2012), §4.11 (forecasting as filtering with missing observations).
"""

import dataclasses

import numpy as np

from pymc_dlm.postprocess.predictive import replicates_over_draws
from pymc_dlm.postprocess.states import draw_paths

__all__ = ["check_origin", "insample_draws"]


def check_origin(origin, steps, T):
    """``origin`` is a position 1..T-1 (observations used) with ``origin + steps <= T``."""
    if isinstance(origin, bool) or not isinstance(origin, (int, np.integer)):
        raise TypeError(f"origin must be an integer position (observations used), got {origin!r}")
    if not 1 <= origin < T:
        raise ValueError(
            f"origin must be between 1 and {T - 1} (the series has {T}), got {origin}"
        )
    if origin + steps > T:
        raise ValueError(
            f"origin + steps must not pass the end of the data ({T} steps): got origin={origin}, "
            f"steps={steps}; forecast past the end with origin=None"
        )


def insample_draws(target, draws, origin, steps, n_total, rng, chunk_size, progressbar):
    """Observations (S, *batch, H[, p]) and states (S, *batch, H, n) forecast from ``origin``."""
    time_axis = -1 if target.op.univariate else -2
    data = np.array(target.data, dtype=np.float64)
    index = [slice(None)] * data.ndim
    index[time_axis] = slice(origin, None)
    data[tuple(index)] = np.nan
    masked = dataclasses.replace(target, data=data)
    _, path, _, _ = draw_paths(
        masked, draws, n_total, rng, chunk_size, progressbar, f"forecast: {target.name}"
    )
    y = replicates_over_draws(target, draws, path, rng, chunk_size)
    y = y[..., origin : origin + steps, :]
    theta = path[..., origin : origin + steps, :]
    return (y[..., 0] if target.op.univariate else y), theta
