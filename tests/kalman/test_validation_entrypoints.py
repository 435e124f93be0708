"""Bad input to ``kalman_filter`` and ``kalman_smoother``: a ValueError or TypeError naming it.

Nothing here compiles a graph: every check fires before any computation.

The other public entry points are checked beside their layers, each in a
``test_validation_entrypoints.py``: ``tests/model/`` (components, ``StateSpace``),
``tests/distribution/`` (``DLM``, ``DLM.dist``), ``tests/kalman/`` (``kalman_filter``,
``kalman_smoother``) and ``tests/postprocess/`` (``sample_states``, ``forecast``, the plots).
"""

import re

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm

I2 = np.eye(2)
BIV = dlm.StateSpace(I2, I2, I2, m0=0.0, C0=1.0)
LEVEL = dlm.LocalLevel(1.0, m0=0.0, C0=1.0)

# --------------------------------------------------------------------------------------------
# kalman_filter and kalman_smoother
# --------------------------------------------------------------------------------------------

FILTER_CASES = {
    "y a scalar": ("y", lambda f: f(LEVEL, 1.0, sigma_obs=1.0)),
    "y a string": ("y", lambda f: f(LEVEL, "abc", sigma_obs=1.0)),
    "y of the wrong width": ("y", lambda f: f(BIV, np.ones((5, 3)), sigma_obs=1.0)),
    "y a vector for two series": ("y", lambda f: f(BIV, np.ones(5), sigma_obs=1.0)),
    "y without time steps": ("y", lambda f: f(LEVEL, np.ones(0), sigma_obs=1.0)),
    "y with +inf": ("y", lambda f: f(LEVEL, np.array([1.0, np.inf]), sigma_obs=1.0)),
    "y with -inf (bivariate)": (
        "y",
        lambda f: f(BIV, np.array([[1.0, -np.inf], [0.0, 0.0]]), sigma_obs=1.0),
    ),
    "y shorter than a time-varying F": (
        "y",
        lambda f: f(dlm.Regression(np.ones((6, 1)), m0=0.0, C0=1.0), np.ones(5), sigma_obs=1.0),
    ),
    "sigma_obs negative": ("sigma_obs", lambda f: f(LEVEL, np.ones(5), sigma_obs=-0.5)),
    "sigma_obs of the wrong length": (
        "sigma_obs",
        lambda f: f(BIV, np.ones((5, 2)), sigma_obs=[1.0, 1.0, 1.0]),
    ),
    "obs_cov not symmetric": (
        "obs_cov",
        lambda f: f(BIV, np.ones((5, 2)), obs_cov=[[1.0, 0.5], [0.0, 1.0]]),
    ),
    "obs_cov indefinite": (
        "obs_cov",
        lambda f: f(BIV, np.ones((5, 2)), obs_cov=[[1.0, 3.0], [3.0, 1.0]]),
    ),
    "obs_cov inf": ("obs_cov", lambda f: f(BIV, np.ones((5, 2)), obs_cov=np.diag([np.inf, 1]))),
    "obs_cov of the wrong size": ("obs_cov", lambda f: f(BIV, np.ones((5, 2)), obs_cov=I2[:1])),
    "neither sigma_obs nor obs_cov": ("sigma_obs", lambda f: f(LEVEL, np.ones(5))),
    "model a string": ("model", lambda f: f("level", np.ones(5), sigma_obs=1.0)),
    "model a PyMC variable": ("model", lambda f: f(pm.Normal.dist(), np.ones(5), sigma_obs=1.0)),
    "symbolic parameters": (
        "fixed parameter values",
        lambda f: f(dlm.LocalLevel(pt.scalar("s"), m0=0.0, C0=1.0), np.ones(5), sigma_obs=1.0),
    ),
}


@pytest.mark.parametrize(
    "fn", [dlm.kalman_filter, dlm.kalman_smoother], ids=["filter", "smoother"]
)
@pytest.mark.parametrize("case", list(FILTER_CASES))
def test_kalman_filter_and_smoother_reject_bad_input(case, fn):
    argname, make = FILTER_CASES[case]
    with pytest.raises((ValueError, TypeError)) as err:
        make(fn)
    assert re.search(rf"\b{argname}\b", str(err.value)), str(err.value)
