"""Numbers computed by the kernels, to compare a store of prebuilt kernels with numba's JIT.

``tests/kernels/test_prebuilt.py`` computes :func:`results` in the test process (kernels
compiled for this machine's processor) and in a child process that loads them from a store
built for the generic CPU (run as ``python -m tests.support.prebuilt_case``, which prints the
results as JSON, with how each kernel was obtained). Numbers are lists of floats, compared
bit for bit.
"""

import json

import numpy as np
import pymc as pm
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.kalman.fused import moments, native, states

T = 40


def _data():
    rng = np.random.default_rng(3)
    y = np.cumsum(rng.normal(size=T)) + np.sin(np.arange(T)) + rng.normal(size=T)
    y[[4, 21]] = np.nan
    return y


def _system(s):
    """A local linear trend with a seasonal and a proper prior."""
    trend = dlm.LocalLinearTrend(s, s, m0=[0.0, 0.0], C0=[10.0, 1.0])
    return trend + dlm.Seasonal(4, sigma=s)


def _model():
    """:func:`_system` observed with noise, two missing values."""
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0)
        dlm.DLM("y", _system(s), sigma_obs=e, observed=_data())
    return model


def results():
    """Log-density and gradient at two points, state draws, a forecast draw, the smoother."""
    model = _model()
    logp_dlogp = model.logp_dlogp_function(ravel_inputs=True)
    logp_dlogp.set_extra_values({})
    out = {}
    for i, x in enumerate(([-0.3, 0.2], [0.4, -1.1])):
        value, grad = logp_dlogp(np.array(x))
        out[f"logp{i}"] = [float(value)]
        out[f"dlogp{i}"] = [float(g) for g in grad]
    values = {"s": [[0.6, 0.9]], "e": [[1.0, 0.8]]}
    post = xr.Dataset({k: (("chain", "draw"), np.array(v)) for k, v in values.items()})
    idata = xr.DataTree.from_dict({"posterior": post})
    drawn = dlm.sample_states(idata, model, random_seed=5, progressbar=False)
    for name in ("y_filtered_state", "y_smoothed_state"):
        out[name] = [float(v) for v in np.ravel(drawn["posterior"][name].values)]
    future = dlm.forecast(idata, model, steps=4, random_seed=6, progressbar=False)
    for name in ("y", "y_forecast_state"):
        out[f"forecast_{name}"] = [float(v) for v in np.ravel(future["predictions"][name].values)]
    smoothed = dlm.kalman_smoother(_system(0.6), _data(), sigma_obs=0.8)
    for name in ("loglik", "smoothed_mean", "smoothed_cov", "forecast_cov"):
        out[f"smoother_{name}"] = [float(v) for v in np.ravel(smoothed[name].values)]
    entry = native._entries[native._GRAD_NAME]
    out["loaded"] = {
        "loglik_grad_entry": entry.cache_hits,
        "ffbs_into": sum(states.ffbs_into.stats.cache_hits.values()),
        "forecast_into": sum(states.forecast_into.stats.cache_hits.values()),
        "moments_into": sum(moments.moments_into.stats.cache_hits.values()),
    }
    return out


if __name__ == "__main__":
    print(json.dumps(results()))
