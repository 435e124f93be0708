"""The Bayesian workflow around the likelihood: data shapes, predictive checks, refusals.

Witnesses: the dense joint Gaussian of ``tests/oracles.py`` (log-likelihoods, the smoothed and
one-step predictive moments), Monte Carlo standard errors for replicate moments, and the
binomial distribution for interval coverage. Posteriors are held at fixed values
(``tests/fixed_posterior.py``), so replicates are draws from known Gaussians.
"""

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from tests.fixed_posterior import fixed_posterior
from tests.oracles import dense_filtered, dense_loglik, dense_smoothed

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
    """log HalfNormal(s | 1) + log s (the log-transform's Jacobian)."""
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
    with pm.Model() as model:
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
    pp = dlm.posterior_predictive(_fixed(), model, kind="one_step", random_seed=3, progressbar=False)
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
