r"""``posterior_predictive`` and ``posterior_residuals`` of discounted models, at fixed values.

A posterior whose 3000 draws all hold one value (``fixed_posterior``) turns the replicates
into draws of known distributions:

* ``kind="one_step"`` with a learned variance and a variance discount of 0.9: y^rep_t is
  Student-t with δ_V n_{t-1} degrees of freedom, location f_t and squared scale Q_t of West &
  Harrison's recursion written out (``wh_moments``). Checked: the mean within 4 standard
  errors, the variance Q_t ν/(ν-2) within 4 standard errors of the sample variance of a t
  (whose fourth moment is finite for ν > 4) at every time, and the fraction beyond the t's
  99% quantile pooled over the T independent one-step draws (binomial), where a Gaussian of
  the same variance would be more than 8 s.e. away.
* ``kind="smoothed"`` with a known V: y^rep = F θ + v with θ | y Gaussian, so y^rep_t | y is
  N(F E[θ_t|y], F Cov(θ_t|y) F' + V) from the dense conditional of the joint Gaussian
  (``dense_states``).
* ``forecast(origin=9)`` with a known V: the filter on y_1..y_9, then West & Harrison's held
  W from there (``forecast_moments``): means, variances and a covariance across steps;
* residuals: deterministic at fixed values, equal to Φ⁻¹(T_ν((y_t - f_t)/√Q_t)) of the same
  recursion (scipy's distributions) to 1e-9; NaN at the missing value.

Altered on purpose (checked 2026-12-05), each fails its test: one-step replicates drawn
Gaussian with the t's variance (the pooled tails, by 11 s.e.), the smoothed replicates without
the observation noise (the variance), the residuals without the Student-t mapping, and the
forecast filtered on one observation past its origin (the mean, by 35 s.e.).
"""

import numpy as np
import pymc as pm
import pytest
import scipy.stats
import xarray as xr

import pymc_dlm as dlm
from tests.support.discount_cases import M0_SEAS, T, series
from tests.support.discount_oracles import (
    combine,
    covariance_recursion,
    dense_states,
    forecast_moments,
    general_block,
    poly_block,
    seasonal_block,
    wh_moments,
)
from tests.support.fixed_posterior import fixed_posterior

DRAWS = 3000
K = 4.0
N0, S0, DV = 10.0, 3.0, 0.9
V = 1.2**2
MISSING = (5,)


def _package():
    return dlm.LocalLevel(discount=0.8, m0=10.0, C0=4.0) + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0)


def _oracle():
    return combine(
        poly_block(1, delta=0.8, m0=10.0, C0=4.0), seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0)
    )


def _fit(learned):
    y = series(71, MISSING)
    with pm.Model() as model:
        pm.Normal("unused", 0.0, 1.0)
        obs = (
            {"obs_var": dlm.LearnedVariance(N0, S0, discount=DV)}
            if learned
            else {"sigma_obs": V**0.5}
        )
        dlm.DLM("y", _package(), observed=y, **obs)
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"unused": 0.0}, 1, DRAWS)})
    return model, idata, y


@pytest.fixture(scope="module")
def learned():
    return _fit(True)


@pytest.fixture(scope="module")
def known():
    return _fit(False)


def test_one_step_replicates_of_a_learned_variance_are_student_t(learned):
    model, idata, y = learned
    out = dlm.posterior_predictive(idata, model, kind="one_step", random_seed=3,
                                   progressbar=False)  # fmt: skip
    rep = out["posterior_predictive"]["y"].values[0]
    assert rep.shape == (DRAWS, T)
    wh = wh_moments(_oracle(), y, n0=N0, S0=S0, delta_v=DV)
    loc, scale2, nu = wh["forecast_mean"], wh["forecast_cov"], wh["forecast_dof"]
    assert np.all(nu > 4.0)
    var = scale2 * nu / (nu - 2.0)
    kurt = 3.0 + 6.0 / (nu - 4.0)  # the t's excess kurtosis is 6/(nu - 4)
    for t in range(T):
        x = rep[:, t]
        assert abs(x.mean() - loc[t]) < K * np.sqrt(var[t] / DRAWS), t
        assert abs(x.var() - var[t]) < K * var[t] * np.sqrt((kurt[t] - 1.0) / DRAWS), t
    # Tails, pooled over the T independent one-step draws: beyond the t's 99% quantile.
    c = scipy.stats.t.ppf(0.995, nu)
    frac = np.mean(np.abs(rep - loc) / np.sqrt(scale2) > c)
    se = np.sqrt(0.01 * 0.99 / (DRAWS * T))
    assert abs(frac - 0.01) < K * se
    gauss = np.mean(2.0 * scipy.stats.norm.sf(c * np.sqrt(scale2 / var)))
    assert abs(gauss - 0.01) > 2 * K * se  # a Gaussian of the same variance would fail
    obs = out["observed_data"]["y"].values
    np.testing.assert_array_equal(np.isnan(obs), np.isnan(y))


def test_smoothed_replicates_of_a_known_variance_are_the_dense_conditional(known):
    model, idata, y = known
    out = dlm.posterior_predictive(idata, model, kind="smoothed", random_seed=4,
                                   progressbar=False)  # fmt: skip
    rep = out["posterior_predictive"]["y"].values[0]
    system = _oracle()
    mean, cov, _, _ = dense_states(system, covariance_recursion(system, V, ~np.isnan(y)), V, y)
    n = mean.shape[1]
    for t in (0, 5, T - 1):
        F = system.F[t]
        loc = F @ mean[t]
        var = F @ cov[t * n : (t + 1) * n, t * n : (t + 1) * n] @ F + V
        x = rep[:, t]
        assert abs(x.mean() - loc) < K * np.sqrt(var / DRAWS), t
        assert abs(x.var() - var) < K * var * np.sqrt(2.0 / DRAWS), t


def test_posterior_residuals_of_a_learned_variance_are_normal_quantiles(learned):
    model, idata, y = learned
    z = dlm.posterior_residuals(idata, model, progressbar=False)["y"].values[0]
    wh = wh_moments(_oracle(), y, n0=N0, S0=S0, delta_v=DV)
    e = (y - wh["forecast_mean"]) / np.sqrt(wh["forecast_cov"])
    expected = scipy.stats.norm.ppf(scipy.stats.t.cdf(e, wh["forecast_dof"]))
    assert np.all(np.isnan(z[:, list(MISSING)]))
    np.testing.assert_allclose(z, np.broadcast_to(expected, z.shape), rtol=1e-9, atol=1e-9)


def _assert_forecast_moments(draws, mean, cov):
    """Each step's mean and variance, and the first and last steps' covariance, within K s.e."""
    for k in range(draws.shape[1]):
        x = draws[:, k]
        assert abs(x.mean() - mean[k]) < K * np.sqrt(cov[k, k] / DRAWS), k
        assert abs(x.var() - cov[k, k]) < K * cov[k, k] * np.sqrt(2.0 / DRAWS), k
    c = np.cov(draws.T)
    assert abs(c[0, 2] - cov[0, 2]) < K * np.sqrt((cov[0, 0] * cov[2, 2] + cov[0, 2] ** 2) / DRAWS)


def test_forecast_from_an_origin_inside_the_sample_follows_west_harrison(known):
    """Origin 9, H = 3 (known V): the filter on y_1..y_9, then W_{9+k} = W_10 held."""
    model, idata, y = known
    origin, H = 9, 3
    out = dlm.forecast(idata, model, steps=H, origin=origin, random_seed=5, progressbar=False)
    draws = out["predictions"]["y"].values[0]
    system = _oracle()
    wh = wh_moments(system, y[:origin], V=V)
    mean, cov = forecast_moments(system, wh["filtered_mean"][-1], wh["filtered_cov"][-1], V, H)
    _assert_forecast_moments(draws, mean, cov)


FUTURE_W = np.array([0.01, 0.25, 1.0])


def test_forecast_with_a_time_varying_sigma_block_takes_its_future_w():
    """A discounted level next to an AR(1) block whose W varies over time (``pm.Data``).

    The AR block's W is 0.09 in the sample and, through ``new_data``, 0.01, 0.25 and 1.0 at
    the three future steps; the discounted level's W is held at its value from C_T. The
    oracle: West & Harrison's filter on the sample, then the dense linear map of
    ``forecast_moments`` with those W per step. Forecasting with the in-sample W (0.09) at
    every future step fails (step 3, the variance by 12 s.e.).
    """
    y = series(73, MISSING)
    with pm.Model() as model:
        pm.Normal("unused", 0.0, 1.0)
        w = pm.Data("w", np.full((T, 1, 1), 0.09))
        ar = dlm.StateSpace([[1.0]], [[0.7]], W=w, time_varying="W", m0=[0.0], C0=1.0)
        level = dlm.LocalLevel(discount=0.8, m0=10.0, C0=4.0)
        dlm.DLM("y", level + ar, sigma_obs=V**0.5, observed=y)
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"unused": 0.0}, 1, DRAWS)})
    H = len(FUTURE_W)
    out = dlm.forecast(
        idata, model, steps=H, new_data={"w": FUTURE_W.reshape(H, 1, 1)}, random_seed=7,
        progressbar=False,
    )  # fmt: skip
    draws = out["predictions"]["y"].values[0]
    system = combine(
        poly_block(1, delta=0.8, m0=10.0, C0=4.0),
        general_block([1.0], [[0.7]], W=[[0.09]], m0=0.0, C0=1.0),
    )
    wh = wh_moments(system, y, V=V)
    future = [np.diag([0.0, w_k]) for w_k in FUTURE_W]
    mean, cov = forecast_moments(
        system, wh["filtered_mean"][-1], wh["filtered_cov"][-1], V, H, future_W=future
    )
    _assert_forecast_moments(draws, mean, cov)
