"""Bad input at every public entry point: an immediate ValueError or TypeError naming it.

Complements ``tests/test_validation.py`` (shapes, fixed sigmas, covariances, structure of the
components, observed data of ``DLM``) with what it does not cover: more component and
``StateSpace`` cases, ``kalman_filter``/``kalman_smoother``, ``sample_states``, ``forecast`` and
the three plots. Every message must name the argument and show what was received (the word
"got" followed by the value, shape, type or names found).

Nothing here compiles a graph: every check fires before any computation. The DataTrees given
to the plots are built by hand with the variable names ``sample_states``/``forecast`` write.
"""

import re

import numpy as np
import pandas as pd
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import xarray as xr

import pymc_dlm as dlm

I2 = np.eye(2)
ROW = np.ones((1, 2))


def build(obj):
    """Force the construction of a component's StateSpace (components build lazily)."""
    return dlm.as_statespace(obj)


def check_message(err, argname):
    """The message names the argument and says what was received."""
    msg = str(err.value)
    assert re.search(argname, msg), msg
    assert "got" in msg, f"the message does not say what was received: {msg}"


def expect(make, argname, exc=(ValueError, TypeError)):
    with pytest.raises(exc) as err:
        make()
    check_message(err, argname)


# --------------------------------------------------------------------------------------------
# Components and StateSpace
# --------------------------------------------------------------------------------------------

COMPONENT_CASES = {
    "LocalLevel sigma a string": ("sigma", TypeError, lambda: dlm.LocalLevel("a")),
    "LocalLevel m0 inf": ("m0", ValueError, lambda: build(dlm.LocalLevel(1.0, m0=np.inf, C0=1.0))),
    "LocalLevel C0 nan": ("C0", ValueError, lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0=np.nan))),
    "LocalLevel C0 unknown keyword": (
        "C0",
        ValueError,
        lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0="flat")),
    ),
    "LocalLinearTrend sigma_level a string": (
        "sigma_level",
        TypeError,
        lambda: dlm.LocalLinearTrend("x", 1.0),
    ),
    "Polynomial order a string": ("order", TypeError, lambda: dlm.Polynomial("2", 1.0)),
    "Seasonal period a float": ("period", ValueError, lambda: dlm.Seasonal(12.5, 1.0)),
    "Seasonal sigma negative in a batch": (
        "sigma",
        ValueError,
        lambda: dlm.Seasonal(4, np.array([1.0, -1.0])),
    ),
    "Fourier harmonics not an integer": ("harmonics", ValueError, lambda: dlm.Fourier(12, 1.5, 1)),
    "Fourier harmonics a string": ("harmonics", TypeError, lambda: dlm.Fourier(12, "2", 1.0)),
    "Fourier harmonics above period/2 (period 2.5)": (
        "harmonics",
        ValueError,
        lambda: dlm.Fourier(2.5, 2, 1.0),
    ),
    "Regression X with inf": (
        "X",
        ValueError,
        lambda: dlm.Regression(np.array([[1.0], [np.inf]])),
    ),
    "Regression X without columns": ("X", ValueError, lambda: dlm.Regression(np.ones((4, 0)))),
    "Regression X a string": ("X", TypeError, lambda: dlm.Regression("abc")),
    "ARMA ma nan": ("ma", ValueError, lambda: build(dlm.ARMA([0.5], [np.nan], 1.0))),
    "ARMA ma a string": ("ma", TypeError, lambda: dlm.ARMA([0.5], "a", 1.0)),
    "AR rho inf": ("rho|ar", ValueError, lambda: build(dlm.AR(np.inf, 1.0))),
    "Cycle period nan": ("period", ValueError, lambda: dlm.Cycle(np.nan, 0.5, 1.0)),
    "Cycle period a string": ("period", TypeError, lambda: dlm.Cycle("10", 0.5, 1.0)),
    "Cycle damping nan": ("damping", ValueError, lambda: dlm.Cycle(10.0, np.nan, 1.0)),
    "Cycle sigma negative": ("sigma", ValueError, lambda: dlm.Cycle(10.0, 0.5, -1.0)),
}


@pytest.mark.parametrize("case", list(COMPONENT_CASES))
def test_components_reject_bad_parameters(case):
    argname, exc, make = COMPONENT_CASES[case]
    expect(make, argname, exc)


STATIONARY_CASES = {
    "AR unit root": lambda: build(dlm.AR(1.0, 1.0, m0=0.0, C0="stationary")),
    "AR explosive": lambda: build(dlm.AR(-1.2, 1.0, m0=0.0, C0="stationary")),
    "ARMA unit root": lambda: build(dlm.ARMA([0.5, 0.5], [0.3], 1.0, m0=0.0, C0="stationary")),
    "Cycle damping 1": lambda: build(dlm.Cycle(10.0, 1.0, 1.0, m0=0.0, C0="stationary")),
    "LocalLevel": lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0="stationary")),
}


@pytest.mark.parametrize("case", list(STATIONARY_CASES))
def test_stationary_prior_of_a_nonstationary_block_is_rejected(case):
    with pytest.raises(ValueError, match="stationary") as err:
        STATIONARY_CASES[case]()
    assert "eigenvalues of G" in str(err.value)


STATESPACE_CASES = {
    "G complex": ("G", TypeError, lambda: dlm.StateSpace(ROW, I2 * 1j, I2)),
    "F complex tensor": (
        "F",
        TypeError,
        lambda: dlm.StateSpace(pt.as_tensor(ROW.astype(complex)), I2, I2),
    ),
    "F a string": ("F", TypeError, lambda: dlm.StateSpace("F", I2, I2)),
    "W a string": ("W", TypeError, lambda: dlm.StateSpace(ROW, I2, "W")),
    "W inf": ("W", ValueError, lambda: dlm.StateSpace(ROW, I2, np.diag([np.inf, 1.0]))),
    "C0 batch with one indefinite matrix": (
        "C0",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, C0=np.stack([I2, -I2])),
    ),
    "time-varying W with one indefinite step": (
        "W",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, np.stack([I2, -I2]), time_varying="W"),
    ),
    "time-varying W shorter than F": (
        r"(?=.*'F': 5)(?=.*'W': 4)",
        ValueError,
        lambda: dlm.StateSpace(
            np.ones((5, 1, 2)), I2, np.broadcast_to(I2, (4, 2, 2)), time_varying=("F", "W")
        ),
    ),
    "time-varying G without its time axis": (
        "G",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying=("G",)),
    ),
    "time_varying an unknown name": (
        "time_varying",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying="FG"),
    ),
    "m0 a string": ("m0", TypeError, lambda: dlm.StateSpace(ROW, I2, I2, m0="0")),
}


@pytest.mark.parametrize("case", list(STATESPACE_CASES))
def test_statespace_rejects_bad_matrices(case):
    argname, exc, make = STATESPACE_CASES[case]
    with pytest.raises(exc) as err:
        make()
    assert re.search(argname, str(err.value)), str(err.value)


def test_sum_of_a_component_and_a_non_model_names_the_operand():
    expect(lambda: dlm.LocalLevel(1.0) + "x", "operand", TypeError)


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
# kalman_filter and kalman_smoother
# --------------------------------------------------------------------------------------------

BIV = dlm.StateSpace(I2, I2, I2, m0=0.0, C0=1.0)
LEVEL = dlm.LocalLevel(1.0, m0=0.0, C0=1.0)

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
