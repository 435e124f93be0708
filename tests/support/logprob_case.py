"""Log-densities and gradients of three DLM variables, to compare PyMC's two logp routes.

``tests/kernels/test_compat.py`` computes :func:`results` in the test process (the Ops'
log-densities registered with PyMC's ``_logprob`` dispatcher) and in a child process run as
``python -m tests.support.logprob_case`` with ``PYMC_DLM_COMPAT_FALLBACK=logprob`` (the
fallback: PyMC's ``Distribution`` route, one Op subclass per variable). The numbers are
lists of floats, compared bit for bit; ``ops`` names the class each Op's own class derives
from (``SymbolicRandomVariable`` on the private route, the package's Op on the fallback).
"""

import json

import numpy as np
import pymc as pm

import pymc_dlm as dlm
from pymc_dlm import compat


def _models():
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=30))
    y[4] = np.nan
    counts = rng.poisson(3.0, size=30).astype(float)
    with pm.Model() as fixed:
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s) + dlm.Seasonal(4, s), sigma_obs=e, observed=y)
    with pm.Model() as discounted:
        d = pm.Beta("d", 20, 2)
        e = pm.HalfNormal("e", 1.0)
        dlm.DLM("y", dlm.LocalLevel(discount=d, m0=0.0, C0=4.0), sigma_obs=e, observed=y)
    with pm.Model() as family:
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s, m0=1.0, C0=1.0), family="poisson", observed=counts)
    return {"fixed": fixed, "discounted": discounted, "family": family}


def results():
    """Log-density and gradient of each model at a point off the initial one; the routes."""
    out = {}
    for name, model in _models().items():
        point = {k: v + 0.1 for k, v in model.initial_point().items()}
        logp, dlogp = model.compile_logp(), model.compile_dlogp()
        out[name] = [float(logp(point)), *(float(g) for g in np.ravel(dlogp(point)))]
        out[f"{name}_ops"] = [type(v.owner.op).__mro__[1].__name__ for v in model.observed_RVs]
    out["route"] = compat.ROUTES["logprob"]
    return out


if __name__ == "__main__":
    print(json.dumps(results()))
