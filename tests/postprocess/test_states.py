"""State draws (FFBS), decomposition and forecasts against independent oracles.

At fixed parameter values (a "posterior" whose draws all hold one value) the Monte Carlo
moments of the draws must match the exact Gaussian moments: the dense joint Gaussian of
``tests/support/oracles.py`` for the smoother (including the lag-one cross covariance) and the
textbook h-step recursions for forecasts. Bounds are 5 Monte Carlo standard errors.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from tests.support.fixed_posterior import TREND_SEASONAL, trend_seasonal_data, trend_seasonal_fit
from tests.support.oracles import dense_filtered, dense_smoothed

S_LEVEL, S_SEAS, S_OBS = (TREND_SEASONAL[k] for k in ("s_level", "s_seas", "s_obs"))
T = 20
N_CHAIN, N_DRAW = 2, 1000
MISSING = [3, 9]


def _matrices():
    """Local linear trend with a noiseless slope + dummy seasonal(4): singular W."""
    G = np.zeros((5, 5))
    G[:2, :2] = [[1, 1], [0, 1]]
    G[2, 2:] = -1
    G[3, 2] = G[4, 3] = 1
    F = np.array([[1.0, 0, 1, 0, 0]])
    W = np.diag([S_LEVEL**2, 0, S_SEAS**2, 0, 0])
    return F, G, W, np.array([[S_OBS**2]]), np.zeros(5), 100.0 * np.eye(5)


@pytest.fixture(scope="module")
def data():
    return trend_seasonal_data(T, MISSING)


@pytest.fixture(scope="module")
def fitted(data):
    model, idata = trend_seasonal_fit(data, N_CHAIN, N_DRAW)
    states = dlm.sample_states(idata, model, random_seed=1, progressbar=False, log_likelihood=True)
    return model, idata, states


def _draws(states, var):
    da = states["posterior"][var]
    return da.values.reshape(N_CHAIN * N_DRAW, *da.shape[2:])


def test_structure_and_no_mutation(fitted):
    _, idata, states = fitted
    post = states["posterior"]
    assert post["y_smoothed_state"].dims == ("chain", "draw", "month", "y_state")
    assert list(post["y_state"].values) == [
        "level",
        "slope",
        "seasonal_1",
        "seasonal_2",
        "seasonal_3",
    ]
    assert post["y_components"].dims == ("chain", "draw", "month", "y_component")
    assert list(post["y_component"].values) == ["trend", "seasonal"]
    dates = pd.date_range("2020-01-01", periods=T, freq="MS")
    np.testing.assert_array_equal(post["y_smoothed_state"]["month"].values, dates.values)
    assert "y_smoothed_state" not in idata["posterior"].data_vars
    assert np.all(np.isfinite(post["y_smoothed_state"].values))


def test_smoothed_draws_match_dense_gaussian(fitted, data):
    _, _, states = fitted
    draws = _draws(states, "y_smoothed_state")  # (S, T, n)
    exact = dense_smoothed(*_matrices(), data[:, None])
    S = draws.shape[0]
    se = np.sqrt(np.einsum("tii->ti", exact.smoothed_cov) / S)
    se = np.where(se > 0, se, 1e-12)
    z = (draws.mean(0) - exact.smoothed_mean) / se
    assert np.max(np.abs(z)) < 5
    var = np.einsum("tii->ti", exact.smoothed_cov)
    ratio = draws.var(0)[var > 1e-10] / var[var > 1e-10]
    assert np.all(np.abs(ratio - 1) < 5 * np.sqrt(2 / S))
    # lag-one cross covariance of the joint path, level and first seasonal state
    for i in (0, 2):
        a, b = draws[:, :-1, i], draws[:, 1:, i]
        est = ((a - a.mean(0)) * (b - b.mean(0))).mean(0)
        true = exact.smoothed_cross_cov[:, i, i]
        sd = np.sqrt((exact.smoothed_cov[:-1, i, i] * exact.smoothed_cov[1:, i, i] + true**2) / S)
        assert np.max(np.abs(est - true) / sd) < 5


def test_filtered_draws_match_dense_filter(fitted, data):
    _, _, states = fitted
    draws = _draws(states, "y_filtered_state")
    exact = dense_filtered(*_matrices(), data[:, None])
    S = draws.shape[0]
    var = np.einsum("tii->ti", exact.filtered_cov)
    z = (draws.mean(0) - exact.filtered_mean) / np.sqrt(var / S)
    assert np.max(np.abs(z)) < 5


def test_components_sum_to_signal_and_loglik_terms(fitted, data):
    _, _, states = fitted
    post = states["posterior"]
    path = post["y_smoothed_state"]
    signal = path.sel(y_state="level") + path.sel(y_state="seasonal_1")
    np.testing.assert_allclose(post["y_components"].sum("y_component"), signal, atol=1e-10)
    ll = states["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "month")
    # Missing observations (terms exactly 0) are left out of the group, and listed.
    assert ll.sizes["month"] == len(data) - len(MISSING)
    assert len(ll.attrs["excluded_times"]) == len(MISSING)
    exact = dense_filtered(*_matrices(), data[:, None]).loglik
    np.testing.assert_allclose(ll.sum("month").values, exact, rtol=1e-9)


def test_reproducible_with_seed(fitted):
    model, idata, states = fitted
    again = dlm.sample_states(idata, model, random_seed=1, progressbar=False)
    np.testing.assert_array_equal(
        again["posterior"]["y_smoothed_state"].values,
        states["posterior"]["y_smoothed_state"].values,
    )


def test_forecast_matches_h_step_moments(fitted, data):
    model, idata, _ = fitted
    H = 6
    out = dlm.forecast(idata, model, steps=H, random_seed=3, progressbar=False)
    pred = out["predictions"]
    expected = pd.date_range("2021-09-01", periods=H, freq="MS")
    np.testing.assert_array_equal(pred["month"].values, expected.values)
    assert pred["y_forecast_state"].dims == ("chain", "draw", "month", "y_state")
    F, G, W, V, _, _ = _matrices()
    filt = dense_filtered(F, G, W, V, np.zeros(5), 100.0 * np.eye(5), data[:, None])
    a, R = filt.filtered_mean[-1], filt.filtered_cov[-1]
    draws = pred["y"].values.reshape(-1, H)
    S = draws.shape[0]
    for h in range(H):
        a, R = G @ a, G @ R @ G.T + W
        mean, var = (F @ a)[0], (F @ R @ F.T + V)[0, 0]
        assert abs(draws[:, h].mean() - mean) < 5 * np.sqrt(var / S)
        assert abs(draws[:, h].var() / var - 1) < 5 * np.sqrt(2 / S)


def test_bad_input(fitted):
    model, idata, _ = fitted
    with pytest.raises(ValueError, match="posterior"):
        dlm.sample_states(xr.DataTree(), model)
    with pytest.raises(TypeError, match="idata"):
        dlm.sample_states({"posterior": 1}, model)
    with pytest.raises(ValueError, match="var_names"):
        dlm.sample_states(idata, model, var_names="s_obs")
    with pytest.raises(ValueError, match="steps"):
        dlm.forecast(idata, model, steps=0)


def test_forecast_regression_needs_new_data():
    X = np.random.default_rng(0).normal(size=(15, 2))
    y = X @ np.array([1.0, -0.5]) + np.random.default_rng(1).normal(0, 0.1, 15)
    with pm.Model() as model:
        Xd = pm.Data("X", X)
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.Regression(Xd), sigma_obs=s, observed=y)
    post = xr.Dataset(
        {"s": (("chain", "draw"), np.full((1, 4), 0.1))},
        coords={"chain": [0], "draw": np.arange(4)},
    )
    idata = xr.DataTree.from_dict({"posterior": post})
    with pytest.raises(ValueError, match="new_data"):
        dlm.forecast(idata, model, steps=3)
    with pytest.raises(ValueError, match="new_data"):
        dlm.forecast(idata, model, steps=3, new_data={"X": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="new_data"):
        dlm.forecast(idata, model, steps=3, new_data={"nope": np.zeros((3, 2))})
