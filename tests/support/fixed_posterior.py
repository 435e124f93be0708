"""Test helpers: posteriors held at fixed parameter values, and the trend + seasonal example.

``sample_states`` and ``forecast`` are tested at fixed parameter values: a "posterior" whose
draws all hold one value turns their Monte Carlo draws into draws from a known Gaussian.
:func:`fixed_posterior` builds such a posterior; :func:`trend_seasonal_fit` builds the model,
data and DataTree shared by ``tests/postprocess/test_states.py`` and
``tests/postprocess/test_roundtrip.py``: a local linear trend with a noiseless slope plus a
dummy seasonal(4) (a singular W), C0 = 100 I, monthly datetime coordinates and two missing
values.
"""

import numpy as np
import pandas as pd
import pymc as pm
import xarray as xr

import pymc_dlm as dlm

__all__ = ["TREND_SEASONAL", "fixed_posterior", "trend_seasonal_data", "trend_seasonal_fit"]

#: Parameter values of the trend + seasonal example (standard deviations).
TREND_SEASONAL = {"s_level": 0.4, "s_seas": 0.25, "s_obs": 0.5}


def fixed_posterior(values, n_chain, n_draw, dims=None, attrs=None):
    """A posterior Dataset whose every draw holds ``values[name]``.

    ``dims`` maps a name to the dims of its non-scalar value; ``attrs`` go on the Dataset.
    """
    dims = dims or {}
    data = {}
    for name, value in values.items():
        value = np.asarray(value, dtype=float)
        full = np.broadcast_to(value, (n_chain, n_draw, *value.shape)).copy()
        data[name] = (("chain", "draw", *dims.get(name, ())), full)
    coords = {"chain": np.arange(n_chain), "draw": np.arange(n_draw)}
    return xr.Dataset(data, coords=coords, attrs=attrs or {})


def trend_seasonal_data(T=20, missing=(3, 9), seed=42):
    """The example series: trend with drift 0.3, seasonal pattern (1, -2, 0.5, 0.5), noise."""
    rng = np.random.default_rng(seed)
    p = TREND_SEASONAL
    y = np.cumsum(rng.normal(0.3, p["s_level"], T)) + np.tile([1.0, -2.0, 0.5, 0.5], T // 4)
    y = y + rng.normal(0, p["s_obs"], T)
    y[list(missing)] = np.nan
    return y


def trend_seasonal_fit(data, n_chain, n_draw, attrs=None):
    """``(model, idata)``: the example model on ``data`` and a fixed posterior at its values.

    The model has HalfNormal priors on the three standard deviations, dims ``"month"``
    (monthly dates from 2020-01); ``idata`` holds ``posterior`` and ``observed_data``.
    """
    T = len(data)
    dates = pd.date_range("2020-01-01", periods=T, freq="MS")
    with pm.Model(coords={"month": dates}) as model:
        s_level = pm.HalfNormal("s_level", 1.0)
        s_seas = pm.HalfNormal("s_seas", 1.0)
        s_obs = pm.HalfNormal("s_obs", 1.0)
        trend = dlm.LocalLinearTrend(s_level, 0.0, C0=100.0)
        dlm.DLM(
            "y",
            trend + dlm.Seasonal(4, s_seas, C0=100.0),
            sigma_obs=s_obs,
            observed=data,
            dims="month",
        )
    post = fixed_posterior(TREND_SEASONAL, n_chain, n_draw, attrs=attrs)
    observed = xr.Dataset({"y": (("month",), data)}, coords={"month": dates})
    return model, xr.DataTree.from_dict({"posterior": post, "observed_data": observed})
