"""Bad input to ``DLM`` and ``DLM.dist``: an immediate ValueError or TypeError naming it.

Observed data, observation noise, steps, dims and batch shapes, and the gaps of issue 6
(non-finite factors of ``StateSpace``, time-varying noise of the wrong length).

Every message must name the argument and show what was received (the word "got" followed by
the value, shape, type or names found). Nothing here compiles a graph: every check fires before
any computation.

The other public entry points are checked beside their layers, each in a
``test_validation_entrypoints.py``: ``tests/model/`` (components, ``StateSpace``),
``tests/distribution/`` (``DLM``, ``DLM.dist``), ``tests/kalman/`` (``kalman_filter``,
``kalman_smoother``) and ``tests/postprocess/`` (``sample_states``, ``forecast``, the plots).
"""

import re

import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm
from tests.support.errors import expect

I2 = np.eye(2)
ROW = np.ones((1, 2))
BIV = dlm.StateSpace(I2, I2, I2, m0=0.0, C0=1.0)
LEVEL = dlm.LocalLevel(1.0, m0=0.0, C0=1.0)


# --------------------------------------------------------------------------------------------
# DLM and DLM.dist
# --------------------------------------------------------------------------------------------


def in_model(model, observed, coords=None, **kwargs):
    kwargs.setdefault("sigma_obs", 1.0)
    with pm.Model(coords=coords):
        return dlm.DLM("y", model, observed=observed, **kwargs)


DLM_CASES = {
    "sigma_obs a string": (
        "sigma_obs",
        TypeError,
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs="a", steps=5),
    ),
    "sigma_obs inf in a vector": (
        "sigma_obs",
        ValueError,
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), sigma_obs=[1.0, np.inf], steps=5),
    ),
    "time-varying sigma_obs without a time axis": (
        "sigma_obs",
        ValueError,
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, obs_time_varying=True, steps=5),
    ),
    "obs_cov inf": (
        "obs_cov",
        ValueError,
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), obs_cov=np.diag([np.inf, 1.0]), steps=5),
    ),
    "obs_cov a string": (
        "obs_cov",
        TypeError,
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), obs_cov="I", steps=5),
    ),
    "observed a string": ("observed", TypeError, lambda: in_model(dlm.LocalLevel(1.0), "abc")),
    "observed -inf in a batch": (
        "observed",
        ValueError,
        lambda: in_model(dlm.LocalLevel(1.0), np.array([[1.0, 2.0], [-np.inf, 0.0]])),
    ),
    "observed longer than a pm.Data regressor": (
        "observed",
        ValueError,
        lambda: _with_data_regressor(n_x=5, n_y=6),
    ),
    "observed shorter than a pm.Data regressor": (
        "observed",
        ValueError,
        lambda: _with_data_regressor(n_x=5, n_y=4),
    ),
    "model not a DLM model (a PyMC distribution)": (
        "model",
        TypeError,
        lambda: in_model(pm.Normal.dist(), np.ones(3)),
    ),
    "steps a string": (
        "steps",
        (ValueError, TypeError),
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, steps="3"),
    ),
}


def _with_data_regressor(n_x, n_y):
    with pm.Model():
        X = pm.Data("X", np.ones((n_x, 1)))
        return dlm.DLM(
            "y", dlm.Regression(X, m0=0.0, C0=1.0), sigma_obs=1.0, observed=np.ones(n_y)
        )


@pytest.mark.parametrize("case", list(DLM_CASES))
def test_dlm_rejects_bad_input(case):
    argname, exc, make = DLM_CASES[case]
    with pytest.raises(exc) as err:
        make()
    assert re.search(argname, str(err.value)), str(err.value)


def test_observed_longer_than_regressor_message_gives_both_lengths():
    with pytest.raises(ValueError, match="observed") as err:
        _with_data_regressor(n_x=5, n_y=4)
    assert "4" in str(err.value) and "5" in str(err.value)


# --------------------------------------------------------------------------------------------
# Issue 6 gaps: non-finite factors, time-varying noise length, dims, batch shapes
# --------------------------------------------------------------------------------------------

Y_BATCH = np.random.default_rng(6).normal(size=(3, 20))

GAP_CASES = {
    "StateSpace W_sqrt nan": (
        "W_sqrt",
        lambda: dlm.StateSpace(ROW[:, :1], np.eye(1), W_sqrt=[[np.nan]], m0=0.0, C0=1.0),
    ),
    "StateSpace C0_sqrt inf": (
        "C0_sqrt",
        lambda: dlm.StateSpace(ROW, I2, I2, m0=0.0, C0=I2, C0_sqrt=[[1.0, 0.0], [np.inf, 1.0]]),
    ),
    "StateSpace C0_sqrt with the wrong number of rows": (
        "C0_sqrt",
        lambda: dlm.StateSpace(ROW, I2, I2, m0=0.0, C0=I2, C0_sqrt=np.ones((3, 2))),
    ),
    "time-varying sigma_obs shorter than observed": (
        "sigma_obs",
        lambda: in_model(LEVEL, Y_BATCH[0], sigma_obs=np.ones(15), obs_time_varying=True),
    ),
    "time-varying sigma_obs longer than steps": (
        "sigma_obs",
        lambda: dlm.DLM.dist(LEVEL, sigma_obs=np.ones(25), obs_time_varying=True, steps=20),
    ),
    "time-varying obs_cov of the wrong length": (
        "obs_cov",
        lambda: in_model(
            BIV,
            np.ones((20, 2)),
            sigma_obs=None,
            obs_cov=np.broadcast_to(I2, (15, 2, 2)),
            obs_time_varying=True,
        ),
    ),
    "dims shorter than observed's ndim": (
        "dims",
        lambda: in_model(LEVEL, Y_BATCH, coords={"time": range(20)}, dims=("time",)),
    ),
    "dims longer than observed's ndim": (
        "dims",
        lambda: in_model(
            LEVEL, Y_BATCH[0], coords={"b": range(3), "time": range(20)}, dims=("b", "time")
        ),
    ),
    "sigma_obs batch not broadcasting to observed's": (
        "sigma_obs",
        lambda: in_model(LEVEL, Y_BATCH, sigma_obs=np.full(4, 0.5)),
    ),
    "multivariate sigma_obs batch not broadcasting": (
        "sigma_obs",
        lambda: in_model(BIV, np.ones((3, 20, 2)), sigma_obs=np.full((4, 2), 0.5)),
    ),
    "component sigma batch not broadcasting": (
        "W_sqrt",
        lambda: in_model(dlm.LocalLevel(np.full(4, 0.3), m0=0.0, C0=1.0), Y_BATCH),
    ),
    "sigma_obs batch that would enlarge observed's": (
        "sigma_obs",
        lambda: in_model(LEVEL, Y_BATCH, sigma_obs=np.full((2, 1), 0.5)),
    ),
}


@pytest.mark.parametrize("case", list(GAP_CASES))
def test_gap_cases_are_rejected_at_construction(case):
    argname, make = GAP_CASES[case]
    expect(make, argname, ValueError)


def test_sigma_obs_with_dims_and_no_observed_builds_the_batched_variable():
    """Batched sigma_obs with ``dims`` only (no observed): the dims give the shape."""
    with pm.Model(coords={"series": range(3), "time": range(20)}):
        y = dlm.DLM("y", LEVEL, sigma_obs=np.array([0.1, 1.0, 10.0]), dims=("series", "time"))
    assert tuple(y.shape.eval()) == (3, 20)
    with pm.Model(coords={"series": range(4), "time": range(20)}):
        with pytest.raises(ValueError, match="sigma_obs.*dims.*got"):
            dlm.DLM("y", LEVEL, sigma_obs=np.array([0.1, 1.0, 10.0]), dims=("series", "time"))
