"""The discount oracles checked against each other and against the package's trusted API.

Before any oracle witnesses the discounted models, it is checked here: oracle 1 (dense
Gaussian, W_t from the covariance recursion) against a sequential filter, the 60-digit
κ-filter and a recursion written out by hand; oracle 2 (multivariate t) against a quadrature
over the precision; oracle 3 (West & Harrison's recursion) against oracles 2 and 1; oracles 5a
and 5b (κ → ∞ limits) against their closed forms. With no discounted block, oracles 1 and 5a
are checked against the package's existing ``sigma``/``sigma_obs`` log-likelihood, the only
calls of pymc_dlm in this file. The oracles are in ``tests.support.discount_oracles``.
"""

import numpy as np
import pytest

import pymc_dlm as dlm
from tests.support.discount_cases import (
    KNOWN_V_CASES,
    LEVEL,
    M0_REG,
    M0_SEAS,
    MISSING,
    TREND_SEASONAL_REGRESSION,
    TREND_SEASONAL_SIGMA,
    X_REG,
    T,
    assert_loglik,
    package_logp,
    series,
)
from tests.support.discount_oracles import (
    combine,
    covariance_recursion,
    dense_moments,
    diffuse_gaussian_closed_form,
    diffuse_limit_from_kappa,
    diffuse_student_by_quadrature,
    diffuse_student_closed_form,
    diffuse_student_moments,
    kappa_filter,
    known_v_loglik,
    poly_block,
    regression_block,
    seasonal_block,
    sequential_gaussian_loglik,
    static_t_by_quadrature,
    static_t_loglik,
    wh_loglik,
)


def test_dense_oracle_equals_existing_sigma_api():
    """With no discounted block, oracle 1 is the existing, trusted log-likelihood."""
    model = (
        dlm.LocalLinearTrend(0.5, 0.1, m0=[10.0, 0.2], C0=[4.0, 1.0])
        + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0)
        + dlm.Regression(X_REG, sigma=[0.1, 0.05], m0=M0_REG, C0=[1.0, 0.5])
    )
    ref = combine(
        poly_block(2, sigma=[0.5, 0.1], m0=[10.0, 0.2], C0=[4.0, 1.0]),
        seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0),
        regression_block(X_REG, sigma=[0.1, 0.05], m0=M0_REG, C0=[1.0, 0.5]),
    )
    ys = [series(1), series(1, MISSING)]
    got = package_logp(model, ys, sigma_obs=1.3)
    for y, g in zip(ys, got):
        assert_loglik(g, known_v_loglik(ref, 1.3**2, y), 1e-10)


def test_kappa_filter_equals_existing_diffuse_api():
    """With no discounted block, oracle 5a's κ-limit is the existing exact diffuse value.

    This pins the convention loglik_diffuse = lim loglik(κ) + (d/2) log κ.
    """
    model = dlm.LocalLinearTrend(0.5, 0.1) + dlm.Seasonal(4, 0.3)
    ref = combine(poly_block(2, sigma=[0.5, 0.1]), seasonal_block(4, sigma=0.3))
    ys = [series(2), series(2, (2, 8))]
    got = package_logp(model, ys, sigma_obs=1.3)
    for y, g in zip(ys, got):
        value, gap, _ = diffuse_limit_from_kappa(ref, 1.3**2, y)
        assert abs(gap) < 1e-20  # κ1 = 1e25 and κ2 = 1e30 agree: the limit is reached
        assert_loglik(g, value, 1e-9)


@pytest.mark.parametrize("case", list(KNOWN_V_CASES))
def test_oracle1_dense_equals_sequential_filter(case):
    """Oracle 1 (recursion for W_t, then dense Gaussian) against two filters.

    A sequential float64 Kalman filter with the discount computed inline, and the 60-digit
    κ-filter (proper prior: no κ enters).
    """
    ref = KNOWN_V_CASES[case].oracle()
    for y in (series(3), series(3, MISSING)):
        dense = known_v_loglik(ref, 1.69, y)
        assert_loglik(sequential_gaussian_loglik(ref, 1.69, y), dense, 1e-12)
        lls, Ws = kappa_filter(ref, 1.69, y)
        assert_loglik(float(lls[1]), dense, 1e-12)
        np.testing.assert_allclose(Ws, covariance_recursion(ref, 1.69, ~np.isnan(y)), atol=1e-13)
        # teeth: the discount changes the log-likelihood (W_t is not zero)
        no_noise = ref._replace(discounts=tuple((b, 1.0) for b, _ in ref.discounts))
        assert abs(known_v_loglik(no_noise, 1.69, y) - dense) > 1e-3


def test_oracle1_local_level_recursion_written_out():
    """Local level, G = 1: R_t = C_{t-1}/δ, C_t = R_t V/(R_t + V) (C_t = R_t when missing)."""
    ref = combine(poly_block(1, delta=0.9, m0=10.0, C0=4.0))
    observed = ~np.isnan(series(4, MISSING))
    Ws = covariance_recursion(ref, 1.69, observed)
    C, expected = 4.0, []
    for obs in observed:
        expected.append((1 / 0.9 - 1) * C)
        R = C / 0.9
        C = R * 1.69 / (R + 1.69) if obs else R
    np.testing.assert_allclose(Ws[:, 0, 0], expected, rtol=1e-14)


def test_oracle2_multivariate_t_equals_integral_over_precision():
    """Oracle 2 (scipy's multivariate t) against ∫ N(y; μ, Σ/(S0 φ)) p(φ) dφ by quad."""
    for case in (LEVEL, TREND_SEASONAL_SIGMA, TREND_SEASONAL_REGRESSION):
        ref = case.oracle()
        for y in (series(5), series(5, MISSING)):
            for n0, S0 in ((5.0, 2.0), (1.5, 0.7)):
                assert_loglik(
                    static_t_by_quadrature(ref, y, n0, S0), static_t_loglik(ref, y, n0, S0), 1e-11
                )


def test_oracle3_static_equals_oracle2_and_large_n0_equals_oracle1():
    """Oracle 3 against oracles 2 and 1.

    With δ_V = 1, W&H's recursion is the multivariate t (oracle 2); as n0 → ∞ with S0 = V it
    tends to the Gaussian (oracle 1), error O(1/n0) plus lgamma's rounding (see
    ``test_large_n0_tends_to_the_known_variance``).
    """
    for case in (LEVEL, TREND_SEASONAL_SIGMA, TREND_SEASONAL_REGRESSION):
        ref = case.oracle()
        for y in (series(6), series(6, MISSING)):
            assert_loglik(wh_loglik(ref, y, 5.0, 2.0, 1.0), static_t_loglik(ref, y, 5.0, 2.0))
            assert_loglik(wh_loglik(ref, y, 1e8, 1.69, 1.0), known_v_loglik(ref, 1.69, y), 1e-6)
            # teeth: the variance discount changes the value
            assert abs(wh_loglik(ref, y, 5.0, 2.0, 0.9) - wh_loglik(ref, y, 5.0, 2.0, 1.0)) > 1e-3


def test_oracle5a_kappa_limit_equals_closed_form():
    """The κ-filter's limit against the closed form of lim κ^{d/2} N(y; μ, κXX' + Σ)."""
    for ref in (
        combine(poly_block(1, delta=0.9)),
        combine(poly_block(2, delta=0.95), seasonal_block(4, sigma=0.3)),
        combine(poly_block(2, delta=0.95), seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0)),
    ):
        for y in (series(7), series(7, (2, 8))):
            value, gap, Ws = diffuse_limit_from_kappa(ref, 1.69, y)
            assert abs(gap) < 1e-20
            mean, cov, X = dense_moments(ref, Ws, 1.69)
            assert_loglik(value, diffuse_gaussian_closed_form(y, mean, cov, X), 1e-12)


def test_oracle5a_diffuse_discount_uses_the_finite_part():
    """Oracle 5a's discount acts on the finite part of P_t only.

    Local level, diffuse: P_1 = κ has no finite part, so W_1 = 0; then C_1 = V (in the limit)
    and W_2 = (1/δ - 1)·V; P∞ never enters W.
    """
    ref = combine(poly_block(1, delta=0.9))
    _, _, Ws = diffuse_limit_from_kappa(ref, 1.69, series(8))
    assert abs(Ws[0, 0, 0]) < 1e-20
    assert Ws[1, 0, 0] == pytest.approx((1 / 0.9 - 1) * 1.69, rel=1e-14)


def test_oracle5b_quadrature_equals_closed_form():
    """Oracle 5b (60-digit Gaussian at κ = 1e30, quad over log φ) against closed forms.

    Its κ → ∞ limit in closed form; and with no diffuse state, that closed form is the
    multivariate t of oracle 2.
    """
    ref = combine(poly_block(2, delta=0.95), seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0))
    y = series(9, (2, 8))
    mean, cov_unit, X = diffuse_student_moments(ref, y, 2.0)
    assert X.shape == (T, 2)
    closed = diffuse_student_closed_form(y, mean, cov_unit, X, 5.0, 2.0)
    quad = diffuse_student_by_quadrature(y, mean, cov_unit, X, 5.0, 2.0)
    assert_loglik(quad, closed, 1e-11)
    proper = TREND_SEASONAL_SIGMA.oracle()
    y = series(9, MISSING)
    mean, cov_unit, X = diffuse_student_moments(proper, y, 2.0)
    assert X.shape == (T, 0)
    closed = diffuse_student_closed_form(y, mean, cov_unit, X, 5.0, 2.0)
    assert_loglik(closed, static_t_loglik(proper, y, 5.0, 2.0), 1e-11)
