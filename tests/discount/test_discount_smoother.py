r"""``kalman_smoother`` on discounted models against dense conditionals of the joint Gaussian.

Given the parameters, the discount's W_t are fixed numbers (``covariance_recursion``, or the
60-digit κ-filter's finite part for diffuse states), so (θ_{1:T}, y) is jointly Gaussian and
``dense_states`` conditions it on the observed y with dense solves, no filter or smoother:

* known V, proper prior, two missing values: E[θ_t | y] and Cov(θ_t | y) to 1e-9;
* a learned static variance: θ_{1:T} | y is multivariate t with n_T degrees of freedom,
  location the Gaussian conditional mean and scale (S_T/S0) times its covariance
  (``static_t_states``, derived there);
* diffuse states (``C0="diffuse"``): the κ → ∞ limit of the proper prior κI on the diffuse
  states, extrapolated from κ = 1e5 and 1e6 (Richardson: the conditional moments are
  r∞ + c/κ + O(κ⁻²)); the extrapolations from (1e4, 1e5) and (1e5, 1e6) agree to 1e-7, the
  tolerance used.

Altered on purpose (measured 2026-12-05): δ + 0.01 in the package's model puts the smoothed
moments off by 0.02 to 0.3 in every case; the learned case's scale at S0 instead of S_T by
1.6; the diffuse case with no noise on the level (``LocalLevel(0.0)``) by 1.0.
"""

import numpy as np
import pytest

import pymc_dlm as dlm
from tests.support.discount_cases import MISSING, TREND_SEASONAL_REGRESSION, T, series
from tests.support.discount_oracles import (
    combine,
    covariance_recursion,
    dense_states,
    kappa_filter,
    poly_block,
    seasonal_block,
    static_t_states,
)

V = 1.3**2
N0, S0 = 5.0, 2.0


def _blocks(cov, n):
    """The (T, n, n) diagonal blocks of a (T·n, T·n) covariance."""
    return np.array([cov[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(T)])


def _assert_close(got, expected, tol, label):
    err = np.max(np.abs(got - expected))
    assert err <= tol * max(1.0, np.max(np.abs(expected))), f"{label}: off by {err:.3g}"


def test_known_v_smoother_equals_the_dense_gaussian_conditional():
    y = series(46, MISSING)
    ref = TREND_SEASONAL_REGRESSION.oracle()
    mean, cov, _, _ = dense_states(ref, covariance_recursion(ref, V, ~np.isnan(y)), V, y)
    ds = dlm.kalman_smoother(TREND_SEASONAL_REGRESSION.package(), y, sigma_obs=V**0.5)
    n = mean.shape[1]
    assert ds["smoothed_mean"].dims == ("time", "state")
    assert ds["smoothed_cov"].dims == ("time", "state", "state2")
    _assert_close(ds["smoothed_mean"].values, mean, 1e-9, "smoothed_mean")
    _assert_close(ds["smoothed_cov"].values, _blocks(cov, n), 1e-9, "smoothed_cov")
    # the filter's moments are those of kalman_filter
    filt = dlm.kalman_filter(TREND_SEASONAL_REGRESSION.package(), y, sigma_obs=V**0.5)
    np.testing.assert_array_equal(ds["filtered_cov"].values, filt["filtered_cov"].values)


def test_learned_static_variance_smoother_is_the_multivariate_t_conditional():
    y = series(47, MISSING)
    ref = TREND_SEASONAL_REGRESSION.oracle()
    loc, scale, nu, S_T = static_t_states(ref, y, N0, S0)
    obs_var = dlm.LearnedVariance(N0, S0)
    ds = dlm.kalman_smoother(TREND_SEASONAL_REGRESSION.package(), y, obs_var=obs_var)
    assert float(ds["dof"][-1]) == nu
    assert float(ds["scale"][-1]) == pytest.approx(S_T, rel=1e-12)
    _assert_close(ds["smoothed_mean"].values, loc, 1e-9, "smoothed_mean")
    _assert_close(ds["smoothed_cov"].values, _blocks(scale, loc.shape[1]), 1e-9, "smoothed_cov")


def _dense_at(system, Ws, y, kappa):
    prior = system._replace(C0=system.C0 + kappa * np.diag(system.diffuse.astype(float)))
    mean, cov, _, _ = dense_states(prior, Ws, V, y)
    return mean, _blocks(cov, mean.shape[1])


def _richardson(system, Ws, y, k1, k2):
    (m1, c1), (m2, c2) = _dense_at(system, Ws, y, k1), _dense_at(system, Ws, y, k2)
    return (k2 * m2 - k1 * m1) / (k2 - k1), (k2 * c2 - k1 * c1) / (k2 - k1)


def test_diffuse_smoother_equals_the_proper_prior_limit():
    y = series(48, (0, 8))
    system = combine(poly_block(1, delta=0.8), seasonal_block(4, sigma=0.3))
    _, Ws = kappa_filter(system, V, y)
    mean, cov = _richardson(system, Ws, y, 1e5, 1e6)
    mean_lo, cov_lo = _richardson(system, Ws, y, 1e4, 1e5)
    _assert_close(mean_lo, mean, 1e-7, "oracle mean")
    _assert_close(cov_lo, cov, 1e-7, "oracle cov")
    model = dlm.LocalLevel(discount=0.8) + dlm.Seasonal(4, 0.3)
    ds = dlm.kalman_smoother(model, y, sigma_obs=V**0.5)
    _assert_close(ds["smoothed_mean"].values, mean, 1e-7, "smoothed_mean")
    _assert_close(ds["smoothed_cov"].values, cov, 1e-7, "smoothed_cov")


def test_variance_discount_smoother_is_the_unit_scale_smoother_at_smoothed_scales():
    """δ_V = 0.9: the means do not depend on the variance; covariances at S_t(T)."""
    y = series(49, MISSING)
    ref = TREND_SEASONAL_REGRESSION.oracle()
    loc, scale, nu, S_T = static_t_states(ref, y, N0, S0)  # loc: the unit-scale mean
    unit = scale / (S_T / S0) / S0  # the conditional covariance at V = 1
    obs_var = dlm.LearnedVariance(N0, S0, discount=0.9)
    ds = dlm.kalman_smoother(TREND_SEASONAL_REGRESSION.package(), y, obs_var=obs_var)
    _assert_close(ds["smoothed_mean"].values, loc, 1e-9, "smoothed_mean")
    S = ds["smoothed_scale"].values
    _assert_close(ds["smoothed_cov"].values / S[:, None, None], _blocks(unit, loc.shape[1]),
                  1e-9, "smoothed_cov / smoothed_scale")  # fmt: skip
    assert S[-1] == pytest.approx(float(ds["scale"][-1]), rel=1e-14)
    np.testing.assert_allclose(ds["smoothed_cov"].values[-1], ds["filtered_cov"].values[-1],
                               rtol=1e-9)  # fmt: skip
    # S_t(T) = 1 / E[phi_t | y], E[phi_t] = 0.9 E[phi_t+1] + 0.1 / S_t (the backward draw's mean)
    E = 1.0 / ds["scale"].values
    for t in range(len(y) - 2, -1, -1):
        E[t] = 0.9 * E[t + 1] + 0.1 * E[t]
    np.testing.assert_allclose(S, 1.0 / E, rtol=1e-12)
