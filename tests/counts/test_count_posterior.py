"""sample_states, forecast and importance_correct for a DLM with a non-Gaussian family.

Witness: a level with no noise (every eta_t is one Gaussian theta), for which the exact
posterior of theta given y, its mean, the forecast mean E[exp(theta) | y] and the exact
log-likelihood are one-dimensional integrals (``tests.support.count_oracles``, scipy's
``quad``). The "posterior" of the static parameters is held at fixed values
(``tests.support.fixed_posterior``) or spread over a grid, so that the Monte Carlo draws of
the functions under test are draws from a known distribution; agreement within 4 standard
errors. Nothing is stored.
"""

import numpy as np
import pymc as pm
import pytest
import scipy.special
import xarray as xr

import pymc_dlm as dlm
from tests.support import count_oracles as C
from tests.support.fixed_posterior import fixed_posterior

Y = np.array([3.0, 5.0, 2.0, np.nan, 4.0, 6.0, 1.0, 3.0])
C0 = 0.5


def _tree(values, n_chain, n_draw):
    tree = xr.DataTree()
    tree["posterior"] = fixed_posterior(values, n_chain, n_draw)
    return tree


@pytest.fixture(scope="module")
def poisson_level():
    with pm.Model() as model:
        m0 = pm.Normal("m0", 1.0, 1.0)
        dlm.DLM("y", dlm.LocalLevel(0.0, m0=m0, C0=C0), family="poisson", observed=Y)
    return model


def test_state_draws_and_forecasts_match_the_exact_posterior(poisson_level):
    n_chain, n_draw = 2, 600
    idata = _tree({"m0": 1.0}, n_chain, n_draw)
    out = dlm.sample_states(idata, poisson_level, random_seed=1, progressbar=False,
                            n_importance=40)  # fmt: skip
    theta = out.posterior["y_smoothed_state"].values[..., 0]  # (chain, draw, T)
    assert np.allclose(theta, theta[..., :1])  # no noise: one theta per path
    draws = theta[..., 0].ravel()
    exact = C.static_level_posterior_mean("poisson", Y, 1.0, C0, lambda t: t)
    se = draws.std() / np.sqrt(draws.size)
    assert abs(draws.mean() - exact) < 4 * se
    ess = out.posterior["y_importance_ess"].values
    assert np.all((ess > 1) & (ess <= 40))

    fc = dlm.forecast(idata, poisson_level, steps=2, random_seed=2, progressbar=False,
                      n_importance=40)  # fmt: skip
    counts = fc.predictions["y"].values.reshape(-1, 2)
    expected = C.static_level_posterior_mean("poisson", Y, 1.0, C0, np.exp)
    se = counts.std(axis=0) / np.sqrt(counts.shape[0])
    assert np.all(np.abs(counts.mean(axis=0) - expected) < 4 * se)
    assert np.all(counts == np.round(counts)) and counts.min() >= 0


def test_importance_correct_estimates_the_exact_likelihood_ratio(poisson_level):
    grid = np.linspace(0.0, 2.0, 5)
    tree = xr.DataTree()
    tree["posterior"] = xr.Dataset(
        {"m0": (("chain", "draw"), grid[None, :])},
        coords={"chain": [0], "draw": np.arange(grid.size)},
    )
    out = dlm.importance_correct(tree, poisson_level, n_importance=2000, random_seed=3,
                                 progressbar=False)  # fmt: skip
    group = out["importance"]
    for k, m0 in enumerate(grid):
        exact = C.static_level_loglik("poisson", Y, m0, C0)
        laplace = float(dlm.kalman_filter(dlm.LocalLevel(0.0, m0=m0, C0=C0), Y,
                                          family="poisson").loglik)  # fmt: skip
        assert abs(float(group["loglik_laplace"][0, k]) - laplace) < 1e-9
        se = float(group["loglik_importance_se"][0, k])
        assert abs(float(group["loglik_importance"][0, k]) - exact) < 4 * se
        assert abs(float(group["log_ratio"][0, k]) - (exact - laplace)) < 4 * se
    weights = np.exp(group["log_weight"].values)
    assert abs(weights.sum() - 1.0) < 1e-12
    assert "pareto_k" in group.attrs


def test_importance_correct_refuses_gaussian_models():
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s, m0=0.0, C0=1.0), sigma_obs=1.0, observed=Y)
    tree = _tree({"s": 0.5}, 1, 4)
    with pytest.raises(ValueError, match="non-Gaussian family"):
        dlm.importance_correct(tree, model, progressbar=False)


def test_state_draws_are_the_exact_posterior_not_the_approximation():
    """Resampling by the weights moves the draws from the approximation to the exact posterior.

    Sparse binary data: the exact posterior mean of theta is 9 standard errors (of 1200
    draws) from the approximating model's.
    """
    y = np.array([1.0, 0, 0, 0, 0, 0, 0, 0, np.nan])
    with pm.Model() as model:
        m0 = pm.Normal("m0", 0.0, 1.0)
        dlm.DLM("y", dlm.LocalLevel(0.0, m0=m0, C0=9.0), family="bernoulli", observed=y)
    out = dlm.sample_states(_tree({"m0": 0.0}, 2, 600), model, random_seed=5,
                            progressbar=False, n_importance=100)  # fmt: skip
    draws = out.posterior["y_smoothed_state"].values[..., 0, 0].ravel()
    exact = C.static_level_posterior_mean("bernoulli", y, 0.0, 9.0, lambda t: t, 1.0)
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(draws.size)


def test_smoothed_replicates_match_the_exact_posterior_predictive(poisson_level):
    """E[y_rep_t | y] = E[exp(theta) | y] at every t (one theta), by quadrature."""
    idata = _tree({"m0": 1.0}, 2, 600)
    out = dlm.posterior_predictive(idata, poisson_level, random_seed=6, progressbar=False,
                                   n_importance=40)  # fmt: skip
    reps = out.posterior_predictive["y"].values.reshape(-1, Y.size)
    expected = C.static_level_posterior_mean("poisson", Y, 1.0, C0, np.exp)
    se = reps.std(axis=0) / np.sqrt(reps.shape[0])
    assert np.all(np.abs(reps.mean(axis=0) - expected) < 4.5 * se)
    assert np.isnan(out.observed_data["y"].values[3])
    with pytest.raises(NotImplementedError, match="smoothed"):
        dlm.posterior_predictive(idata, poisson_level, kind="one_step", progressbar=False)


def test_family_keyword_of_post_processing_must_match_the_model(poisson_level):
    idata = _tree({"m0": 1.0}, 1, 4)
    out = dlm.sample_states(idata, poisson_level, family="poisson", progressbar=False,
                            n_importance=4)  # fmt: skip
    assert "y_smoothed_state" in out.posterior
    with pytest.raises(ValueError, match="family"):
        dlm.forecast(idata, poisson_level, steps=2, family="bernoulli", progressbar=False)


def test_importance_correct_with_too_few_draws_for_psis(poisson_level):
    out = dlm.importance_correct(_tree({"m0": 1.0}, 1, 2), poisson_level, n_importance=4,
                                 random_seed=1, progressbar=False)  # fmt: skip
    assert np.isnan(out["importance"].attrs["pareto_k"])
    assert abs(np.exp(out["importance"]["log_weight"].values).sum() - 1.0) < 1e-12


def test_forecast_from_an_origin_inside_the_data():
    """From origin k: E[y_{k+h} | y_{1:k}] = E[exp(theta) | y_{1:k}] (one theta), by quadrature.

    The counts after the origin are much larger than before it: a forecast that saw them
    would be far off.
    """
    origin, y = 5, np.concatenate([Y[:5], [12.0, 15.0, 13.0]])
    with pm.Model() as model:
        m0 = pm.Normal("m0", 1.0, 1.0)
        dlm.DLM("y", dlm.LocalLevel(0.0, m0=m0, C0=C0), family="poisson", observed=y)
    idata = _tree({"m0": 1.0}, 2, 600)
    fc = dlm.forecast(idata, model, steps=2, origin=origin, random_seed=8, progressbar=False,
                      n_importance=40)  # fmt: skip
    counts = fc.predictions["y"].values.reshape(-1, 2)
    theta = fc.predictions["y_forecast_state"].values[..., 0].reshape(-1, 2)
    exact = C.static_level_posterior_mean("poisson", y[:origin], 1.0, C0, np.exp)
    whole = C.static_level_posterior_mean("poisson", y, 1.0, C0, np.exp)
    se = counts.std(axis=0) / np.sqrt(counts.shape[0])
    assert np.all(np.abs(counts.mean(axis=0) - exact) < 4 * se)
    assert abs(exact - whole) > 10 * se.max()
    mean_theta = C.static_level_posterior_mean("poisson", y[:origin], 1.0, C0, lambda t: t)
    assert abs(theta.mean() - mean_theta) < 4 * theta[:, 0].std() / np.sqrt(theta.shape[0])
    assert list(fc.predictions["y"].coords["y_dim_0"].values) == [5, 6]


def _regression_model(x, exposure, y):
    with pm.Model() as model:
        m0 = pm.Normal("m0", 0.5, 1.0)
        x_data = pm.Data("x", x)
        offset = pm.Data("exposure", exposure)
        dlm.DLM("y", dlm.Regression(x_data[:, None], sigma=0.0, m0=m0, C0=C0),
                family="poisson", offset=offset, observed=y)  # fmt: skip
    return model


def test_forecast_with_future_regressors_and_offset():
    """eta_t = x_t beta + o_t with one static beta: E[y_{T+h}] = E[exp(x beta + o) | y]."""
    x = np.array([1.0, 0.5, 2.0, 1.5, 0.2, 1.0, 1.2, 0.8])
    exposure = np.log(np.array([2.0, 3.0, 1.0, 2.0, 4.0, 2.0, 1.0, 3.0]))
    model = _regression_model(x, exposure, Y)
    idata = _tree({"m0": 0.5}, 2, 600)
    x_new, o_new = np.array([0.3, 2.5]), np.log(np.array([5.0, 0.5]))
    fc = dlm.forecast(idata, model, steps=2, random_seed=9, progressbar=False, n_importance=40,
                      new_data={"x": x_new, "exposure": o_new})  # fmt: skip
    counts = fc.predictions["y"].values.reshape(-1, 2)
    for h in range(2):
        exact = C.static_level_posterior_mean(
            "poisson", Y, 0.5, C0, lambda b, h=h: np.exp(x_new[h] * b + o_new[h]),
            x=x, offset=exposure,
        )  # fmt: skip
        se = counts[:, h].std() / np.sqrt(counts.shape[0])
        assert abs(counts[:, h].mean() - exact) < 4 * se
    with pytest.raises(ValueError, match="exposure"):
        dlm.forecast(idata, model, steps=2, progressbar=False, new_data={"x": x_new})
    with pytest.raises(ValueError, match="new_data"):
        dlm.forecast(idata, model, steps=2, progressbar=False)


def test_forecast_needs_the_future_of_an_offset_given_as_an_array():
    with pm.Model() as model:
        m0 = pm.Normal("m0", 0.5, 1.0)
        dlm.DLM("y", dlm.LocalLevel(0.0, m0=m0, C0=C0), family="poisson",
                offset=np.linspace(0.0, 1.0, Y.size), observed=Y)  # fmt: skip
    with pytest.raises(ValueError, match="offset is time-varying.*pm.Data"):
        dlm.forecast(_tree({"m0": 0.5}, 1, 2), model, steps=2, progressbar=False)


def test_forecast_with_future_trials():
    """Binomial(n) with n from pm.Data: E[y_{T+h}] = n_{T+h} E[expit(theta) | y]."""
    n = np.array([10.0, 12.0, 8.0, 10.0, 9.0, 11.0, 10.0, 7.0])
    y = np.array([4.0, 6.0, 2.0, np.nan, 5.0, 5.0, 3.0, 2.0])
    with pm.Model() as model:
        m0 = pm.Normal("m0", 0.0, 1.0)
        trials = pm.Data("trials", n)
        dlm.DLM("y", dlm.LocalLevel(0.0, m0=m0, C0=C0), family=dlm.Binomial(trials),
                observed=y)  # fmt: skip
    idata = _tree({"m0": 0.0}, 2, 600)
    n_new = np.array([30.0, 3.0])
    fc = dlm.forecast(idata, model, steps=2, random_seed=10, progressbar=False,
                      n_importance=40, new_data={"trials": n_new})  # fmt: skip
    counts = fc.predictions["y"].values.reshape(-1, 2)
    p = C.static_level_posterior_mean("binomial", y, 0.0, C0, scipy.special.expit, n)
    assert counts[:, 1].max() <= 3
    se = counts.std(axis=0) / np.sqrt(counts.shape[0])
    assert np.all(np.abs(counts.mean(axis=0) - n_new * p) < 4 * se)
