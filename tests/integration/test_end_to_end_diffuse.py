"""End to end on the diffuse defaults: ``pm.sample`` -> ``sample_states`` -> ``forecast``.

The model gives no initial prior at all: ``LocalLinearTrend + Seasonal(4)`` default to
``C0="diffuse"`` (exact diffuse initialisation). A short NUTS run on a simulated series
(T = 60, one value missing inside the diffuse period and one later) feeds ``sample_states``
and ``forecast``; the test checks the structure of their DataTrees and, against statsmodels'
``UnobservedComponents(..., use_exact_diffuse=True)`` (``ssm.tolerance = 0``), the numbers:

* at one posterior draw, ``kalman_smoother``'s smoothed moments equal statsmodels' exact
  diffuse smoother (same state order: level, slope, three seasonal states; statsmodels' flat
  prior on alpha_1 equals ours on theta_0 because |det G| = 1);
* for every posterior draw psi_s, the FFBS draw of theta_t standardised by statsmodels'
  smoothed moments at psi_s, z = (theta_t - E[theta_t | y, psi_s]) / sd[theta_t | y, psi_s],
  is N(0, 1) and independent across draws, so for each (t, state) the mean of z over the
  S draws is within 5/sqrt(S) of 0 and its variance within 5 sqrt(2/S) of 1; likewise the
  forecast draws of y_{T+h} against statsmodels' h-step predictive mean and variance.

The data are simulated here from a fixed seed; no number is stored.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import pymc_dlm as dlm

SEED = 20261124
T, STEPS = 60, 8
CHAINS, DRAWS = 2, 100
MISSING = [2, 37]
LABELS = ["level", "slope", "seasonal_1", "seasonal_2", "seasonal_3"]
K = 5.0  # bound in Monte Carlo standard errors

pytestmark = pytest.mark.slow


def _series():
    rng = np.random.default_rng(SEED)
    slope = 0.2 + np.cumsum(rng.normal(0, 0.05, T))
    level = 10.0 + np.cumsum(slope + rng.normal(0, 0.3, T))
    season = np.tile([1.5, -1.0, 0.5, -1.0], T // 4)
    y = level + season + rng.normal(0, 0.4, T)
    y[MISSING] = np.nan
    return y


def _statsmodels(y, s_level, s_slope, s_seas, s_obs):
    """Exact diffuse smoother and forecasts of statsmodels at one parameter value."""
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    mod = UnobservedComponents(y, level="local linear trend", seasonal=4, use_exact_diffuse=True)
    mod.ssm.tolerance = 0.0
    res = mod.smooth(np.array([s_obs, s_level, s_slope, s_seas]) ** 2)
    fc = res.get_forecast(STEPS)
    return {
        "smoothed_mean": res.smoothed_state.T,
        "smoothed_cov": np.moveaxis(res.smoothed_state_cov, -1, 0),
        "forecast_mean": np.asarray(fc.predicted_mean),
        "forecast_var": np.asarray(fc.var_pred_mean),
    }


@pytest.fixture(scope="module")
def run():
    y = _series()
    dates = pd.date_range("2015-01-01", periods=T, freq="QS")
    with pm.Model(coords={"quarter": dates}) as model:
        s_level = pm.HalfNormal("s_level", 0.5)
        s_slope = pm.HalfNormal("s_slope", 0.1)
        s_seas = pm.HalfNormal("s_seas", 0.2)
        s_obs = pm.HalfNormal("s_obs", 1.0)
        trend = dlm.LocalLinearTrend(s_level, s_slope) + dlm.Seasonal(4, s_seas)
        dlm.DLM("y", trend, sigma_obs=s_obs, observed=y, dims="quarter")
        idata = pm.sample(
            draws=DRAWS,
            tune=100,
            chains=CHAINS,
            cores=1,
            nuts_sampler="pymc",
            random_seed=SEED,
            progressbar=False,
            compute_convergence_checks=False,
        )
    states = dlm.sample_states(idata, model, random_seed=1, progressbar=False)
    fc = dlm.forecast(states, model, steps=STEPS, random_seed=2, progressbar=False)
    return y, dates, idata, states, fc


def _params(post):
    names = ("s_level", "s_slope", "s_seas", "s_obs")
    return np.stack([post[k].values.reshape(-1) for k in names], axis=-1)  # (S, 4)


def test_structure_shapes_and_coords(run):
    y, dates, idata, states, fc = run
    post = states["posterior"]
    assert "y_smoothed_state" not in idata["posterior"].data_vars  # input not mutated
    smoothed = post["y_smoothed_state"]
    assert smoothed.dims == ("chain", "draw", "quarter", "y_state")
    assert smoothed.shape == (CHAINS, DRAWS, T, 5)
    assert list(post["y_state"].values) == LABELS
    np.testing.assert_array_equal(smoothed["quarter"].values, dates.values)
    assert post["y_components"].dims == ("chain", "draw", "quarter", "y_component")
    assert list(post["y_component"].values) == ["trend", "seasonal"]
    assert np.all(np.isfinite(smoothed.values))
    assert np.all(np.isfinite(post["y_components"].values))
    # Filtered states are proper once the diffuse period is over (5 states, one missing value
    # among the first observations; statsmodels says how many observations it lasts).
    nd = _statsmodels_nobs_diffuse(y)
    assert np.all(np.isfinite(post["y_filtered_state"].values[:, :, nd:]))

    pred = fc["predictions"]
    assert pred["y"].dims == ("chain", "draw", "quarter")
    assert pred["y"].shape == (CHAINS, DRAWS, STEPS)
    assert pred["y_forecast_state"].dims == ("chain", "draw", "quarter", "y_state")
    assert pred["y_forecast_state"].shape == (CHAINS, DRAWS, STEPS, 5)
    expected = pd.date_range(dates[-1], periods=STEPS + 1, freq="QS")[1:]
    np.testing.assert_array_equal(pred["quarter"].values, expected.values)
    assert np.all(np.isfinite(pred["y"].values))
    assert np.all(np.isfinite(pred["y_forecast_state"].values))


def _statsmodels_nobs_diffuse(y):
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    mod = UnobservedComponents(y, level="local linear trend", seasonal=4, use_exact_diffuse=True)
    mod.ssm.tolerance = 0.0
    return int(mod.smooth(np.array([0.16, 0.09, 0.0025, 0.04])).nobs_diffuse)


def test_smoother_at_one_draw_matches_statsmodels(run):
    y, _, idata, _, _ = run
    s_level, s_slope, s_seas, s_obs = _params(idata["posterior"])[0]
    model = dlm.LocalLinearTrend(s_level, s_slope) + dlm.Seasonal(4, s_seas)
    ds = dlm.kalman_smoother(model, y, sigma_obs=s_obs)
    ref = _statsmodels(y, s_level, s_slope, s_seas, s_obs)
    scale = np.abs(ref["smoothed_mean"]).max()
    np.testing.assert_allclose(ds.smoothed_mean.values, ref["smoothed_mean"], atol=1e-8 * scale)
    cov_scale = np.abs(ref["smoothed_cov"]).max()
    np.testing.assert_allclose(ds.smoothed_cov.values, ref["smoothed_cov"], atol=1e-8 * cov_scale)


def _standardised_check(z, label):
    """Check that z (S, ...) is iid N(0, 1) across S: mean and variance within K SEs."""
    S = z.shape[0]
    mean_z = np.max(np.abs(z.mean(0))) * np.sqrt(S)
    assert mean_z < K, f"{label}: mean z-score {mean_z:.2f}"
    var_z = np.max(np.abs(z.var(0) - 1)) / np.sqrt(2 / S)
    assert var_z < K, f"{label}: variance z-score {var_z:.2f}"


def test_ffbs_and_forecast_draws_match_statsmodels_at_each_draw(run):
    y, _, idata, states, fc = run
    params = _params(idata["posterior"])
    S = params.shape[0]
    smoothed = states["posterior"]["y_smoothed_state"].values.reshape(S, T, 5)
    y_future = fc["predictions"]["y"].values.reshape(S, STEPS)
    z_state = np.empty_like(smoothed)
    z_y = np.empty_like(y_future)
    for s in range(S):
        ref = _statsmodels(y, *params[s])
        sd = np.sqrt(np.einsum("tii->ti", ref["smoothed_cov"]))
        z_state[s] = (smoothed[s] - ref["smoothed_mean"]) / sd
        z_y[s] = (y_future[s] - ref["forecast_mean"]) / np.sqrt(ref["forecast_var"])
    _standardised_check(z_state, "smoothed states (FFBS)")
    _standardised_check(z_y, "forecast observations")
    # Not vacuous: the draws move with the parameters, and the smoothed standard deviations
    # through the diffuse period are proper (positive, finite).
    assert np.ptp(params[:, 0]) > 0
    assert np.all(np.isfinite(z_state))
