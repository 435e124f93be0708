"""User-input checks: a ValueError/TypeError naming the argument, raised when the model is built.

No graph is compiled here: every check must fire while the model is being put together
(constructor, ``.statespace``, ``DLM``/``DLM.dist``, ``kalman_filter``), never at sampling time.
"""

import warnings

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm

I2 = np.eye(2)
ROW = np.ones((1, 2))


def build(obj):
    """Force the construction of a component's StateSpace (components build lazily)."""
    return dlm.as_statespace(obj)


def in_model(model, observed, **kwargs):
    kwargs.setdefault("sigma_obs", 1.0)
    with pm.Model():
        return dlm.DLM("y", model, observed=observed, **kwargs)


# --------------------------------------------------------------------------------------------
# Shapes of F, G, W, m0, C0, X
# --------------------------------------------------------------------------------------------

SHAPE_CASES = {
    "F has the wrong number of columns": ("F", lambda: dlm.StateSpace(np.ones((1, 3)), I2, I2)),
    "G not square": ("G", lambda: dlm.StateSpace(ROW, np.ones((2, 3)), I2)),
    "G a vector": ("G", lambda: dlm.StateSpace(ROW, np.ones(2), I2)),
    "F a vector": ("F", lambda: dlm.StateSpace(np.ones(2), I2, I2)),
    "W of another size": ("W", lambda: dlm.StateSpace(ROW, I2, np.eye(3))),
    "W_sqrt of another size": ("W_sqrt", lambda: dlm.StateSpace(ROW, I2, W_sqrt=np.eye(3))),
    "no W": ("W", lambda: dlm.StateSpace(ROW, I2)),
    "m0 of another length": ("m0", lambda: dlm.StateSpace(ROW, I2, I2, m0=[1.0, 2.0, 3.0])),
    "C0 vector of another length": ("C0", lambda: dlm.StateSpace(ROW, I2, I2, C0=[1.0, 2, 3])),
    "C0 matrix of another size": ("C0", lambda: dlm.StateSpace(ROW, I2, I2, C0=np.eye(3))),
    "component m0 of another length": (
        "m0",
        lambda: build(dlm.LocalLinearTrend(1, 1, m0=[1, 2, 3])),
    ),
    "component C0 of another size": ("C0", lambda: build(dlm.Seasonal(4, 1.0, C0=np.eye(2)))),
    "time-varying F without its time axis": (
        "F",
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying=("F",)),
    ),
    "time-varying F and G of different lengths": (
        r"(?=.*'F': 5)(?=.*'G': 6)",
        lambda: dlm.StateSpace(
            np.ones((5, 1, 2)), np.ones((6, 2, 2)), I2, time_varying=("F", "G")
        ),
    ),
    "unknown time-varying name": (
        "time_varying",
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying=("V",)),
    ),
    "symbolic F without static shape": ("F", lambda: dlm.StateSpace(pt.matrix("F"), I2, I2)),
    "state_labels count": (
        "state_labels",
        lambda: dlm.StateSpace(ROW, I2, I2, state_labels=["a"]),
    ),
    "state_labels repeated": (
        "state_labels",
        lambda: dlm.StateSpace(ROW, I2, I2, state_labels="aa"),
    ),
    "X a scalar": ("X", lambda: dlm.Regression(1.0)),
    "X labels count": ("labels", lambda: dlm.Regression(np.ones((4, 2)), labels=["a"])),
    "Regression sigma length": ("sigma", lambda: dlm.Regression(np.ones((4, 2)), sigma=[1, 2, 3])),
    "Polynomial sigma length": ("sigma", lambda: dlm.Polynomial(2, [1.0, 2.0, 3.0])),
    "sigma_obs length": (
        "sigma_obs",
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), sigma_obs=[1.0, 2, 3], steps=3),
    ),
    "obs_cov of another size": (
        "obs_cov",
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), obs_cov=np.eye(3), steps=3),
    ),
    "obs_cov a vector": (
        "obs_cov",
        lambda: dlm.DLM.dist(dlm.StateSpace(I2, I2, I2), obs_cov=[1.0, 1.0], steps=3),
    ),
    "adding models with different numbers of series": (
        "series",
        lambda: dlm.LocalLevel(1.0) + dlm.StateSpace(I2, I2, I2),
    ),
}


@pytest.mark.parametrize("case", list(SHAPE_CASES))
def test_inconsistent_shapes_are_rejected(case):
    argname, make = SHAPE_CASES[case]
    with pytest.raises((ValueError, TypeError), match=argname):
        make()


# --------------------------------------------------------------------------------------------
# Observed data and the number of time steps
# --------------------------------------------------------------------------------------------

OBSERVED_CASES = {
    "scalar for a univariate model": (dlm.LocalLevel(1.0), 3.0),
    "vector for a bivariate model": (dlm.StateSpace(I2, I2, I2), np.ones(5)),
    "three columns for a bivariate model": (dlm.StateSpace(I2, I2, I2), np.ones((5, 3))),
    "length differs from Regression X": (dlm.Regression(np.ones((5, 1))), np.ones(4)),
    "no time step": (dlm.LocalLevel(1.0), np.ones(0)),
    "+inf": (dlm.LocalLevel(1.0), np.array([1.0, np.inf, 2.0])),
    "-inf": (dlm.LocalLevel(1.0), np.array([1.0, -np.inf, 2.0])),
    "inf in a bivariate row": (dlm.StateSpace(I2, I2, I2), np.array([[1.0, 2.0], [np.inf, 0.0]])),
    "not numbers": (dlm.LocalLevel(1.0), ["a", "b"]),
}


@pytest.mark.parametrize("case", list(OBSERVED_CASES))
def test_bad_observed_is_rejected(case):
    model, observed = OBSERVED_CASES[case]
    with pytest.raises((ValueError, TypeError), match="observed"):
        in_model(model, observed)


@pytest.mark.parametrize("case", ["length differs from Regression X", "+inf", "not numbers"])
def test_bad_data_is_rejected_by_kalman_filter(case):
    model, observed = OBSERVED_CASES[case]
    with pytest.raises((ValueError, TypeError), match=r"\by\b"):
        dlm.kalman_filter(model, observed, sigma_obs=1.0)


def test_nan_in_observed_is_accepted():
    y = np.array([1.0, np.nan, 2.0, np.nan])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # in particular no ImputationWarning
        obs = in_model(dlm.LocalLevel(1.0), y)
        obs2 = in_model(
            dlm.StateSpace(I2, I2, I2, C0=1e7), np.array([[1.0, np.nan], [np.nan, np.nan]])
        )
    assert obs.type.shape[-1] in (None, 4)
    assert obs2.ndim == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"steps": 0}, {"steps": -3}, {"steps": 2.5}, {"steps": True}, {"steps": 3, "shape": (4,)}],
)
def test_bad_steps_are_rejected(kwargs):
    with pytest.raises(ValueError, match="steps"):
        dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, **kwargs)


def test_steps_must_agree_with_regression_X():
    with pytest.raises(ValueError, match="steps"):
        dlm.DLM.dist(dlm.Regression(np.ones((5, 2))), sigma_obs=1.0, steps=3)


def test_number_of_steps_is_required():
    with pytest.raises(ValueError, match="steps"):
        dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0)


# --------------------------------------------------------------------------------------------
# Values of fixed parameters
# --------------------------------------------------------------------------------------------

SIGMA_CASES = {
    "LocalLevel negative": ("sigma", lambda: dlm.LocalLevel(-1.0)),
    "LocalLevel nan": ("sigma", lambda: dlm.LocalLevel(np.nan)),
    "LocalLevel one negative in a batch": (
        "sigma",
        lambda: dlm.LocalLevel(np.array([[1.0], [-1.0]])),
    ),
    "LocalLinearTrend level inf": ("sigma_level", lambda: dlm.LocalLinearTrend(np.inf, 1.0)),
    "LocalLinearTrend slope negative": ("sigma_slope", lambda: dlm.LocalLinearTrend(1.0, -0.1)),
    "Polynomial negative entry": ("sigma", lambda: dlm.Polynomial(3, [1.0, -1.0, 1.0])),
    "Seasonal inf": ("sigma", lambda: dlm.Seasonal(4, np.inf)),
    "Fourier negative": ("sigma", lambda: dlm.Fourier(12, 2, -1.0)),
    "Regression nan": ("sigma", lambda: dlm.Regression(np.ones((4, 2)), sigma=[0.1, np.nan])),
    "AR negative": ("sigma", lambda: dlm.AR(0.5, -1.0)),
    "ARMA -inf": ("sigma", lambda: dlm.ARMA([0.5], [0.2], -np.inf)),
    "Cycle nan": ("sigma", lambda: dlm.Cycle(10.0, 0.5, np.nan)),
    "sigma_obs negative": (
        "sigma_obs",
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=-1.0, steps=3),
    ),
    "sigma_obs nan": (
        "sigma_obs",
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=np.nan, steps=3),
    ),
    "sigma_obs inf in kalman_filter": (
        "sigma_obs",
        lambda: dlm.kalman_filter(dlm.LocalLevel(1.0), np.ones(3), sigma_obs=np.inf),
    ),
}


@pytest.mark.parametrize("case", list(SIGMA_CASES))
def test_bad_fixed_sigma_is_rejected(case):
    argname, make = SIGMA_CASES[case]
    with pytest.raises(ValueError, match=argname):
        make()


COV_CASES = {
    "C0 not symmetric": ("C0", lambda: dlm.StateSpace(ROW, I2, I2, C0=[[1.0, 0.5], [0.0, 1.0]])),
    "C0 indefinite": ("C0", lambda: dlm.StateSpace(ROW, I2, I2, C0=[[1.0, 2.0], [2.0, 1.0]])),
    "C0 negative scalar": ("C0", lambda: dlm.StateSpace(ROW, I2, I2, C0=-1.0)),
    "C0 negative diagonal entry": ("C0", lambda: build(dlm.LocalLinearTrend(1, 1, C0=[1.0, -1]))),
    "C0 infinite": ("C0", lambda: build(dlm.LocalLevel(1.0, C0=np.inf))),
    "C0 matrix with nan": (
        "C0",
        lambda: dlm.StateSpace(ROW, I2, I2, C0=[[1.0, np.nan], [np.nan, 1]]),
    ),
    "m0 nan": ("m0", lambda: dlm.StateSpace(ROW, I2, I2, m0=[1.0, np.nan])),
    "W not symmetric": ("W", lambda: dlm.StateSpace(ROW, I2, [[1.0, 0.2], [0.0, 1.0]])),
    "W indefinite": ("W", lambda: dlm.StateSpace(ROW, I2, [[1.0, 2.0], [2.0, 1.0]])),
    "F infinite": ("F", lambda: dlm.StateSpace(np.array([[1.0, np.inf]]), I2, I2)),
    "G nan": ("G", lambda: dlm.StateSpace(ROW, np.array([[1.0, np.nan], [0, 1]]), I2)),
    "X nan (2-d)": ("X", lambda: dlm.Regression(np.array([[1.0], [np.nan]]))),
    "obs_cov not symmetric": (
        "obs_cov",
        lambda: dlm.DLM.dist(
            dlm.StateSpace(I2, I2, I2), obs_cov=[[1.0, 0.2], [0.0, 1.0]], steps=3
        ),
    ),
    "obs_cov indefinite": (
        "obs_cov",
        lambda: dlm.DLM.dist(
            dlm.StateSpace(I2, I2, I2), obs_cov=[[1.0, 2.0], [2.0, 1.0]], steps=3
        ),
    ),
    "obs_cov singular": (
        "obs_cov",
        lambda: dlm.DLM.dist(
            dlm.StateSpace(I2, I2, I2), obs_cov=[[1.0, 1.0], [1.0, 1.0]], steps=3
        ),
    ),
}


@pytest.mark.parametrize("case", list(COV_CASES))
def test_bad_fixed_matrices_are_rejected(case):
    argname, make = COV_CASES[case]
    with pytest.raises(ValueError, match=argname):
        make()


def test_psd_singular_C0_and_W_are_accepted():
    ones = np.ones((2, 2))
    ss = dlm.StateSpace(ROW, I2, ones, C0=ones)
    assert ss.n_state == 2


def test_nan_in_1d_regression_X_is_rejected():
    with pytest.raises(ValueError, match="X"):
        build(dlm.Regression(np.array([1.0, np.nan, 2.0])))


# --------------------------------------------------------------------------------------------
# Structural integers: period, harmonics, order, coefficients
# --------------------------------------------------------------------------------------------

STRUCTURE_CASES = {
    "Seasonal period 1": ("period", lambda: dlm.Seasonal(1, 1.0)),
    "Seasonal period 0": ("period", lambda: dlm.Seasonal(0, 1.0)),
    "Seasonal period not an integer": ("period", lambda: dlm.Seasonal(4.5, 1.0)),
    "Seasonal period symbolic": ("period", lambda: dlm.Seasonal(pt.scalar("p"), 1.0)),
    "Fourier period below 2": ("period", lambda: dlm.Fourier(1.5, 1, 1.0)),
    "Fourier period a string": ("period", lambda: dlm.Fourier("12", 1, 1.0)),
    "Fourier period inf": ("period", lambda: dlm.Fourier(np.inf, 1, 1.0)),
    "Cycle period below 2": ("period", lambda: dlm.Cycle(1.5, 0.9, 1.0)),
    "Cycle damping above 1": ("damping", lambda: dlm.Cycle(10.0, 1.5, 1.0)),
    "Cycle damping negative": ("damping", lambda: dlm.Cycle(10.0, -0.1, 1.0)),
    "harmonics above period/2": ("harmonics", lambda: dlm.Fourier(12, 7, 1.0)),
    "harmonics above period/2 (odd period)": ("harmonics", lambda: dlm.Fourier(7, 4, 1.0)),
    "harmonics 0": ("harmonics", lambda: dlm.Fourier(12, 0, 1.0)),
    "order 0": ("order", lambda: dlm.Polynomial(0, 1.0)),
    "order negative": ("order", lambda: dlm.Polynomial(-1, 1.0)),
    "order not an integer": ("order", lambda: dlm.Polynomial(1.5, 1.0)),
    "AR without coefficients": ("rho", lambda: dlm.AR([], 1.0)),
    "ARMA without coefficients": ("ar", lambda: dlm.ARMA([], [], 1.0)),
    "AR coefficient nan": ("ar", lambda: dlm.AR([np.nan], 1.0)),
}


@pytest.mark.parametrize("case", list(STRUCTURE_CASES))
def test_bad_structure_is_rejected(case):
    argname, make = STRUCTURE_CASES[case]
    with pytest.raises((ValueError, TypeError), match=argname):
        make()


@pytest.mark.parametrize("period, harmonics", [(2, 1), (12, 6), (7, 3), (2.5, 1)])
def test_boundary_structure_is_accepted(period, harmonics):
    assert build(dlm.Fourier(period, harmonics, 1.0)).n_state >= 1
    assert build(dlm.Seasonal(2, 1.0)).n_state == 1
    assert build(dlm.Polynomial(1, 1.0)).n_state == 1


# --------------------------------------------------------------------------------------------
# Observation noise and the model argument
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["both", "neither"])
def test_exactly_one_of_sigma_obs_and_obs_cov(which):
    kwargs = {"sigma_obs": 1.0, "obs_cov": [[1.0]]} if which == "both" else {}
    for make in (
        lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), steps=3, **kwargs),
        lambda: dlm.kalman_filter(dlm.LocalLevel(1.0), np.ones(3), **kwargs),
    ):
        with pytest.raises(TypeError, match="sigma_obs") as err:
            make()
        assert "obs_cov" in str(err.value)
    with pytest.raises(TypeError, match="sigma_obs"):
        with pm.Model():
            dlm.DLM("y", dlm.LocalLevel(1.0), observed=np.ones(3), **kwargs)


NOT_MODELS = ["level", None, 3.0, np.eye(2), pm.Normal.dist()]


@pytest.mark.parametrize("obj", NOT_MODELS, ids=["str", "None", "float", "array", "rv"])
def test_non_model_is_rejected(obj):
    with pytest.raises(TypeError, match="component or StateSpace"):
        dlm.DLM.dist(obj, sigma_obs=1.0, steps=3)
    with pytest.raises(TypeError, match="component or StateSpace"):
        dlm.kalman_filter(obj, np.ones(3), sigma_obs=1.0)
    with pytest.raises(TypeError, match="component or StateSpace"):
        dlm.LocalLevel(1.0) + obj


def test_non_model_error_names_the_argument():
    with pytest.raises(TypeError, match="model"):
        dlm.DLM.dist("level", sigma_obs=1.0, steps=3)


def test_dlm_takes_everything_but_the_model_by_keyword():
    with pytest.raises(TypeError, match="keyword"):
        with pm.Model():
            dlm.DLM("y", dlm.LocalLevel(1.0), 1.0, observed=np.ones(3))
