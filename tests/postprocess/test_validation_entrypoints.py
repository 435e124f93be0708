"""Bad input to ``sample_states``, ``forecast`` and the plots: a ValueError or TypeError naming it.

Every message must name the argument and show what was received (the word "got" followed by
the value, shape, type or names found). Nothing here compiles a graph: every check fires before
any computation.

The DataTrees given to the plots are built by hand with the variable names
``sample_states``/``forecast`` write.

The other public entry points are checked beside their layers, each in a
``test_validation_entrypoints.py``: ``tests/model/`` (components, ``StateSpace``),
``tests/distribution/`` (``DLM``, ``DLM.dist``), ``tests/kalman/`` (``kalman_filter``,
``kalman_smoother``) and ``tests/postprocess/`` (``sample_states``, ``forecast``, the plots).
"""

import re

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytest
import xarray as xr

import pymc_dlm as dlm
from tests.support.errors import check_message

# --------------------------------------------------------------------------------------------
# sample_states and forecast
# --------------------------------------------------------------------------------------------

T = 6


@pytest.fixture(scope="module")
def fitted():
    """A tiny model and a hand-made posterior (no sampling, nothing compiled)."""
    with pm.Model(coords={"t": np.arange(T)}) as model:
        s = pm.HalfNormal("s")
        X = pm.Data("X", np.ones((T, 1)))
        model_ = dlm.LocalLevel(s, m0=0.0, C0=1.0) + dlm.Regression(X, m0=0.0, C0=1.0)
        dlm.DLM("y", model_, sigma_obs=1.0, observed=np.arange(T) * 1.0, dims="t")
        pm.Normal("z")
    post = xr.Dataset(
        {
            "s": (("chain", "draw"), np.full((1, 3), 0.5)),
            "z": (("chain", "draw"), np.zeros((1, 3))),
        }
    )
    return model, xr.DataTree.from_dict({"posterior": post}), post


def _tree(post):
    return xr.DataTree.from_dict({"posterior": post})


POSTERIOR_CASES = {
    "idata a Dataset": ("idata", TypeError, lambda m, i, p: (p, m)),
    "idata a dict": ("idata", TypeError, lambda m, i, p: ({"posterior": p}, m)),
    "idata without posterior": (
        "posterior",
        ValueError,
        lambda m, i, p: (xr.DataTree.from_dict({"prior": p}), m),
    ),
    "posterior without chain/draw": (
        "chain",
        ValueError,
        lambda m, i, p: (_tree(p.isel(chain=0)), m),
    ),
    "posterior lacks a free variable": ("'s'", ValueError, lambda m, i, p: (_tree(p[["z"]]), m)),
    "posterior variable of the wrong shape": (
        "'s'",
        ValueError,
        lambda m, i, p: (_tree(p.assign(s=(("chain", "draw", "x"), np.ones((1, 3, 2))))), m),
    ),
    "posterior variable with nan": (
        "'s'",
        ValueError,
        lambda m, i, p: (_tree(p.assign(s=(("chain", "draw"), np.full((1, 3), np.nan)))), m),
    ),
    "model a string": ("model", TypeError, lambda m, i, p: (i, "model")),
    "model without a DLM": ("model", ValueError, lambda m, i, p: (i, pm.Model())),
}


@pytest.mark.parametrize("case", list(POSTERIOR_CASES))
@pytest.mark.parametrize("fn", ["sample_states", "forecast"])
def test_postprocessing_rejects_bad_idata_and_model(case, fn, fitted):
    argname, exc, make = POSTERIOR_CASES[case]
    idata, model = make(*fitted)
    call = dlm.sample_states if fn == "sample_states" else _forecast
    with pytest.raises(exc) as err:
        call(idata, model, progressbar=False)
    check_message(err, argname)


def _forecast(idata, model, **kwargs):
    kwargs.setdefault("new_data", {"X": np.ones((2, 1))})
    return dlm.forecast(idata, model, steps=2, **kwargs)


OPTION_CASES = {
    "var_names not a DLM": ("var_names", ValueError, {"var_names": "z"}),
    "var_names unknown": ("var_names", ValueError, {"var_names": ["nope"]}),
    "var_names an integer": ("var_names", TypeError, {"var_names": 3}),
    "chunk_size zero": ("chunk_size", ValueError, {"chunk_size": 0}),
    "chunk_size a float": ("chunk_size", TypeError, {"chunk_size": 1.5}),
    "random_seed a string": ("random_seed", TypeError, {"random_seed": "a"}),
    "random_seed negative": ("random_seed", TypeError, {"random_seed": -1}),
}


@pytest.mark.parametrize("case", list(OPTION_CASES))
@pytest.mark.parametrize("fn", ["sample_states", "forecast"])
def test_postprocessing_rejects_bad_options(case, fn, fitted):
    argname, exc, kwargs = OPTION_CASES[case]
    model, idata, _ = fitted
    call = dlm.sample_states if fn == "sample_states" else _forecast
    with pytest.raises(exc) as err:
        call(idata, model, progressbar=False, **kwargs)
    check_message(err, argname)


def test_sample_states_and_forecast_have_no_engine_flag(fitted):
    """One public route: the engine is chosen internally, ``fused=`` is not an argument."""
    model, idata, _ = fitted
    with pytest.raises(TypeError, match="fused"):
        dlm.sample_states(idata, model, progressbar=False, fused=True)
    with pytest.raises(TypeError, match="fused"):
        dlm.forecast(idata, model, steps=2, progressbar=False, fused=True)


FORECAST_CASES = {
    "steps zero": ("steps", {"steps": 0}),
    "steps a float": ("steps", {"steps": 2.0}),
    "steps True": ("steps", {"steps": True}),
    "new_data a list": ("new_data", {"steps": 2, "new_data": [np.ones((2, 1))]}),
    "new_data names no pm.Data": ("new_data", {"steps": 2, "new_data": {"q": np.ones((2, 1))}}),
    "new_data of the wrong length": ("new_data", {"steps": 2, "new_data": {"X": np.ones((3, 1))}}),
    "new_data of the wrong width": ("new_data", {"steps": 2, "new_data": {"X": np.ones((2, 2))}}),
    "new_data with inf": ("new_data", {"steps": 2, "new_data": {"X": np.full((2, 1), np.inf)}}),
    "new_data not numbers": ("new_data", {"steps": 2, "new_data": {"X": [["a"], ["b"]]}}),
    "time-varying F without new_data": ("new_data", {"steps": 2}),
}


@pytest.mark.parametrize("case", list(FORECAST_CASES))
def test_forecast_rejects_bad_steps_and_new_data(case, fitted):
    argname, kwargs = FORECAST_CASES[case]
    model, idata, _ = fitted
    with pytest.raises((ValueError, TypeError)) as err:
        dlm.forecast(idata, model, progressbar=False, **kwargs)
    assert re.search(argname, str(err.value)), str(err.value)


# --------------------------------------------------------------------------------------------
# Plots (DataTrees made by hand with the layout sample_states/forecast write)
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trees():
    rng = np.random.default_rng(0)
    dates = pd.date_range("2020-01-01", periods=T, freq="D")
    future = pd.date_range(dates[-1], periods=3, freq="D")[1:]
    post = xr.Dataset(
        {
            "y_smoothed_state": (("chain", "draw", "t", "y_state"), rng.normal(size=(1, 4, T, 2))),
            "y_filtered_state": (("chain", "draw", "t", "y_state"), rng.normal(size=(1, 4, T, 2))),
            "y_components": (("chain", "draw", "t", "y_component"), rng.normal(size=(1, 4, T, 2))),
        },
        coords={"t": dates, "y_state": ["level", "slope"], "y_component": ["trend", "seas"]},
    )
    obs = xr.Dataset({"y": (("t",), rng.normal(size=T))}, coords={"t": dates})
    pred = xr.Dataset({"y": (("chain", "draw", "t"), rng.normal(size=(1, 4, 2)))}, {"t": future})
    states = xr.DataTree.from_dict({"posterior": post, "observed_data": obs})
    fc = xr.DataTree.from_dict({"observed_data": obs, "predictions": pred})
    return states, fc


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


PLOT_CASES = {
    "states: idata a Dataset": (
        "idata",
        lambda s, f: dlm.plot_states(s["posterior"].to_dataset(), "y"),
    ),
    "states: no posterior": ("posterior", lambda s, f: dlm.plot_states(f, "y")),
    "states: posterior without states": (
        "sample_states",
        lambda s, f: dlm.plot_states(
            xr.DataTree.from_dict({"posterior": xr.Dataset({"s": (("chain", "draw"), [[1.0]])})}),
            "y",
        ),
    ),
    "states: var_name an integer": ("var_name", lambda s, f: dlm.plot_states(s, 3)),
    "states: var_name unknown": ("var_name", lambda s, f: dlm.plot_states(s, "q")),
    "states: kind": ("kind", lambda s, f: dlm.plot_states(s, "y", kind="smooth")),
    "states: hdi_prob 0": ("hdi_prob", lambda s, f: dlm.plot_states(s, "y", hdi_prob=0.0)),
    "states: hdi_prob above 1": ("hdi_prob", lambda s, f: dlm.plot_states(s, "y", hdi_prob=94)),
    "states: hdi_prob a string": ("hdi_prob", lambda s, f: dlm.plot_states(s, "y", hdi_prob="a")),
    "states: hdi_prob nan": ("hdi_prob", lambda s, f: dlm.plot_states(s, "y", hdi_prob=np.nan)),
    "states: states unknown": ("states", lambda s, f: dlm.plot_states(s, "y", states=["trend"])),
    "states: sel a list": ("sel", lambda s, f: dlm.plot_states(s, "y", sel=["a"])),
    "states: sel unknown dim": ("sel", lambda s, f: dlm.plot_states(s, "y", sel={"region": 0})),
    "states: ax count": ("ax", lambda s, f: dlm.plot_states(s, "y", ax=[None] * 3)),
    "states: observed a string": ("observed", lambda s, f: dlm.plot_states(s, "y", observed="x")),
    "components: no posterior": ("posterior", lambda s, f: dlm.plot_components(f, "y")),
    "components: var_name unknown": ("var_name", lambda s, f: dlm.plot_components(s, "q")),
    "components: var_name None": ("var_name", lambda s, f: dlm.plot_components(s, None)),
    "components: hdi_prob 2": ("hdi_prob", lambda s, f: dlm.plot_components(s, "y", hdi_prob=2)),
    "components: ax count": ("ax", lambda s, f: dlm.plot_components(s, "y", ax=[None])),
    "forecast: no predictions": ("predictions", lambda s, f: dlm.plot_forecast(s, "y")),
    "forecast: idata a Dataset": (
        "idata",
        lambda s, f: dlm.plot_forecast(f["predictions"].to_dataset(), "y"),
    ),
    "forecast: var_name unknown": ("var_name", lambda s, f: dlm.plot_forecast(f, "q")),
    "forecast: var_name a list": ("var_name", lambda s, f: dlm.plot_forecast(f, ["y"])),
    "forecast: levels a number": ("levels", lambda s, f: dlm.plot_forecast(f, "y", levels=0.5)),
    "forecast: levels above 1": ("levels", lambda s, f: dlm.plot_forecast(f, "y", levels=[80])),
    "forecast: sel unknown dim": ("sel", lambda s, f: dlm.plot_forecast(f, "y", sel={"r": 1})),
}


@pytest.mark.parametrize("case", list(PLOT_CASES))
def test_plots_reject_bad_input(case, trees):
    argname, make = PLOT_CASES[case]
    with pytest.raises((ValueError, TypeError)) as err:
        make(*trees)
    check_message(err, argname)


def test_hand_made_trees_are_valid_plot_input(trees):
    """The fixtures above are accepted, so the failures are due to the one bad argument."""
    states, fc = trees
    assert len(dlm.plot_states(states, "y")) == 2
    assert len(dlm.plot_components(states, "y")) == 3
    assert dlm.plot_forecast(fc, "y") is not None


def test_fixture_model_is_valid_input(fitted):
    """The fitted fixture passes every check (the failures above are the bad argument's)."""
    model, idata, _ = fitted
    # Everything up to compilation passes: the forecast's pm.Data check and target lookup.
    from pymc_dlm.postprocess.posterior import dlm_targets, stack_draws

    (target,) = dlm_targets(model, idata, None)
    values = stack_draws(idata["posterior"].to_dataset(), target)
    assert [v.shape for v in values] == [(3,)]
    assert isinstance(pytensor.shared(1.0), pytensor.compile.SharedVariable)


def test_forecast_new_data_must_cover_every_time_varying_regressor():
    """Two pm.Data regressors feed F: giving only one is a ValueError naming the other."""
    T = 20
    rng = np.random.default_rng(0)
    with pm.Model() as model:
        ads = pm.Data("ads", rng.normal(size=T))
        price = pm.Data("price", rng.normal(size=T))
        s = pm.HalfNormal("s", 1.0)
        X = pm.math.stack([ads, price], axis=-1)
        comp = dlm.LocalLevel(s, C0=10.0) + dlm.Regression(X, sigma=0.1, C0=1.0)
        dlm.DLM("y", comp, sigma_obs=1.0, observed=rng.normal(size=T))
    post = xr.Dataset(
        {"s": (("chain", "draw"), np.ones((1, 3)))}, coords={"chain": [0], "draw": np.arange(3)}
    )
    tree = xr.DataTree.from_dict({"posterior": post})
    with pytest.raises(ValueError, match=r"missing \['price'\]"):
        dlm.forecast(tree, model, steps=2, new_data={"ads": np.zeros(2)}, progressbar=False)
