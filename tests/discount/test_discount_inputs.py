"""Gradients and invalid inputs of the discounted models.

Gradients of the log-likelihood in every parameter (discounts, n0, S0, δ_V, the prior, a
``sigma``) pass ``pytensor.gradient.verify_grad``. Invalid values give -inf when symbolic and
an error naming the argument when fixed; the valid neighbours are checked against the oracles
of ``tests.support.discount_oracles``.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from tests.support.discount_cases import (
    F_SS,
    G_SS,
    LEVEL,
    M0_SEAS,
    MISSING,
    SEED,
    X_REG,
    T,
    assert_loglik,
    series,
)
from tests.support.discount_oracles import (
    combine,
    known_v_loglik,
    poly_block,
    seasonal_block,
    static_t_loglik,
    wh_loglik,
)

# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

Y_GRAD = series(20, MISSING)


def _scalars(*xs):
    return [pt.specify_shape(x, ()) for x in xs]


def _logp_learned(delta_level, delta_seas, n0, S0, delta_v, m0, C0, sigma_reg):
    delta_level, delta_seas, n0, S0, delta_v, m0, C0, sigma_reg = _scalars(
        delta_level, delta_seas, n0, S0, delta_v, m0, C0, sigma_reg
    )
    model = (
        dlm.LocalLevel(discount=delta_level, m0=m0, C0=C0)
        + dlm.Seasonal(4, discount=delta_seas, m0=M0_SEAS, C0=2.0)
        + dlm.Regression(X_REG[:, :1], sigma=sigma_reg, m0=0.5, C0=1.0)
    )
    obs_var = dlm.LearnedVariance(n0, S0, discount=delta_v)
    return pm.logp(dlm.DLM.dist(model, obs_var=obs_var, steps=T), Y_GRAD)


def _logp_diffuse_known(delta_trend, sigma_seas, sigma_obs):
    delta_trend, sigma_seas, sigma_obs = _scalars(delta_trend, sigma_seas, sigma_obs)
    model = dlm.LocalLinearTrend(discount=delta_trend) + dlm.Seasonal(4, sigma_seas)
    return pm.logp(dlm.DLM.dist(model, sigma_obs=sigma_obs, steps=T), Y_GRAD)


GRAD_CASES = {
    "learned variance: level δ, seasonal δ, n0, S0, δ_V, m0, C0, regression sigma": (
        _logp_learned,
        [0.9, 0.85, 5.0, 2.0, 0.95, 10.0, 4.0, 0.3],
    ),
    "known V, diffuse start: trend δ, seasonal sigma, sigma_obs": (
        _logp_diffuse_known,
        [0.93, 0.3, 1.2],
    ),
}


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_gradients_pass_verify_grad(case):
    """Finite differences of the log-likelihood at an interior point, every parameter."""
    fn, point = GRAD_CASES[case]
    rng = np.random.default_rng(SEED)
    args = [np.array(x, dtype=float) for x in point]
    pytensor.gradient.verify_grad(fn, args, rng=rng, abs_tol=1e-6, rel_tol=1e-5)


# --------------------------------------------------------------------------------------------
# Invalid parameters: -inf for symbolic values, an error naming the argument for fixed ones
# --------------------------------------------------------------------------------------------


def test_invalid_symbolic_discount_gives_minus_inf():
    delta = pt.dscalar("delta")
    model = dlm.LocalLevel(discount=delta, m0=10.0, C0=4.0) + dlm.Seasonal(
        4, 0.3, m0=M0_SEAS, C0=2.0
    )
    value = pt.vector("y")
    f = pytensor.function(
        [value, delta], pm.logp(dlm.DLM.dist(model, sigma_obs=1.3, steps=T), value)
    )
    y = series(21, MISSING)
    for bad in (0.0, 1.2, -0.1):
        assert float(f(y, bad)) == -np.inf, f"discount={bad}"
    ref = combine(
        poly_block(1, delta=0.9, m0=10.0, C0=4.0), seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0)
    )
    assert_loglik(float(f(y, 0.9)), known_v_loglik(ref, 1.3**2, y))
    assert np.isfinite(f(y, 1.0))  # δ = 1 (no state noise) is valid


def test_invalid_symbolic_learned_variance_gives_minus_inf():
    n0, S0, delta_v = pt.dscalars("n0", "S0", "delta_v")
    obs_var = dlm.LearnedVariance(n0, S0, discount=delta_v)
    value = pt.vector("y")
    rv = dlm.DLM.dist(LEVEL.package(), obs_var=obs_var, steps=T)
    f = pytensor.function([value, n0, S0, delta_v], pm.logp(rv, value))
    y = series(22, MISSING)
    for bad in ((0.0, 2.0, 0.9), (-1.0, 2.0, 0.9), (5.0, 0.0, 0.9), (5.0, -2.0, 0.9)):
        assert float(f(y, *bad)) == -np.inf, f"(n0, S0, discount) = {bad}"
    assert_loglik(float(f(y, 5.0, 2.0, 0.9)), wh_loglik(LEVEL.oracle(), y, 5.0, 2.0, 0.9))


def test_invalid_symbolic_variance_discount_gives_minus_inf():
    """δ_V outside (0, 1] (the contract's range for δ, applied to the variance discount)."""
    delta_v = pt.dscalar("delta_v")
    value = pt.vector("y")
    rv = dlm.DLM.dist(
        LEVEL.package(), obs_var=dlm.LearnedVariance(5.0, 2.0, discount=delta_v), steps=T
    )
    f = pytensor.function([value, delta_v], pm.logp(rv, value))
    y = series(23)
    for bad in (0.0, 1.2, -0.1):
        assert float(f(y, bad)) == -np.inf, f"discount={bad}"
    assert_loglik(float(f(y, 1.0)), static_t_loglik(LEVEL.oracle(), y, 5.0, 2.0))


INVALID_FIXED = {
    "LocalLevel discount=1.5": (lambda: dlm.LocalLevel(discount=1.5), "discount"),
    "LocalLevel discount=0": (lambda: dlm.LocalLevel(discount=0.0), "discount"),
    "LocalLevel discount=-0.1": (lambda: dlm.LocalLevel(discount=-0.1), "discount"),
    "LocalLevel sigma and discount": (lambda: dlm.LocalLevel(0.1, discount=0.9), "discount"),
    "LocalLevel neither": (lambda: dlm.LocalLevel(), "discount"),
    "LocalLinearTrend discount=1.2": (lambda: dlm.LocalLinearTrend(discount=1.2), "discount"),
    "Polynomial discount=0": (lambda: dlm.Polynomial(2, discount=0.0), "discount"),
    "Seasonal discount=2": (lambda: dlm.Seasonal(4, discount=2.0), "discount"),
    "Seasonal sigma and discount": (lambda: dlm.Seasonal(4, 0.3, discount=0.9), "discount"),
    "Regression discount=1.5": (lambda: dlm.Regression(X_REG, discount=1.5), "discount"),
    "StateSpace W and discount": (
        lambda: dlm.StateSpace(F_SS[None, :], G_SS, np.eye(2), discount=0.9),
        "discount",
    ),
    "StateSpace discount=0": (
        lambda: dlm.StateSpace(F_SS[None, :], G_SS, discount=0.0),
        "discount",
    ),
    "LearnedVariance n0=-1": (lambda: dlm.LearnedVariance(-1.0, 2.0), "n0"),
    "LearnedVariance n0=0": (lambda: dlm.LearnedVariance(0.0, 2.0), "n0"),
    "LearnedVariance S0=-2": (lambda: dlm.LearnedVariance(5.0, -2.0), "S0"),
    "LearnedVariance S0=0": (lambda: dlm.LearnedVariance(5.0, 0.0), "S0"),
    "LearnedVariance discount=1.5": (
        lambda: dlm.LearnedVariance(5.0, 2.0, discount=1.5),
        "discount",
    ),
    "LearnedVariance discount=0": (
        lambda: dlm.LearnedVariance(5.0, 2.0, discount=0.0),
        "discount",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_FIXED))
def test_fixed_invalid_arguments_raise_naming_the_argument(case):
    make, argname = INVALID_FIXED[case]
    with pytest.raises((ValueError, TypeError), match=argname):
        make()


def test_obs_var_and_sigma_obs_together_raise():
    """Both observation-noise arguments at once (the contract says one *instead of* the other)."""
    with pytest.raises((ValueError, TypeError), match="obs_var|sigma_obs"):
        dlm.DLM.dist(
            LEVEL.package(), sigma_obs=1.0, obs_var=dlm.LearnedVariance(5.0, 2.0), steps=T
        )
