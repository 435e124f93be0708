"""Numbers that the compatibility routes must not change, computed in one process.

``tests/kernels/test_compat.py`` computes :func:`results` in the test process (the private
routes of :mod:`pymc_dlm.compat`) and in a child process that forces fallbacks through
``PYMC_DLM_COMPAT_FALLBACK`` (run as ``python -m tests.support.compat_cases``, which prints
the results as JSON). Every number is returned as a list of floats, so that the two
processes can be compared bit for bit.
"""

import json

import numpy as np
import pymc as pm
import pytensor
from pymc.distributions.distribution import support_point
from pymc.distributions.shape_utils import change_dist_size

import pymc_dlm as dlm
from pymc_dlm import compat

T = 30


def _data(seed, shape):
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(size=shape), axis=-1) + rng.normal(size=shape)
    y[..., 3] = np.nan
    y[..., 17] = np.nan
    return y


def local_level():
    """A local level with a proper prior."""
    with pm.Model() as model:
        s = pm.HalfNormal("s", 2.0)
        e = pm.HalfNormal("e", 2.0)
        dlm.DLM("y", dlm.LocalLevel(s, m0=0.0, C0=10.0), sigma_obs=e, observed=_data(1, T))
    return model


def trend_seasonal_diffuse():
    """A local linear trend and a seasonal of period 4 with a diffuse start (constant G)."""
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0, shape=3)
        e = pm.HalfNormal("e", 1.0)
        comp = dlm.LocalLinearTrend(s[0], s[1]) + dlm.Seasonal(4, s[2])
        dlm.DLM("y", comp, sigma_obs=e, observed=_data(2, T))
    return model


def batch():
    """Three independent series with a scale each (one batch axis)."""
    with pm.Model(coords={"series": range(3), "time": range(T)}) as model:
        s = pm.HalfNormal("s", 1.0, dims="series")
        e = pm.HalfNormal("e", 1.0)
        level = dlm.LocalLevel(s, m0=0.0, C0=5.0)
        dlm.DLM("y", level, sigma_obs=e, observed=_data(3, (3, T)), dims=("series", "time"))
    return model


MODELS = {"local_level": local_level, "trend_seasonal_diffuse": trend_seasonal_diffuse}
MODELS["batch"] = batch


def _logp_dlogp(model, mode=None):
    f = model.logp_dlogp_function(ravel_inputs=True, mode=mode)
    f.set_extra_values({})
    size = sum(np.size(v) for v in model.initial_point().values())
    q = np.linspace(-0.4, 0.3, size)
    logp, grad = f(q)
    return [float(logp), *map(float, grad)]


def results(c_mode=True):
    """Log-likelihood and gradient on the numba backend (and C), a support point, draws."""
    out = {name: _logp_dlogp(make()) for name, make in MODELS.items()}
    if c_mode and pytensor.config.cxx:
        out["local_level_c"] = _logp_dlogp(local_level(), mode="CVM")
    rv = dlm.DLM.dist(dlm.LocalLevel(0.5, m0=0.0, C0=1.0), sigma_obs=0.3, steps=6)
    out["support_point"] = support_point(change_dist_size(rv, (2,))).eval().ravel().tolist()
    draws = pm.draw(change_dist_size(rv, (2,)), random_seed=7)
    out["draws"] = draws.ravel().tolist()
    out["draws_shape"] = list(draws.shape)
    out["routes"] = dict(compat.ROUTES)
    return out


if __name__ == "__main__":
    print(json.dumps(results()))
