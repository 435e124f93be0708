r"""Prior predictive simulation of discounted models against analytic moments (Monte Carlo).

The model is a discounted local level (δ = 0.8, proper prior) plus a seasonal(4) given by
``sigma``, 10 steps, simulated by ``pm.sample_prior_predictive``. With every y observed
(a simulation has no gap) the covariance recursion gives the W_t of the discounted block, and
the dense Gaussian of ``tests.support.discount_oracles`` gives the mean μ and the covariance Σ
of y at an observation variance V (oracle 1):

* known V (``sigma_obs``): y ~ N(μ, Σ) with V = sigma_obs²;
* learned static V (``LearnedVariance(n0, S0)``): given φ = 1/V, y ~ N(μ, Σ/(S0 φ)) with Σ at
  V = S0 (the user's covariances are scaled by V/S0, discounted blocks are scale-free), and
  S0 φ ~ χ²_n0 / n0, so y is multivariate t with n0 degrees of freedom, location μ and scale
  matrix Σ: Cov y = Σ n0/(n0 - 2).

Standard errors come from the distribution, not from the draws: with y - μ = z/√g,
z ~ N(0, Σ), g ~ χ²_ν/ν, E[(y_i - μ_i)²(y_j - μ_j)²] = E[g⁻²](Σ_ii Σ_jj + 2Σ_ij²) and
E[g⁻²] = ν²/((ν - 2)(ν - 4)) (1 for the Gaussian). n0 = 6 > 4, so that fourth moment, and the
variance of a sample covariance, are finite (the eighth moment is not, so an empirical
standard error of the sample variance would not be reliable). The Mahalanobis distance checks
the shape of the whole distribution: (y - μ)'Σ⁻¹(y - μ)/T is F(T, n0) (χ²_T/T for the
Gaussian); the fraction of draws above three of its quantiles is binomial.

Tolerances: the mean and the variances at a few times within 4 standard errors, every entry
of the covariance within 5, the tail fractions within 4. These checks, run on numpy draws of
the same distributions with 400 other seeds, failed twice for the t (an entry of the
covariance, whose sampling distribution is skewed by the t's tails) and never for the
Gaussian. On the package's draws at the seeds below the largest |z| is 2.0 (t) and 2.4
(Gaussian). Analytic moments altered on purpose fail: n0 in place of n0/(n0 - 2) by 190
standard errors, the Gaussian's covariance Σ by 21, δ = 0.85 or 0.75 in place of 0.8 by 6 to
9 (t and Gaussian); a Gaussian with the t's covariance, or a t with 8 degrees of freedom and
the same covariance, fails the tail fractions by 83 and 14. Too small to see: W_t of the
Gaussian computed at V = 1 instead of 1.44 (|z| 2.9).

With a variance discount δ_V < 1 (``LearnedVariance(6, 2, discount=0.9)``) the simulator
scales the unit-scale path per step by V_t, whose precision follows West & Harrison's
beta-gamma evolution from the prior; each y_t is then t with δ_V^t n0 degrees of freedom
(oracle 2: φ_t ~ Ga(δ_V^t n0/2, δ_V^t n0 S0/2), the beta-gamma identity), location μ_t and
scale Σ_tt from oracle 1 at V = S0 (the unit-scale covariances do not depend on δ_V). The
fraction of standardised draws below five quantiles of that t is binomial; 4 standard errors.
Drawing every φ_t as φ_0 (a static variance) instead fails it from step 3 on (the 0.01
quantile's fraction, 6.0 standard errors).

Simulation is refused where it has no generative meaning: diffuse states (a flat prior has no
draws).
"""

import numpy as np
import pymc as pm
import pytest
import scipy.stats

import pymc_dlm as dlm
from tests.support.discount_oracles import (
    combine,
    covariance_recursion,
    dense_moments,
    poly_block,
    seasonal_block,
)

SEED = 20261206
STEPS = 10
N0, S0 = 6.0, 2.0
SIGMA_OBS = 1.2
VARIANCE_TIMES = [0, 4, 9]
TAIL_LEVELS = (0.5, 0.9, 0.99)


def package_model():
    """The discounted local level plus a seasonal given by ``sigma``, both proper."""
    return dlm.LocalLevel(discount=0.8, m0=1.0, C0=3.0) + dlm.Seasonal(
        4, 0.3, m0=[0.0, 0.0, 0.0], C0=1.0
    )


def oracle_system():
    """The same model for the oracles."""
    return combine(
        poly_block(1, delta=0.8, m0=1.0, C0=3.0, n_time=STEPS),
        seasonal_block(4, sigma=0.3, m0=[0.0, 0.0, 0.0], C0=1.0, n_time=STEPS),
    )


def gaussian_moments(V):
    """(μ, Σ) of y at observation variance V, every y observed (oracle 1)."""
    system = oracle_system()
    Ws = covariance_recursion(system, V, np.ones(STEPS, dtype=bool))
    mean, cov, _ = dense_moments(system, Ws, V)
    return mean, cov


def prior_draws(n_draws, seed, **obs):
    """``pm.sample_prior_predictive`` draws of y, shape (n_draws, STEPS)."""
    with pm.Model():
        dlm.DLM("y", package_model(), steps=STEPS, **obs)
        idata = pm.sample_prior_predictive(draws=n_draws, random_seed=seed)
    return idata["prior"]["y"].values.reshape(-1, STEPS)


class Analytic:
    """Moments of μ + z/√g, z ~ N(0, scale), g ~ χ²_df/df (``df=None``: g = 1, Gaussian)."""

    def __init__(self, mean, scale, df=None):
        self.mean, self.scale, self.df = mean, scale, df
        if df is None:
            self.cov_factor, self.fourth_factor = 1.0, 1.0
        else:  # E[1/g] and E[1/g²]
            self.cov_factor = df / (df - 2.0)
            self.fourth_factor = df**2 / ((df - 2.0) * (df - 4.0))
        self.cov = self.cov_factor * scale

    def cov_standard_errors(self, n_draws):
        """Standard error of each entry of the sample covariance of ``n_draws`` draws."""
        d = np.diag(self.scale)
        fourth = self.fourth_factor * (np.outer(d, d) + 2.0 * self.scale**2)
        return np.sqrt((fourth - (self.cov_factor * self.scale) ** 2) / n_draws)

    def mahalanobis_quantile(self, level):
        """The ``level`` quantile of (y - μ)'scale⁻¹(y - μ)/T."""
        n = len(self.mean)
        if self.df is None:
            return scipy.stats.chi2(n).ppf(level) / n
        return scipy.stats.f(n, self.df).ppf(level)


def assert_within(got, expected, se, k, label):
    """Every |got - expected| <= k standard errors."""
    z = (np.asarray(got) - expected) / se
    worst = np.unravel_index(np.argmax(np.abs(z)), np.shape(z))
    assert np.all(np.abs(z) <= k), (
        f"{label}: {np.max(np.abs(z)):.2f} standard errors at {worst} "
        f"(got {np.asarray(got)[worst]!r}, expected {np.asarray(expected)[worst]!r})"
    )


def assert_draws_match(draws, analytic):
    """Mean, variances at VARIANCE_TIMES, covariance and Mahalanobis tail fractions."""
    n_draws = len(draws)
    assert draws.shape == (n_draws, STEPS) and np.all(np.isfinite(draws))
    mean_se = np.sqrt(np.diag(analytic.cov) / n_draws)
    assert_within(draws.mean(axis=0), analytic.mean, mean_se, 4.0, "mean")
    sample_cov = np.cov(draws, rowvar=False)
    cov_se = analytic.cov_standard_errors(n_draws)
    t = VARIANCE_TIMES
    assert_within(sample_cov[t, t], analytic.cov[t, t], cov_se[t, t], 4.0, "variances")
    assert_within(sample_cov, analytic.cov, cov_se, 5.0, "covariance")
    e = draws - analytic.mean
    distance = np.einsum("ni,ni->n", e, np.linalg.solve(analytic.scale, e.T).T) / STEPS
    for level in TAIL_LEVELS:
        above = np.mean(distance > analytic.mahalanobis_quantile(level))
        se = np.sqrt(level * (1.0 - level) / n_draws)
        assert_within(above, 1.0 - level, se, 4.0, f"fraction above the {level} quantile")


def test_learned_variance_prior_predictive_is_multivariate_t():
    """LearnedVariance(6, 2): y is multivariate t, df 6, location μ, scale Σ at V = S0."""
    mean, scale = gaussian_moments(S0)
    draws = prior_draws(20_000, SEED, obs_var=dlm.LearnedVariance(N0, S0))
    assert_draws_match(draws, Analytic(mean, scale, df=N0))


def test_known_variance_prior_predictive_is_gaussian():
    """sigma_obs = 1.2: y is Gaussian with mean μ and covariance Σ at V = 1.44."""
    mean, cov = gaussian_moments(SIGMA_OBS**2)
    draws = prior_draws(10_000, SEED + 1, sigma_obs=SIGMA_OBS)
    assert_draws_match(draws, Analytic(mean, cov))


VARIANCE_DISCOUNT = 0.9
QUANTILE_LEVELS = (0.01, 0.1, 0.5, 0.9, 0.99)


def test_variance_discount_prior_predictive_margins():
    """δ_V = 0.9: each y_t is t with δ_V^t n0 degrees of freedom, location μ_t, scale Σ_tt."""
    mean, scale = gaussian_moments(S0)
    obs_var = dlm.LearnedVariance(N0, S0, discount=VARIANCE_DISCOUNT)
    draws = prior_draws(20_000, SEED + 2, obs_var=obs_var)
    assert draws.shape == (20_000, STEPS) and np.all(np.isfinite(draws))
    for t in range(STEPS):
        margin = scipy.stats.t(VARIANCE_DISCOUNT ** (t + 1) * N0)
        z = (draws[:, t] - mean[t]) / np.sqrt(scale[t, t])
        for level in QUANTILE_LEVELS:
            below = np.mean(z <= margin.ppf(level))
            se = np.sqrt(level * (1.0 - level) / len(draws))
            assert_within(
                below, level, se, 4.0, f"step {t + 1}, fraction below the {level} quantile"
            )


REFUSED = {
    "diffuse level, known V": (
        lambda: dlm.LocalLevel(discount=0.8),
        lambda: {"sigma_obs": SIGMA_OBS},
        "diffuse",
    ),
    "diffuse trend + proper seasonal, learned V": (
        lambda: dlm.LocalLinearTrend(discount=0.9) + dlm.Seasonal(4, 0.3, m0=[0.0] * 3, C0=1.0),
        lambda: {"obs_var": dlm.LearnedVariance(N0, S0)},
        "diffuse",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_simulation_refused_without_a_generative_model(case):
    """Diffuse states: the model builds, the simulation raises a ValueError."""
    make_model, make_obs, message = REFUSED[case]
    with pm.Model():
        dlm.DLM("y", make_model(), steps=STEPS, **make_obs())
        with pytest.raises(ValueError, match=message):
            pm.sample_prior_predictive(draws=10, random_seed=SEED)
