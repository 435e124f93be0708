"""The Bayesian workflow around the likelihood: data shapes, predictive checks, refusals.

Witnesses: the dense joint Gaussian of ``tests/support/oracles.py`` (log-likelihoods, the
smoothed and one-step predictive moments), Monte Carlo standard errors for replicate moments,
and the binomial distribution for interval coverage. Posteriors are held at fixed values
(``tests/support/fixed_posterior.py``), so replicates are draws from known Gaussians.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from tests.support.fixed_posterior import fixed_posterior
from tests.support.oracles import dense_filtered, dense_loglik, dense_smoothed

SEED = 20261204
S_LEVEL, S_OBS, M0, C0 = 0.7, 1.1, 2.0, 3.0


def _series(T, seed=SEED):
    rng = np.random.default_rng(seed)
    return M0 + np.cumsum(rng.normal(0, S_LEVEL, T)) + rng.normal(0, S_OBS, T)


def _level_model(y, diffuse=False, **kw):
    """A local level whose sd is the free variable ``s`` (held fixed by the posteriors)."""
    with pm.Model(coords=kw.pop("coords", None)) as model:
        s = pm.HalfNormal("s", 1.0)
        prior = {} if diffuse else {"m0": M0, "C0": C0}
        dlm.DLM("y", dlm.LocalLevel(s, **prior), sigma_obs=S_OBS, observed=y, **kw)
    return model


def _fixed(n_chain=2, n_draw=1500):
    return xr.DataTree.from_dict({"posterior": fixed_posterior({"s": S_LEVEL}, n_chain, n_draw)})


def _dense(y):
    one = np.ones((1, 1))
    return (one, one, S_LEVEL**2 * one, S_OBS**2 * one, [M0], C0 * one, y)


# ------------------------------------------------------------------------------------------
# Shapes are declared, never guessed
# ------------------------------------------------------------------------------------------

Y = _series(30)


@pytest.mark.parametrize(
    "data",
    [Y, Y[:, None], list(Y), pd.Series(Y), pd.DataFrame({"y": Y}), xr.DataArray(Y, dims="t")],
    ids=["1-d", "column", "list", "Series", "one-column DataFrame", "DataArray"],
)
def test_every_container_of_one_series_is_one_series(data):
    expected = dense_loglik(*_dense(Y))
    logp = _level_model(data).compile_logp()({"s_log__": np.log(S_LEVEL)})
    np.testing.assert_allclose(logp - _halfnormal_logp(S_LEVEL), expected, rtol=1e-10)
    level = dlm.LocalLevel(S_LEVEL, m0=M0, C0=C0)
    ds = dlm.kalman_filter(level, data, sigma_obs=S_OBS)
    np.testing.assert_allclose(float(ds["loglik"]), expected, rtol=1e-10)
    assert ds["observed"].dims == ("time",)


def _halfnormal_logp(s):
    """The log density of HalfNormal(s | 1) plus log s (the log-transform's Jacobian)."""
    return np.log(np.sqrt(2 / np.pi)) - 0.5 * s**2 + np.log(s)


@pytest.mark.parametrize(
    "data", [np.c_[Y, Y], pd.DataFrame({"a": Y, "b": Y})], ids=["array", "DataFrame"]
)
def test_several_columns_for_one_series_is_an_error_naming_the_argument(data):
    with pytest.raises(ValueError, match=r"observed must have shape \(T,\) or \(T, 1\)") as err:
        _level_model(data)
    assert "(30, 2)" in str(err.value) and "1 series" in str(err.value)
    assert "dims" in str(err.value)
    with pytest.raises(ValueError, match=r"y must have shape .* got shape \(30, 2\)"):
        dlm.kalman_filter(dlm.LocalLevel(1.0), data, sigma_obs=1.0)


def test_batches_are_declared_by_dims_or_parameters_and_agree():
    batch = np.stack([Y, Y[::-1]])
    expected = [dense_loglik(*_dense(b)) for b in batch]
    model = _level_model(batch, coords={"unit": [0, 1], "t": range(30)}, dims=("unit", "t"))
    terms = model.compile_logp(sum=False)({"s_log__": np.log(S_LEVEL)})[1]
    np.testing.assert_allclose(terms, expected, rtol=1e-10)
    level = dlm.LocalLevel(S_LEVEL, m0=M0, C0=C0)
    by_dims = dlm.kalman_filter(level, batch, sigma_obs=S_OBS, dims=("unit", "t"))
    assert by_dims["loglik"].dims == ("unit",)
    by_params = dlm.kalman_filter(level, batch, sigma_obs=np.full(2, S_OBS))
    for ds in (by_dims, by_params):
        np.testing.assert_allclose(ds["loglik"].values, expected, rtol=1e-10)


def test_dims_whose_coords_have_another_length_fail_when_the_model_is_built():
    with pytest.raises(ValueError, match="'year'.* 5 values"):
        _level_model(Y, coords={"year": range(5)}, dims="year")


def test_multivariate_data_with_the_wrong_number_of_series_names_it():
    ss = dlm.StateSpace(np.eye(2), np.eye(2), np.eye(2), C0=1.0)
    with pytest.raises(ValueError, match=r"must have shape \(T, 2\).*got shape \(30, 3\)"):
        dlm.kalman_filter(ss, np.zeros((30, 3)), sigma_obs=1.0)


@pytest.mark.parametrize("fn", [dlm.kalman_filter, dlm.kalman_smoother])
def test_filter_refuses_random_variables_as_parameters(fn):
    with pytest.raises(TypeError, match="model must have fixed numeric values"):
        fn(dlm.LocalLevel(pm.HalfNormal.dist(100.0)), Y, sigma_obs=1.0)
    with pytest.raises(TypeError, match="sigma_obs must have fixed numeric values"):
        fn(dlm.LocalLevel(1.0), Y, sigma_obs=pm.HalfNormal.dist(1.0))


def test_time_labels_come_from_pandas_and_xarray():
    years = np.arange(1901, 1931)
    for data in (pd.Series(Y, index=years), xr.DataArray(Y, dims="t", coords={"t": years})):
        ds = dlm.kalman_filter(dlm.LocalLevel(1.0), data, sigma_obs=1.0)
        np.testing.assert_array_equal(ds["time"].values, years)


# ------------------------------------------------------------------------------------------
# PyMC's forward sampling refuses what it would get wrong
# ------------------------------------------------------------------------------------------


def test_posterior_predictive_of_diffuse_states_refuses_and_names_the_replacement():
    model = _level_model(Y, diffuse=True)
    with model, pytest.raises(ValueError, match=r"pymc_dlm\.posterior_predictive"):
        pm.sample_posterior_predictive(_fixed(1, 5), progressbar=False)
    with model, pytest.raises(ValueError, match="proper prior"):
        pm.sample_prior_predictive(draws=5)


def test_set_data_forecast_idiom_refuses_and_names_forecast():
    rng = np.random.default_rng(SEED)
    X = rng.normal(size=(30, 1))
    with pm.Model():
        Xd = pm.Data("X", X)
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.Regression(Xd, sigma=s, m0=0.0, C0=4.0), sigma_obs=1.0, observed=Y)
        pm.set_data({"X": rng.normal(size=(6, 1))})
        with pytest.raises(ValueError, match=r"pymc_dlm\.forecast"):
            pm.sample_posterior_predictive(_fixed(1, 5), predictions=True, progressbar=False)


def test_proper_prior_posterior_predictive_still_simulates_the_marginal_model():
    with _level_model(Y):
        pp = pm.sample_posterior_predictive(_fixed(1, 5), progressbar=False, random_seed=1)
    assert pp["posterior_predictive"]["y"].shape == (1, 5, 30)


# ------------------------------------------------------------------------------------------
# dlm.posterior_predictive: replicates given the data
# ------------------------------------------------------------------------------------------


def _z(draws, mean, var):
    """Largest |z| of the Monte Carlo mean and variance against their analytic values."""
    N = draws.shape[0]
    z_mean = np.abs(draws.mean(0) - mean) / np.sqrt(var / N)
    z_var = np.abs(draws.var(0) - var) / (var * np.sqrt(2.0 / N))
    return max(z_mean.max(), z_var.max())


def test_smoothed_replicates_have_the_dense_posterior_predictive_moments():
    y = Y[:12].copy()
    y[4] = np.nan
    model = _level_model(y)
    pp = dlm.posterior_predictive(_fixed(), model, random_seed=2, progressbar=False)
    draws = pp["posterior_predictive"]["y"].values.reshape(-1, 12)
    ref = dense_smoothed(*_dense(y))
    var = ref.smoothed_cov[:, 0, 0] + S_OBS**2
    assert _z(draws, ref.smoothed_mean[:, 0], var) < 4.5
    # Joint: the replicates at t and t+1 share the smoothed path's covariance.
    cov = np.cov(draws[:, 5], draws[:, 6])[0, 1]
    se = np.sqrt((var[5] * var[6] + ref.smoothed_cross_cov[5, 0, 0] ** 2) / draws.shape[0])
    assert abs(cov - ref.smoothed_cross_cov[5, 0, 0]) < 4.5 * se
    obs = pp["observed_data"]["y"].values
    np.testing.assert_array_equal(np.isnan(obs), np.isnan(y))


def test_one_step_replicates_have_the_dense_one_step_moments():
    y = Y[:12].copy()
    y[4] = np.nan
    model = _level_model(y)
    pp = dlm.posterior_predictive(
        _fixed(), model, kind="one_step", random_seed=3, progressbar=False
    )
    draws = pp["posterior_predictive"]["y"].values.reshape(-1, 12)
    ref = dense_filtered(*_dense(y))
    assert _z(draws, ref.forecast_mean[:, 0], ref.forecast_cov[:, 0, 0]) < 4.5


def test_one_step_intervals_cover_the_data_at_the_nominal_rate():
    """Data simulated from the model fall in the 80% one-step intervals 80% of the time."""
    y = _series(400, seed=SEED + 1)
    pp = dlm.posterior_predictive(
        _fixed(1, 400), _level_model(y), kind="one_step", random_seed=4, progressbar=False
    )
    draws = pp["posterior_predictive"]["y"].values.reshape(-1, 400)
    lo, hi = np.quantile(draws, [0.1, 0.9], axis=0)
    rate = np.mean((y >= lo) & (y <= hi))
    # Binomial sd at 400 trials is 0.02; quantiles from 400 draws widen it a little.
    assert abs(rate - 0.8) < 0.07, rate


def test_diffuse_one_step_replicates_leave_out_the_diffuse_period_and_feed_arviz():
    import arviz as az

    years = np.arange(1901, 1931)
    model = _level_model(Y, diffuse=True, coords={"year": years}, dims="year")
    pp = dlm.posterior_predictive(_fixed(2, 50), model, kind="one_step", progressbar=False)
    rep = pp["posterior_predictive"]["y"]
    assert rep.dims == ("chain", "draw", "year")
    np.testing.assert_array_equal(rep["year"].values, years[1:])
    assert rep.attrs["dropped_times"] == ["1901"]
    assert pp["observed_data"]["y"].sizes["year"] == 29
    assert np.all(np.isfinite(rep.values))
    summary = az.summary(pp, group="posterior_predictive")
    assert len(summary) == 29
    smoothed = dlm.posterior_predictive(_fixed(2, 50), model, progressbar=False)
    assert smoothed["posterior_predictive"]["y"].sizes["year"] == 30


def test_posterior_predictive_rejects_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        dlm.posterior_predictive(_fixed(1, 5), _level_model(Y), kind="smooth")


# ------------------------------------------------------------------------------------------
# Pointwise log-likelihood terms that az.loo accepts
# ------------------------------------------------------------------------------------------


def _spread_posterior(n_chain=2, n_draw=200, seed=SEED):
    rng = np.random.default_rng(seed)
    s = S_LEVEL * np.exp(0.2 * rng.standard_normal((n_chain, n_draw)))
    return xr.DataTree.from_dict({"posterior": xr.Dataset({"s": (("chain", "draw"), s)})})


def test_loo_runs_on_a_diffuse_model_with_missing_values():
    import arviz as az

    y = Y.copy()
    y[[5, 17]] = np.nan
    years = np.arange(1901, 1931)
    model = _level_model(y, diffuse=True, coords={"year": years}, dims="year")
    states = dlm.sample_states(
        _spread_posterior(), model, random_seed=5, progressbar=False, log_likelihood=True
    )
    ll = states["log_likelihood"]["y"]
    assert ll.attrs["excluded_times"] == ["1901", "1906", "1918"]
    assert ll.sizes["year"] == 27
    loo = az.loo(states)
    assert np.isfinite(loo.elpd) and loo.n_data_points == 27


def test_loo_terms_of_a_proper_model_sum_to_its_log_likelihood():
    """Left-out terms are the missing ones (exactly 0): the kept terms sum to the dense value."""
    y = Y[:15].copy()
    y[3] = np.nan
    states = dlm.sample_states(
        _fixed(1, 3), _level_model(y), progressbar=False, log_likelihood=True
    )
    ll = states["log_likelihood"]["y"]
    assert ll.sizes[ll.dims[-1]] == 14
    np.testing.assert_allclose(ll.sum(ll.dims[-1]).values, dense_loglik(*_dense(y)), rtol=1e-9)


def test_batched_terms_left_out_per_member_are_stacked():
    batch = np.stack([Y, Y[::-1]])
    batch[0, 3] = np.nan
    model = _level_model(batch, coords={"unit": ["a", "b"], "t": range(30)}, dims=("unit", "t"))
    states = dlm.sample_states(_fixed(1, 3), model, progressbar=False, log_likelihood=True)
    ll = states["log_likelihood"]["y"]
    assert ll.dims == ("chain", "draw", "y_term") and ll.sizes["y_term"] == 59
    assert set(ll["unit"].values) == {"a", "b"}
    kept = ll.isel(chain=0, draw=0)
    for unit, member in (("a", 0), ("b", 1)):
        total = float(kept.where(kept["unit"] == unit, drop=True).sum())
        np.testing.assert_allclose(total, dense_loglik(*_dense(batch[member])), rtol=1e-9)


# ------------------------------------------------------------------------------------------
# Forecasting: every time index, future labels, backtesting, a small output
# ------------------------------------------------------------------------------------------


def _forecast_labels(labels, **kw):
    model = _level_model(Y, coords={"t": labels}, dims="t")
    fc = dlm.forecast(_fixed(1, 4), model, steps=3, progressbar=False, **kw)
    return fc["predictions"]["y"]["t"].values


def test_forecast_continues_period_datetime_and_numeric_labels():
    periods = pd.period_range("2001-01", periods=30, freq="M")
    np.testing.assert_array_equal(
        _forecast_labels(periods), pd.period_range("2003-07", periods=3, freq="M").to_numpy()
    )
    dates = pd.date_range("2001-01-01", periods=30, freq="W-SUN")
    np.testing.assert_array_equal(
        _forecast_labels(dates), pd.date_range(dates[-1], periods=4, freq="W-SUN")[1:].values
    )
    np.testing.assert_array_equal(_forecast_labels(np.arange(0.0, 15.0, 0.5)), [15.0, 15.5, 16.0])


def test_forecast_of_string_labels_needs_and_takes_future_labels():
    labels = [f"q{i}" for i in range(30)]
    with pytest.raises(ValueError, match="coords="):
        _forecast_labels(labels)
    got = _forecast_labels(labels, coords={"t": ["a", "b", "c"]})
    np.testing.assert_array_equal(got, ["a", "b", "c"])
    with pytest.raises(ValueError, match="must have 3 labels"):
        _forecast_labels(labels, coords={"t": ["a"]})


def test_forecast_output_is_small_and_has_chain_and_draw_coords():
    model = _level_model(Y)
    idata = _fixed(2, 4)
    idata["observed_data"] = xr.Dataset({"y": ("y_dim_0", Y)})
    fc = dlm.forecast(idata, model, steps=2, progressbar=False)
    assert set(fc.children) == {"predictions", "observed_data"}
    pred = fc["predictions"]
    np.testing.assert_array_equal(pred["chain"].values, [0, 1])
    np.testing.assert_array_equal(pred["draw"].values, np.arange(4))
    same = dlm.forecast(idata, model, steps=2, progressbar=False, extend_inferencedata=True)
    assert same is idata and "predictions" in idata.children and "posterior" in idata.children


def test_forecast_from_an_origin_has_the_dense_conditional_moments():
    """Backtesting: from origin k, y_{k+1:k+H} | y_{1:k} is the dense Gaussian conditional."""
    y = Y[:14]
    k, H = 9, 4
    fc = dlm.forecast(
        _fixed(2, 1500), _level_model(y), steps=H, origin=k, random_seed=6, progressbar=False
    )
    draws = fc["predictions"]["y"].values.reshape(-1, H)
    masked = y.copy()
    masked[k:] = np.nan
    ref = dense_filtered(*_dense(masked))
    assert _z(draws, ref.forecast_mean[k : k + H, 0], ref.forecast_cov[k : k + H, 0, 0]) < 4.5
    np.testing.assert_array_equal(fc["predictions"]["y"]["y_dim_0"].values, np.arange(k, k + H))
    with pytest.raises(ValueError, match="origin"):
        dlm.forecast(_fixed(1, 2), _level_model(y), steps=H, origin=12, progressbar=False)


def test_forecast_refuses_pm_data_set_to_future_values():
    rng = np.random.default_rng(SEED)
    with pm.Model() as model:
        Xd = pm.Data("X", rng.normal(size=(30, 1)))
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.Regression(Xd, sigma=s, m0=0.0, C0=4.0), sigma_obs=1.0, observed=Y)
    with model:
        pm.set_data({"X": rng.normal(size=(5, 1))})
    with pytest.raises(ValueError, match=r"pm.Data \['X'\] no longer hold the observed period"):
        dlm.forecast(_fixed(1, 2), model, steps=5, progressbar=False)


@pytest.mark.parametrize("run", ["forecast", "sample_states"])
def test_a_regressor_set_to_nan_gets_the_package_message(run):
    """pm.set_data accepts NaN (pm.Data refuses it only when created): the use names it."""
    rng = np.random.default_rng(SEED)
    with pm.Model() as model:
        Xd = pm.Data("X", rng.normal(size=(30, 1)))
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.Regression(Xd, sigma=s, m0=0.0, C0=4.0), sigma_obs=1.0, observed=Y)
    X = rng.normal(size=(30, 1))
    X[7, 0] = np.nan
    with model:
        pm.set_data({"X": X})
    match = r"pm.Data 'X', used in F of 'y', holds 1 missing .* only the observations can"
    with pytest.raises(ValueError, match=match):
        if run == "forecast":
            dlm.forecast(_fixed(1, 2), model, steps=5, progressbar=False)
        else:
            dlm.sample_states(_fixed(1, 2), model, progressbar=False)


# ------------------------------------------------------------------------------------------
# Messages in the user's words, at build time
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: dlm.LocalLevel(1.0, C0=-5.0), "C0 must hold finite, non-negative variances"),
        (lambda: dlm.LocalLevel(1.0, C0=np.eye(3)), r"C0 must be .* got shape \(3, 3\)"),
        (lambda: dlm.LocalLinearTrend(1.0, 1.0, m0=[1, 2, 3]), r"m0 must .* got shape \(3,\)"),
        (lambda: dlm.AR(1.2, 1.0), r"ar: C0='stationary' .* give C0='diffuse'"),
    ],
    ids=["negative C0", "C0 shape", "m0 shape", "non-stationary AR"],
)
def test_components_validate_their_prior_when_built(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_batch_declared_by_a_sigma_is_named_in_the_shape_error():
    with pm.Model():
        s = pm.HalfNormal("s", 1.0, shape=3)
        with pytest.raises(ValueError, match=r"1 batch axis\(es\) \(by a component's sigma"):
            dlm.DLM("y", dlm.LocalLevel(s), sigma_obs=1.0, observed=Y)


def test_matrices_given_by_random_variables_with_dims_only():
    """G as pm.Normal(dims=...) (no shape=): its size comes from the coords; logp as numbers."""
    G_value = np.array([[0.5, 0.1], [0.0, 0.3]])
    with pm.Model(coords={"r": [0, 1], "c": [0, 1]}) as model:
        G = pm.Normal("G", 0.0, 0.3, dims=("r", "c"))
        ss = dlm.StateSpace(F=np.ones((1, 2)), G=G, W=np.eye(2), C0=1.0, m0=0.0)
        dlm.DLM("y", ss, sigma_obs=1.0, observed=Y[:10])
    logp = model.compile_logp(vars=[model["y"]])({"G": G_value})
    one = np.eye(2)
    expected = dense_loglik(np.ones((1, 2)), G_value, one, np.eye(1), np.zeros(2), one, Y[:10])
    np.testing.assert_allclose(logp, expected, rtol=1e-10)


# ------------------------------------------------------------------------------------------
# Output you control
# ------------------------------------------------------------------------------------------


def test_sample_states_stores_only_what_is_asked():
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        ss = dlm.LocalLinearTrend(s, 0.1, m0=[M0, 0.0], C0=C0) + dlm.Seasonal(4, 0.2, C0=1.0)
        dlm.DLM("y", ss, sigma_obs=S_OBS, observed=Y)
    idata = _fixed(2, 10)
    out = dlm.sample_states(
        idata,
        model,
        store=("smoothed", "signal"),
        state_names=["level"],
        thin=3,
        random_seed=7,
        progressbar=False,
    )
    post = out["posterior"]
    assert set(post.data_vars) == {"s", "y_smoothed_state", "y_signal"}
    assert post["y_smoothed_state"]["y_state"].values.tolist() == ["level"]
    np.testing.assert_array_equal(post["draw"].values, [0, 3, 6, 9])
    full = dlm.sample_states(idata, model, random_seed=7, progressbar=False, thin=3)
    np.testing.assert_allclose(
        post["y_signal"], full["posterior"]["y_components"].sum("y_component"), rtol=1e-12
    )
    with pytest.raises(ValueError, match="store must name"):
        dlm.sample_states(idata, model, store=("paths",), progressbar=False)
    with pytest.raises(ValueError, match="state_names must name states"):
        dlm.sample_states(idata, model, state_names=["slop"], progressbar=False)
    with pytest.raises(ValueError, match="thin must be a positive integer"):
        dlm.sample_states(idata, model, thin=0, progressbar=False)


def test_full_observation_covariance_runs_the_kernels_with_exact_one_step_terms():
    """A full V is decorrelated in front of the FFBS kernels; per-step terms stay exact."""
    from pymc_dlm.postprocess.fused_states import fused_system
    from pymc_dlm.postprocess.posterior import dlm_targets

    rng = np.random.default_rng(SEED + 2)
    T = 10
    y = np.cumsum(rng.normal(size=(T, 2)), axis=0)
    y[3, 1] = np.nan
    y[6] = np.nan
    V = np.array([[1.0, 0.6], [0.6, 2.0]])
    F, G, W = np.array([[1.0, 0.0], [1.0, 1.0]]), np.eye(2), np.diag([0.3, 0.2])
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        ss = dlm.StateSpace(F, G, W * s**2 / S_LEVEL**2, m0=[0.0, 0.0], C0=2.0)
        dlm.DLM("z", ss, obs_cov=V, observed=y)
    idata = _fixed(1, 3)
    (target,) = dlm_targets(model, idata, None)
    assert fused_system(target) is not None  # the kernels, not the scans
    states = dlm.sample_states(idata, model, progressbar=False, log_likelihood=True)
    ll = states["log_likelihood"]["z"].isel(chain=0)
    assert ll.sizes[ll.dims[-1]] == T - 1  # the fully missing row is left out
    # Per step: the dense joint's log p(y_1:t) - log p(y_1:t-1) at every kept time.
    kept = [t for t in range(T) if t != 6]
    for k, t in enumerate(kept):
        upto, before = y.copy(), y.copy()
        upto[t + 1 :] = np.nan
        before[t:] = np.nan
        term = dense_loglik(F, G, W, V, np.zeros(2), 2.0 * np.eye(2), upto) - dense_loglik(
            F, G, W, V, np.zeros(2), 2.0 * np.eye(2), before
        )
        np.testing.assert_allclose(ll.values[:, k], term, rtol=1e-9)


def test_one_step_replicates_with_a_rectangular_initial_factor():
    """C0 given as C0_sqrt (n, k) with k < n: theta_0 is drawn through that factor."""
    L0 = np.array([[1.0], [0.5]])
    F, G, W = np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 0.8]]), np.diag([0.2, 0.1])
    y = Y[:6]
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        ss = dlm.StateSpace(F, G, W * s**2 / S_LEVEL**2, m0=[1.0, 0.0], C0_sqrt=L0)
        dlm.DLM("y", ss, sigma_obs=S_OBS, observed=y)
    pp = dlm.posterior_predictive(
        _fixed(2, 1500), model, kind="one_step", random_seed=8, progressbar=False
    )
    draws = pp["posterior_predictive"]["y"].values.reshape(-1, 6)
    ref = dense_filtered(F, G, W, S_OBS**2 * np.eye(1), [1.0, 0.0], L0 @ L0.T, y)
    assert _z(draws, ref.forecast_mean[:, 0], ref.forecast_cov[:, 0, 0]) < 4.5
