r"""A DLM whose states are all static and diffuse is a generalised linear model.

Witness: statsmodels' ``GLM`` (its own Newton iteration). With ``LocalLevel(0.0)`` (a diffuse
intercept) and ``Regression(X, sigma=0.0)`` (diffuse static coefficients) the posterior of
the states under their flat prior is the likelihood, so

* the mode that ``kalman_smoother(..., family=...)`` returns is the maximum-likelihood
  estimate of the GLM;
* the approximating model's smoothed covariance is the inverse of the observed information
  :math:`-\nabla^2 \log p(y \mid \hat\beta)` (statsmodels' ``GLM.hessian``, analytic);
* the Laplace log-likelihood of a flat prior is
  :math:`\log p(y \mid \hat\beta) - \tfrac12 \log\det(-\nabla^2 \log p)` (the Laplace
  integral :math:`p(y\mid\hat\beta)(2\pi)^{k/2}|H|^{-1/2}` with the flat prior's
  :math:`(2\pi)^{-k/2}` of the package's diffuse convention, ``notes/diffuse.md``).

This is the check KFAS's own test suite makes against R's ``glm`` (``tests/testthat/
testGLM.R`` of KFAS). The data: the Poisson example of Dobson (1990, p. 93; R's ``?glm``),
the budworm binomial data of Venables & Ripley (2002, p. 190), and series simulated here with
fixed seeds for the negative binomial and the Bernoulli families.
"""

import numpy as np
import pytest
import statsmodels.api as sm

import pymc_dlm as dlm


def _dobson():
    counts = np.array([18, 17, 15, 20, 10, 20, 25, 13, 12], dtype=float)
    outcome, treatment = np.tile([0, 1, 2], 3), np.repeat([0, 1, 2], 3)
    X = np.column_stack([outcome == 1, outcome == 2, treatment == 1, treatment == 2])
    return counts, X.astype(float)


def _budworm():
    ldose = np.tile(np.arange(6.0), 2)
    dead = np.array([1, 4, 9, 13, 18, 20, 0, 2, 6, 10, 12, 16], dtype=float)
    male = np.repeat([1.0, 0.0], 6)
    return dead, np.column_stack([male, ldose, male * ldose])


def _simulated(kind, T=60, seed=20261205):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(T, 2))
    eta = 0.5 + X @ np.array([0.8, -0.4])
    if kind == "bernoulli":
        return rng.binomial(1, 1 / (1 + np.exp(-eta))).astype(float), X
    alpha = 3.0
    return rng.negative_binomial(alpha, alpha / (alpha + np.exp(eta))).astype(float), X


# (data, family of pymc_dlm, family of statsmodels, offset)
CASES = {
    "poisson": (_dobson(), "poisson", sm.families.Poisson(), None),
    "poisson_offset": (_dobson(), "poisson", sm.families.Poisson(), np.linspace(-0.3, 0.4, 9)),
    "binomial": (_budworm(), dlm.Binomial(20), sm.families.Binomial(), None),
    "bernoulli": (_simulated("bernoulli"), "bernoulli", sm.families.Binomial(), None),
    # PyMC's NegativeBinomial(mu, alpha) has variance mu + mu^2 / alpha; statsmodels' NB2
    # family has mu + alpha_sm mu^2, so alpha_sm = 1 / alpha.
    "negative_binomial": (
        _simulated("negative_binomial"),
        dlm.NegativeBinomial(3.0),
        sm.families.NegativeBinomial(alpha=1 / 3.0),
        None,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_static_diffuse_states_are_the_glm(case):
    (y, X), family, sm_family, offset = CASES[case]
    if case == "binomial":  # statsmodels takes (successes, failures)
        endog = np.column_stack([y, 20 - y])
    else:
        endog = y
    glm = sm.GLM(endog, sm.add_constant(X), family=sm_family, offset=offset)
    # Newton steps on the analytic Hessian: IRLS (Fisher scoring) stops at a score of 1e-7
    # for the negative binomial, whose log link is not canonical.
    fit = glm.fit(method="newton", tol=1e-14, maxiter=100)
    assert np.max(np.abs(glm.score(fit.params))) < 1e-10
    H = -glm.hessian(fit.params, observed=True)
    k = X.shape[1] + 1

    components = dlm.LocalLevel(0.0) + dlm.Regression(X, sigma=0.0)
    kwargs = dict(family=family, offset=offset)
    smoothed = dlm.kalman_smoother(components, y, **kwargs)
    mode = np.asarray(smoothed["smoothed_mean"])
    cov = np.asarray(smoothed["smoothed_cov"])
    # Static states: every time step carries the same smoothed moments.
    assert np.allclose(mode, mode[-1], rtol=0, atol=1e-10)
    np.testing.assert_allclose(mode[-1], fit.params, rtol=1e-9, atol=1e-10)
    np.testing.assert_allclose(cov[-1], np.linalg.solve(H, np.eye(k)), rtol=1e-8, atol=1e-12)

    loglik = float(dlm.kalman_filter(components, y, **kwargs)["loglik"])
    expected = fit.llf - 0.5 * np.linalg.slogdet(H)[1]
    assert abs(loglik - expected) < 1e-9 * (1 + abs(expected))
