"""The discounted models' log-likelihood against the independent oracles.

``dlm.DLM`` with components given ``discount=δ`` and a known (``sigma_obs``) or a learned
(``obs_var=dlm.LearnedVariance(n0, S0, discount)``) observation variance, against oracle 1
(dense Gaussian, known V), oracle 2 (multivariate t, static learned variance), oracle 3 (West
& Harrison's recursion with a variance discount) and oracles 5a/5b (diffuse states as the
κ → ∞ limit of a proper prior), all in ``tests.support.discount_oracles`` and checked in
``test_oracle_selfchecks.py``. Also the identities δ = 1 ⇔ sigma = 0 and n0 → ∞ ⇔ known V.
Every series is a function of the value: missing values (NaN) change W_t too.
"""

import pymc as pm
import pytest

import pymc_dlm as dlm
from tests.support.discount_cases import (
    KNOWN_V_CASES,
    LEVEL,
    LEVEL_SIGMA_REGRESSION_DISCOUNT,
    M0_SEAS,
    MISSING,
    TREND_SEASONAL_REGRESSION,
    TREND_SEASONAL_SIGMA,
    assert_loglik,
    package_logp,
    series,
)
from tests.support.discount_oracles import (
    combine,
    diffuse_limit_from_kappa,
    diffuse_student_by_quadrature,
    diffuse_student_moments,
    known_v_loglik,
    poly_block,
    seasonal_block,
    static_t_loglik,
    wh_loglik,
)


@pytest.mark.parametrize("case", list(KNOWN_V_CASES))
def test_known_v_discount_logp_equals_dense_gaussian(case):
    """Oracle 1: with a known V, y is Gaussian with W_t from the data-free covariance recursion.

    The missing values change W_t (C_t = R_t there), so the second series checks that too.
    """
    ys = [series(10), series(10, MISSING), series(11)]
    got = package_logp(KNOWN_V_CASES[case].package(), ys, sigma_obs=1.3)
    ref = KNOWN_V_CASES[case].oracle()
    for y, g in zip(ys, got):
        assert_loglik(g, known_v_loglik(ref, 1.3**2, y), label=case)
    assert abs(got[0] - got[2]) > 1e-3  # a function of the value, not of stored data


def test_known_v_discount_in_a_model_context():
    """The same through ``pm.Model`` and ``compile_logp``, NaN marking a missing value."""
    y = series(12, MISSING)
    with pm.Model() as model:
        dlm.DLM("y", TREND_SEASONAL_SIGMA.package(), sigma_obs=1.3, observed=y)
    got = float(model.compile_logp()({}))
    assert_loglik(got, known_v_loglik(TREND_SEASONAL_SIGMA.oracle(), 1.3**2, y))


STATIC_T_CASES = {"level": LEVEL, "trend(discount)+seasonal(sigma)": TREND_SEASONAL_SIGMA}


@pytest.mark.parametrize("case", list(STATIC_T_CASES))
@pytest.mark.parametrize("explicit", [False, True], ids=["default", "discount=1.0"])
def test_static_learned_variance_logp_equals_multivariate_t(case, explicit):
    """Oracle 2: a static learned variance gives a multivariate t.

    φ ~ Gamma(n0/2, n0 S0/2), covariances given at V = S0, discount 1: y is multivariate t
    with df n0, location μ, scale Σ (the Gaussian covariance at V = S0).
    """
    n0, S0 = 5.0, 2.0
    obs_var = (
        dlm.LearnedVariance(n0, S0, discount=1.0) if explicit else dlm.LearnedVariance(n0, S0)
    )
    ys = [series(13), series(13, MISSING)]
    got = package_logp(STATIC_T_CASES[case].package(), ys, obs_var=obs_var)
    ref = STATIC_T_CASES[case].oracle()
    for y, g in zip(ys, got):
        assert_loglik(g, static_t_loglik(ref, y, n0, S0), label=case)


WH_CASES = {
    "level": (LEVEL, 4.0, 1.5, 0.9),
    "trend(discount)+seasonal(discount)+regression(sigma)": (
        TREND_SEASONAL_REGRESSION,
        5.0,
        2.0,
        0.95,
    ),
    "level(sigma)+regression(discount)": (LEVEL_SIGMA_REGRESSION_DISCOUNT, 3.0, 0.8, 0.8),
}


@pytest.mark.parametrize("case", list(WH_CASES))
def test_discounted_learned_variance_logp_equals_west_harrison(case):
    """Oracle 3: West & Harrison's sequential recursion with variance discount δ_V < 1."""
    model_case, n0, S0, delta_v = WH_CASES[case]
    ys = [series(14), series(14, MISSING)]
    for y in ys:  # the oracle's own check, before the package is called: δ_V = 1 is oracle 2
        ref = model_case.oracle()
        assert_loglik(wh_loglik(ref, y, n0, S0, 1.0), static_t_loglik(ref, y, n0, S0))
    obs_var = dlm.LearnedVariance(n0, S0, discount=delta_v)
    got = package_logp(model_case.package(), ys, obs_var=obs_var)
    ref = model_case.oracle()
    for y, g in zip(ys, got):
        assert_loglik(g, wh_loglik(ref, y, n0, S0, delta_v), label=case)


def test_discounted_learned_variance_in_a_model_context():
    """Oracle 3 through ``dlm.DLM(..., obs_var=..., observed=y)`` with NaN in y."""
    y = series(15, MISSING)
    with pm.Model() as model:
        dlm.DLM(
            "y",
            TREND_SEASONAL_REGRESSION.package(),
            obs_var=dlm.LearnedVariance(5.0, 2.0, discount=0.98),
            observed=y,
        )
    got = float(model.compile_logp()({}))
    assert_loglik(got, wh_loglik(TREND_SEASONAL_REGRESSION.oracle(), y, 5.0, 2.0, 0.98))


def test_large_n0_tends_to_the_known_variance():
    """LearnedVariance(1e8, s²) against sigma_obs = s (package and oracle 1).

    Tolerance 1e-6 relative: the Student-t differs from the Gaussian by O((m + Σ e²/Q)/n0)
    ~ 1e-7, and lgamma((n0 + 1)/2) - lgamma(n0/2) cancels ~9 of float64's 16 digits (lgamma
    is ~1e9 here), ~1e-7 absolute per observation.
    """
    s = 1.3
    ys = [series(16), series(16, MISSING)]
    model = TREND_SEASONAL_SIGMA.package()
    learned = package_logp(model, ys, obs_var=dlm.LearnedVariance(1e8, s**2))
    known = package_logp(model, ys, sigma_obs=s)
    ref = TREND_SEASONAL_SIGMA.oracle()
    for y, g, k in zip(ys, learned, known):
        assert_loglik(g, known_v_loglik(ref, s**2, y), 1e-6)
        assert_loglik(g, k, 1e-6)


def test_discount_one_equals_sigma_zero():
    """δ = 1 gives W = 0: the same model as sigma = 0 through the existing API.

    To 1e-10, with a proper and with a diffuse prior.
    """
    ys = [series(17), series(17, MISSING)]
    pairs = [
        (
            dlm.LocalLevel(discount=1.0, m0=10.0, C0=4.0)
            + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0),
            dlm.LocalLevel(0.0, m0=10.0, C0=4.0) + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0),
        ),
        (
            dlm.LocalLinearTrend(discount=1.0) + dlm.Seasonal(4, 0.3),
            dlm.LocalLinearTrend(0.0, 0.0) + dlm.Seasonal(4, 0.3),
        ),
    ]
    for discounted, zero in pairs:
        for g, z in zip(
            package_logp(discounted, ys, sigma_obs=1.3), package_logp(zero, ys, sigma_obs=1.3)
        ):
            assert_loglik(g, z, 1e-10)


DIFFUSE_CASES = {
    "level": (lambda: dlm.LocalLevel(discount=0.9), lambda: combine(poly_block(1, delta=0.9))),
    "trend(discount)+seasonal(sigma)": (
        lambda: dlm.LocalLinearTrend(discount=0.95) + dlm.Seasonal(4, 0.3),
        lambda: combine(poly_block(2, delta=0.95), seasonal_block(4, sigma=0.3)),
    ),
}


@pytest.mark.parametrize("case", list(DIFFUSE_CASES))
def test_diffuse_discount_logp_equals_kappa_limit(case):
    """Oracle 5a: exact diffuse start, discount on the finite part of P_t only.

    One missing value inside the diffuse period (index 2) and one after it.
    """
    make, make_ref = DIFFUSE_CASES[case]
    ys = [series(18), series(18, (2, 8))]
    got = package_logp(make(), ys, sigma_obs=1.3)
    for y, g in zip(ys, got):
        value, gap, _ = diffuse_limit_from_kappa(make_ref(), 1.3**2, y)
        assert abs(gap) < 1e-20
        assert_loglik(g, value, label=case)


DIFFUSE_T_CASES = {
    "level": (
        lambda: dlm.LocalLevel(discount=0.9),
        lambda: combine(poly_block(1, delta=0.9)),
        4.0,
        1.5,
    ),
    "trend(discount, diffuse)+seasonal(sigma, proper)": (
        lambda: dlm.LocalLinearTrend(discount=0.95) + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0),
        lambda: combine(
            poly_block(2, delta=0.95), seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0)
        ),
        5.0,
        2.0,
    ),
}


@pytest.mark.parametrize("case", list(DIFFUSE_T_CASES))
def test_diffuse_learned_variance_logp_equals_kappa_integral(case):
    """Oracle 5b: static learned variance with diffuse states.

    The flat part is not scaled by V, proper covariances (C0, sigma²) are, discounted blocks
    are scale-free. Tolerance 1e-8: the quadrature over φ (the oracle agrees with its closed
    form to ~1e-14, ``test_oracle5b_quadrature_equals_closed_form``) and the package's own
    diffuse-start arithmetic.
    """
    make, make_ref, n0, S0 = DIFFUSE_T_CASES[case]
    ys = [series(19), series(19, (2, 8))]
    got = package_logp(make(), ys, obs_var=dlm.LearnedVariance(n0, S0))
    for y, g in zip(ys, got):
        mean, cov_unit, X = diffuse_student_moments(make_ref(), y, S0)
        expected = diffuse_student_by_quadrature(y, mean, cov_unit, X, n0, S0)
        assert_loglik(g, expected, 1e-8, label=case)
