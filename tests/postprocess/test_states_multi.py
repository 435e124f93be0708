"""State draws and forecasts of multivariate and batched DLMs, and forecast time coordinates.

At fixed parameter values (a posterior whose draws all hold one value) the Monte Carlo means
and variances of :func:`pymc_dlm.sample_states`' filtered and smoothed draws must match the
exact Gaussian moments of the dense joint Gaussian in ``tests/support/oracles.py`` (no
recursion; it witnesses ``kalman_filter``/``kalman_smoother`` in
``tests/kalman/test_oracle_dense.py``), per series for a batch. Forecast draws must match the
textbook h-step moments (multivariate and batched models).

Bounds: K = 5 Monte Carlo standard errors. With S = 2000 independent draws a sample mean has
standard error sqrt(var / S) and a sample variance sqrt(2 / S) relative (Gaussian draws); each
test checks a few hundred such numbers, and P(|z| > 5) = 5.7e-7 per number keeps the chance of
a false alarm per test below 1e-3. A bias of 0.15 posterior standard deviations (about 7 standard
errors) fails.

Each model is compiled once (module-scoped fixtures): one multivariate and one batched
``sample_states`` graph and one multivariate ``forecast`` graph.
"""

import importlib

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import pytest
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.postprocess.forecast import future_coords
from tests.support.fixed_posterior import fixed_posterior
from tests.support.oracles import dense_filtered, dense_smoothed

forecast_module = importlib.import_module("pymc_dlm.postprocess.forecast")

SEED = 20261124
K = 5.0
N_CHAIN, N_DRAW = 2, 1000
S = N_CHAIN * N_DRAW
H = 5  # forecast horizon


def _check_moments(draws, mean, cov, label):
    """Monte Carlo mean and variance of ``draws`` (S, T, n) against exact (T, n), (T, n, n)."""
    var = np.einsum("tii->ti", cov)
    keep = var > 1e-10 * max(1.0, var.max())
    z = (draws.mean(0) - mean)[keep] / np.sqrt(var[keep] / draws.shape[0])
    assert np.max(np.abs(z)) < K, f"{label}: mean z-score {np.max(np.abs(z)):.2f}"
    ratio = draws.var(0)[keep] / var[keep]
    worst = np.max(np.abs(ratio - 1) / np.sqrt(2 / draws.shape[0]))
    assert worst < K, f"{label}: variance z-score {worst:.2f}"
    # Where the exact variance is zero the draws must be exact too (singular W, no jitter).
    np.testing.assert_allclose(
        draws[:, ~keep],
        np.broadcast_to(mean[~keep], draws[:, ~keep].shape),
        atol=1e-6 * max(1.0, np.abs(mean).max()),
    )


# --------------------------------------------------------------------------------------------
# Multivariate: p = 2 series, 2 states, non-diagonal V built from free variables
# --------------------------------------------------------------------------------------------

MV_T = 16
MV_F = np.array([[1.0, 0.5], [0.3, 1.0]])
MV_G = np.array([[0.95, 0.1], [0.0, 0.8]])
MV_W0 = np.array([[0.5, 0.2], [0.2, 0.4]])  # scaled by sw**2
MV_M0 = np.array([1.0, -0.5])
MV_C0 = np.array([[4.0, 1.0], [1.0, 3.0]])
MV_VALUES = {"sw": 0.8, "s1": 0.6, "s2": 1.1, "rho": 0.7}
MV_TIME = np.arange(101, 101 + MV_T)  # integer coordinates that do not start at 0


def _mv_V(s1, s2, rho):
    return np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])


@pytest.fixture(scope="module")
def mv_data():
    rng = np.random.default_rng(SEED)
    W = MV_VALUES["sw"] ** 2 * MV_W0
    V = _mv_V(MV_VALUES["s1"], MV_VALUES["s2"], MV_VALUES["rho"])
    theta = rng.multivariate_normal(MV_M0, MV_C0)
    y = np.empty((MV_T, 2))
    for t in range(MV_T):
        theta = MV_G @ theta + rng.multivariate_normal(np.zeros(2), W)
        y[t] = MV_F @ theta + rng.multivariate_normal(np.zeros(2), V)
    y[4] = np.nan  # a fully missing row
    y[9, 1] = np.nan  # partially missing rows
    y[12, 0] = np.nan
    return y


@pytest.fixture(scope="module")
def mv_fitted(mv_data):
    coords = {"time": MV_TIME, "series": ["north", "south"]}
    with pm.Model(coords=coords) as model:
        sw = pm.HalfNormal("sw", 1.0)
        s1 = pm.HalfNormal("s1", 1.0)
        s2 = pm.HalfNormal("s2", 1.0)
        rho = pm.Uniform("rho", -1.0, 1.0)
        cross = rho * s1 * s2
        V = pt.stack([pt.stack([s1**2, cross]), pt.stack([cross, s2**2])])
        ss = dlm.StateSpace(
            MV_F,
            MV_G,
            sw**2 * MV_W0,
            MV_M0,
            MV_C0,
            W_sqrt=sw * np.linalg.cholesky(MV_W0),
            state_labels=["a", "b"],
            name="pair",
        )
        dlm.DLM("z", ss, obs_cov=V, observed=mv_data, dims=("time", "series"))
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior(MV_VALUES, N_CHAIN, N_DRAW)})
    states = dlm.sample_states(idata, model, random_seed=SEED, progressbar=False)
    return model, idata, states


def _mv_exact(y, smooth):
    W = MV_VALUES["sw"] ** 2 * MV_W0
    V = _mv_V(MV_VALUES["s1"], MV_VALUES["s2"], MV_VALUES["rho"])
    oracle = dense_smoothed if smooth else dense_filtered
    return oracle(MV_F, MV_G, W, V, MV_M0, MV_C0, y)


def test_multivariate_dims_and_coords(mv_fitted):
    _, idata, states = mv_fitted
    post = states["posterior"]
    for kind in ("filtered", "smoothed"):
        da = post[f"z_{kind}_state"]
        assert da.dims == ("chain", "draw", "time", "z_state")
        assert da.shape == (N_CHAIN, N_DRAW, MV_T, 2)
        assert list(da["z_state"].values) == ["a", "b"]
        np.testing.assert_array_equal(da["time"].values, MV_TIME)
        assert np.all(np.isfinite(da.values))
    comp = post["z_components"]
    assert comp.dims == ("chain", "draw", "time", "series", "z_component")
    assert list(comp["z_component"].values) == ["pair"]
    # One component: its contribution is F θ of the smoothed path.
    path = post["z_smoothed_state"].values
    np.testing.assert_allclose(comp.values[..., 0], path @ MV_F.T, rtol=1e-12, atol=1e-12)
    assert "z_smoothed_state" not in idata["posterior"].data_vars


def test_multivariate_components_carry_series_coords(mv_fitted):
    _, _, states = mv_fitted
    comp = states["posterior"]["z_components"]
    assert "series" in comp.coords
    np.testing.assert_array_equal(comp["series"].values, ["north", "south"])


def test_multivariate_smoothed_draws_match_dense_gaussian(mv_fitted, mv_data):
    _, _, states = mv_fitted
    draws = states["posterior"]["z_smoothed_state"].values.reshape(S, MV_T, 2)
    exact = _mv_exact(mv_data, smooth=True)
    _check_moments(draws, exact.smoothed_mean, exact.smoothed_cov, "smoothed")
    # The two states at one time are correlated; the joint path must carry that too.
    a, b = draws[..., 0], draws[..., 1]
    est = ((a - a.mean(0)) * (b - b.mean(0))).mean(0)
    true = exact.smoothed_cov[:, 0, 1]
    sd = np.sqrt((exact.smoothed_cov[:, 0, 0] * exact.smoothed_cov[:, 1, 1] + true**2) / S)
    assert np.max(np.abs(est - true) / sd) < K


def test_multivariate_filtered_draws_match_dense_filter(mv_fitted, mv_data):
    _, _, states = mv_fitted
    draws = states["posterior"]["z_filtered_state"].values.reshape(S, MV_T, 2)
    exact = _mv_exact(mv_data, smooth=False)
    _check_moments(draws, exact.filtered_mean, exact.filtered_cov, "filtered")
    # Filtered draws are independent across time (one marginal draw per t), unlike the path.
    a, b = draws[:, :-1, 0], draws[:, 1:, 0]
    lag = ((a - a.mean(0)) * (b - b.mean(0))).mean(0) / np.sqrt(a.var(0) * b.var(0))
    assert np.max(np.abs(lag)) < K / np.sqrt(S)


@pytest.fixture(scope="module")
def mv_forecast(mv_fitted):
    # The full V runs the numba kernel (decorrelated): the scan route must not be taken.
    model, idata, _ = mv_fitted

    def no_scan(*args, **kwargs):
        raise AssertionError("forecast took the scan route for a full obs_cov")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(forecast_module, "_forecast_graph", no_scan)
        return dlm.forecast(idata, model, steps=H, random_seed=SEED, progressbar=False)


def test_multivariate_forecast_continues_integer_time(mv_forecast):
    pred = mv_forecast["predictions"]
    assert pred["z"].dims == ("chain", "draw", "time", "series")
    assert pred["z_forecast_state"].dims == ("chain", "draw", "time", "z_state")
    for var in ("z", "z_forecast_state"):
        np.testing.assert_array_equal(pred[var]["time"].values, MV_TIME[-1] + np.arange(1, H + 1))
        assert np.issubdtype(pred[var]["time"].dtype, np.integer)


def test_multivariate_forecast_matches_h_step_moments(mv_forecast, mv_data):
    exact = _mv_exact(mv_data, smooth=False)
    a, R = exact.filtered_mean[-1], exact.filtered_cov[-1]
    W = MV_VALUES["sw"] ** 2 * MV_W0
    V = _mv_V(MV_VALUES["s1"], MV_VALUES["s2"], MV_VALUES["rho"])
    draws = mv_forecast["predictions"]["z"].values.reshape(S, H, 2)
    for h in range(H):
        a, R = MV_G @ a, MV_G @ R @ MV_G.T + W
        f, Q = MV_F @ a, MV_F @ R @ MV_F.T + V
        x = draws[:, h]
        assert np.all(np.abs(x.mean(0) - f) < K * np.sqrt(np.diag(Q) / S))
        assert np.all(np.abs(x.var(0) / np.diag(Q) - 1) < K * np.sqrt(2 / S))
        cross = ((x[:, 0] - x[:, 0].mean()) * (x[:, 1] - x[:, 1].mean())).mean()
        assert abs(cross - Q[0, 1]) < K * np.sqrt((Q[0, 0] * Q[1, 1] + Q[0, 1] ** 2) / S)


# --------------------------------------------------------------------------------------------
# Batched: 3 independent series, LocalLinearTrend with batched sigmas, singular W
# --------------------------------------------------------------------------------------------

B_T = 18
B_SIG_LEVEL = np.array([0.3, 1.0, 2.5])
B_SIG_OBS = np.array([0.5, 0.4, 3.0])
B_SIG_SLOPE = 0.0  # noiseless slope: singular W
B_C0 = 50.0
B_REGIONS = ["east", "west", "south"]
B_YEARS = np.arange(1990, 1990 + 2 * B_T, 2)  # integer coordinates with spacing 2


def _b_system(i):
    F = np.array([[1.0, 0.0]])
    G = np.array([[1.0, 1.0], [0.0, 1.0]])
    W = np.diag([B_SIG_LEVEL[i] ** 2, B_SIG_SLOPE**2])
    return F, G, W, np.array([[B_SIG_OBS[i] ** 2]]), np.zeros(2), B_C0 * np.eye(2)


@pytest.fixture(scope="module")
def b_data():
    rng = np.random.default_rng(SEED + 1)
    y = np.empty((3, B_T))
    for i in range(3):
        slope = rng.normal(0, 0.5)
        level = np.cumsum(slope + rng.normal(0, B_SIG_LEVEL[i], B_T)) + 10 * i
        y[i] = level + rng.normal(0, B_SIG_OBS[i], B_T)
    y[0, [2, 3]] = np.nan
    y[2, B_T - 1] = np.nan  # missing last value: the forecast starts from a prediction
    return y


@pytest.fixture(scope="module")
def b_fitted(b_data):
    coords = {"region": B_REGIONS, "year": B_YEARS}
    with pm.Model(coords=coords) as model:
        s_level = pm.HalfNormal("s_level", 1.0, dims="region")
        s_obs = pm.HalfNormal("s_obs", 1.0, dims="region")
        trend = dlm.LocalLinearTrend(s_level, B_SIG_SLOPE, C0=B_C0)
        dlm.DLM("y", trend, sigma_obs=s_obs, observed=b_data, dims=("region", "year"))
    post = fixed_posterior(
        {"s_level": B_SIG_LEVEL, "s_obs": B_SIG_OBS},
        N_CHAIN,
        N_DRAW,
        dims={"s_level": ("region",), "s_obs": ("region",)},
    ).assign_coords(region=B_REGIONS)
    observed = xr.Dataset({"y": (("region", "year"), b_data)}, coords=coords)
    idata = xr.DataTree.from_dict({"posterior": post, "observed_data": observed})
    states = dlm.sample_states(idata, model, random_seed=SEED, progressbar=False)
    return model, idata, states


def test_batched_dims_and_coords(b_fitted):
    _, _, states = b_fitted
    post = states["posterior"]
    for kind in ("filtered", "smoothed"):
        da = post[f"y_{kind}_state"]
        assert da.dims == ("chain", "draw", "region", "year", "y_state")
        assert da.shape == (N_CHAIN, N_DRAW, 3, B_T, 2)
        assert list(da["y_state"].values) == ["level", "slope"]
        np.testing.assert_array_equal(da["region"].values, B_REGIONS)
        np.testing.assert_array_equal(da["year"].values, B_YEARS)
        assert np.all(np.isfinite(da.values))
    comp = post["y_components"]
    assert comp.dims == ("chain", "draw", "region", "year", "y_component")
    np.testing.assert_allclose(
        comp.sum("y_component"), post["y_smoothed_state"].sel(y_state="level"), atol=1e-12
    )


@pytest.mark.parametrize("series", range(3))
def test_batched_draws_match_dense_gaussian_per_series(b_fitted, b_data, series):
    _, _, states = b_fitted
    post = states["posterior"]
    y = b_data[series][:, None]
    smoothed = dense_smoothed(*_b_system(series), y)
    filtered = dense_filtered(*_b_system(series), y)
    for kind, mean, cov in (
        ("smoothed", smoothed.smoothed_mean, smoothed.smoothed_cov),
        ("filtered", filtered.filtered_mean, filtered.filtered_cov),
    ):
        da = post[f"y_{kind}_state"].isel(region=series)
        _check_moments(da.values.reshape(S, B_T, 2), mean, cov, f"{kind} series {series}")


@pytest.fixture(scope="module")
def b_forecast(b_fitted):
    model, idata, _ = b_fitted
    return dlm.forecast(idata, model, steps=H, random_seed=SEED, progressbar=False)


def test_batched_forecast_continues_integer_years(b_forecast):
    pred = b_forecast["predictions"]
    expected = B_YEARS[-1] + 2 * np.arange(1, H + 1)  # the data's spacing of 2 continues
    assert pred["y"].dims == ("chain", "draw", "region", "year")
    assert pred["y_forecast_state"].dims == ("chain", "draw", "region", "year", "y_state")
    for var in ("y", "y_forecast_state"):
        np.testing.assert_array_equal(pred[var]["year"].values, expected)
        assert np.issubdtype(pred[var]["year"].dtype, np.integer)
    np.testing.assert_array_equal(pred["y"]["region"].values, B_REGIONS)
    assert set(b_forecast.children) == {"predictions", "observed_data"}  # nothing else copied


@pytest.mark.parametrize("series", range(3))
def test_batched_forecast_matches_h_step_moments(b_forecast, b_data, series):
    F, G, W, V, m0, C0 = _b_system(series)
    filt = dense_filtered(F, G, W, V, m0, C0, b_data[series][:, None])
    a, R = filt.filtered_mean[-1], filt.filtered_cov[-1]
    pred = b_forecast["predictions"]
    y_draws = pred["y"].isel(region=series).values.reshape(S, H)
    th_draws = pred["y_forecast_state"].isel(region=series).values.reshape(S, H, 2)
    for h in range(H):
        a, R = G @ a, G @ R @ G.T + W
        mean, var = (F @ a)[0], (F @ R @ F.T + V)[0, 0]
        assert abs(y_draws[:, h].mean() - mean) < K * np.sqrt(var / S)
        assert abs(y_draws[:, h].var() / var - 1) < K * np.sqrt(2 / S)
        se = np.sqrt(np.diag(R) / S)
        assert np.all(np.abs(th_draws[:, h].mean(0) - a) < K * se)


# --------------------------------------------------------------------------------------------
# Time coordinates of forecasts (no compilation) and new_data errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "coord, expected",
    [
        (np.arange(1871, 1971), np.arange(1971, 1974)),
        (np.arange(0, 50, 5), np.array([50, 55, 60])),
        (np.array([7]), np.array([8, 9, 10])),
        (np.array([0.5, 0.75, 1.0]), np.array([1.25, 1.5, 1.75])),
    ],
)
def test_future_coords_continue_numbers(coord, expected):
    got = future_coords(coord, 3)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype.kind == coord.dtype.kind


@pytest.mark.parametrize(
    "freq, expected",
    [
        ("MS", ["2021-09-01", "2021-10-01", "2021-11-01"]),
        ("ME", ["2021-09-30", "2021-10-31", "2021-11-30"]),
        ("QS", ["2026-01-01", "2026-04-01", "2026-07-01"]),
    ],
)
def test_future_coords_continue_a_datetime_frequency(freq, expected):
    start = "2020-01-01" if freq == "MS" else ("2020-01-31" if freq == "ME" else "2021-01-01")
    index = pd.date_range(start, periods=20, freq=freq)
    expected = pd.DatetimeIndex(expected)
    # With the index's own frequency, and as plain values (as model coords store them).
    np.testing.assert_array_equal(future_coords(index, 3), expected)
    np.testing.assert_array_equal(future_coords(index.values, 3), expected)


def test_future_coords_irregular_dates_are_an_error():
    index = pd.DatetimeIndex(["2020-01-01", "2020-01-05", "2020-03-01", "2020-03-02"])
    with pytest.raises(ValueError, match="frequency"):
        future_coords(index, 2)


@pytest.fixture(scope="module")
def regression_model():
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(15, 2))
    y = X @ np.array([1.0, -0.5]) + rng.normal(0, 0.1, 15)
    with pm.Model() as model:
        Xd = pm.Data("X", X)
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.Regression(Xd, C0=10.0), sigma_obs=s, observed=y)
    post = xr.Dataset(
        {"s": (("chain", "draw"), np.full((1, 4), 0.1))},
        coords={"chain": [0], "draw": np.arange(4)},
    )
    return model, xr.DataTree.from_dict({"posterior": post})


@pytest.mark.parametrize(
    "new_data, match",
    [
        (None, r"time-varying.*new_data"),
        ({}, r"time-varying.*new_data"),
        ({"X": np.zeros((3, 3))}, r"new_data\['X'\] must have shape \(3, 2\).*got \(3, 3\)"),
        ({"X": np.zeros(3)}, r"new_data\['X'\] must have shape \(3, 2\).*got \(3,\)"),
        ({"X": np.zeros((4, 2))}, r"new_data\['X'\] must have 3 rows.*got 4"),
        ({"X": np.full((3, 2), np.nan)}, r"new_data\['X'\] must be finite"),
    ],
)
def test_forecast_future_X_errors_name_the_problem(regression_model, new_data, match):
    model, idata = regression_model
    with pytest.raises(ValueError, match=match):
        dlm.forecast(idata, model, steps=3, new_data=new_data)
