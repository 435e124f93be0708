"""DLM(family=...) in a PyMC model: the log-likelihood, input errors, simulation, NUTS.

Witnesses: ``kalman_filter(..., family=...)`` (itself checked against the dense oracle in
``test_laplace.py``) for the model's log-likelihood; analytic moments of the lognormal
(E exp(eta) for Gaussian eta) for the simulator; nothing is stored.
"""

import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm
from tests.support.errors import expect

T = 24
LEVEL = dlm.LocalLevel(0.1, C0=1.0)


def _counts(seed=0):
    rng = np.random.default_rng(seed)
    y = rng.poisson(np.exp(1.0 + np.cumsum(rng.normal(0, 0.1, T)))).astype(float)
    y[3] = np.nan
    return y


def test_model_logp_equals_kalman_filter_loglik():
    y = _counts()
    with pm.Model() as model:
        sd = pm.HalfNormal("sd", 0.3)
        alpha = pm.Exponential("alpha", 0.2)
        level = dlm.LocalLevel(sd, m0=1.0, C0=1.0)
        dlm.DLM("y", level, family=dlm.NegativeBinomial(alpha), observed=y)
    logp = model.compile_logp(vars=[model["y"]], jacobian=False)
    for sd, alpha in [(0.1, 2.0), (0.3, 10.0), (0.1, 2.0)]:  # the last repeats (warm start)
        point = {"sd_log__": np.log(sd), "alpha_log__": np.log(alpha)}
        expected = dlm.kalman_filter(
            dlm.LocalLevel(sd, m0=1.0, C0=1.0), y, family=dlm.NegativeBinomial(alpha)
        ).loglik
        assert abs(logp(point) - float(expected)) < 1e-9 * abs(float(expected))
    # alpha outside its support: -inf with a finite gradient
    dlogp = model.compile_dlogp(vars=[model["sd"]], jacobian=False)
    assert np.all(np.isfinite(dlogp({"sd_log__": np.log(0.2), "alpha_log__": np.log(3.0)})))


@pytest.mark.parametrize(
    ("make", "argname"),
    [
        (lambda: dlm.DLM.dist(dlm.LocalLevel(0.1, C0=1.0), family="gamma", steps=5), "family"),
        (lambda: dlm.DLM.dist(dlm.LocalLevel(0.1, C0=1.0), family="binomial", steps=5), "family"),
        (lambda: dlm.Binomial(0), r"Binomial\(n\)"),
        (lambda: dlm.Binomial(2.5), r"Binomial\(n\)"),
        (lambda: dlm.NegativeBinomial(-1.0), r"NegativeBinomial\(alpha\)"),
        (
            lambda: dlm.DLM.dist(
                dlm.LocalLevel(0.1, C0=1.0), family="poisson", sigma_obs=1.0, steps=5
            ),
            "sigma_obs",
        ),
        (
            lambda: dlm.DLM.dist(
                dlm.LocalLevel(0.1, C0=1.0), family="poisson", offset=np.zeros(4), steps=5
            ),
            "offset",
        ),
        (lambda: dlm.kalman_filter(LEVEL, [1.0, -1.0], family="poisson"), "y"),
        (lambda: dlm.kalman_filter(LEVEL, [1.0, 0.5], family="poisson"), "y"),
        (
            lambda: dlm.kalman_filter(
                dlm.LocalLevel(0.1, C0=1.0), [1.0, 3.0], family=dlm.Binomial(2)
            ),
            "y",
        ),
        (lambda: dlm.kalman_filter(dlm.LocalLevel(0.1, C0=1.0), [1.0, 2.0], offset=1.0), "offset"),
    ],
)
def test_bad_input_names_the_argument(make, argname):
    expect(make, argname)


def test_observed_counts_checked_when_the_variable_is_built():
    with pm.Model():
        with pytest.raises(ValueError, match="observed"):
            dlm.DLM("y", dlm.LocalLevel(0.1, C0=1.0), family="poisson", observed=[1.0, 0.5, 2.0])


def test_simulated_poisson_means_match_the_lognormal_moments():
    """E[y_t] = E exp(eta_t) = exp(m0 + Var(eta_t)/2), Var(eta_t) = C0 + t sd^2."""
    m0, C0, sd, n = 1.0, 0.04, 0.1, 4000
    y = dlm.DLM.dist(dlm.LocalLevel(sd, m0=m0, C0=C0), family="poisson", steps=T)
    draws = pm.draw(y, n, random_seed=3)
    t = np.arange(1, T + 1)
    expected = np.exp(m0 + 0.5 * (C0 + t * sd**2))
    se = draws.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(draws.mean(axis=0) - expected) < 4.5 * se)
    assert np.all(draws == np.round(draws)) and draws.min() >= 0


def test_nuts_runs_on_the_laplace_likelihood():
    y = _counts(1)
    with pm.Model():
        sd = pm.HalfNormal("sd", 0.3)
        dlm.DLM("y", dlm.LocalLevel(sd, m0=1.0, C0=1.0), family="poisson", observed=y)
        idata = pm.sample(
            60, tune=60, chains=1, random_seed=4, progressbar=False, nuts_sampler="pymc"
        )
    draws = idata.posterior["sd"].values
    assert np.all(np.isfinite(draws)) and draws.std() > 0


def test_a_batch_of_series_is_the_sum_of_single_series():
    rng = np.random.default_rng(1)
    ys = rng.poisson(3.0, size=(3, 20)).astype(float)
    ys[1, 4] = np.nan
    sds = np.array([0.1, 0.2, 0.3])
    with pm.Model() as model:
        sd = pm.HalfNormal("sd", 0.2, shape=3)
        dlm.DLM("y", dlm.LocalLevel(sd, m0=1.0, C0=1.0), family="poisson", observed=ys)
    logp = model.compile_logp(vars=[model["y"]], jacobian=False)
    singles = [
        float(dlm.kalman_filter(dlm.LocalLevel(s, m0=1.0, C0=1.0), y, family="poisson").loglik)
        for s, y in zip(sds, ys)
    ]
    assert abs(logp({"sd_log__": np.log(sds)}) - sum(singles)) < 1e-9 * abs(sum(singles))
    batched = dlm.kalman_filter(dlm.LocalLevel(sds, m0=1.0, C0=1.0), ys, family="poisson")
    np.testing.assert_allclose(batched.loglik.values, singles, rtol=1e-11)


@pytest.mark.parametrize("case", ["poisson_proper", "poisson_diffuse", "nb_alpha"])
def test_the_gradient_pymc_samples_with_is_the_derivative_of_the_logp(case):
    """PyMC's gradient against central differences of its log-density, every variable.

    ``Model.compile_dlogp`` rewrites the log-density before differentiating it, as NUTS does.

    The gradient's terms that count only in the derivative must survive those rewrites
    (``pymc_dlm.laplace.stop_gradient``); with pytensor's ``disconnected_grad`` they did
    not, and the gradient was off by several percent.
    """
    y = _counts(2)
    with pm.Model() as model:
        sd = pm.HalfNormal("sd", 0.3)
        m0 = pm.Normal("m0", 1.0, 1.0)
        level = dlm.LocalLevel(sd) if case == "poisson_diffuse" else dlm.LocalLevel(sd, m0=m0)
        if case == "nb_alpha":
            family = dlm.NegativeBinomial(pm.Gamma("alpha", 4.0, 1.0))
        else:
            family = "poisson"
        dlm.DLM("y", level, family=family, observed=y)
    logp, dlogp = model.compile_logp(), model.compile_dlogp()
    point = model.initial_point()
    grad = dlogp(point)
    for i, name in enumerate(point):
        up, down = dict(point), dict(point)
        up[name] = point[name] + 1e-5
        down[name] = point[name] - 1e-5
        fd = (logp(up) - logp(down)) / 2e-5
        assert abs(grad[i] - fd) < 1e-6 * max(1.0, abs(fd)), (name, grad[i], fd)
