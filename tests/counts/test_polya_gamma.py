"""PolyaGammaFFBS: the Gibbs step for a latent path under logistic and negative-binomial data.

Witnesses: one-dimensional quadrature of the exact posterior when the path is one Gaussian
variable (a level with no noise; ``tests.support.count_oracles``), and, with the static
parameters sampled by NUTS, the Laplace likelihood's posterior corrected by
``importance_correct`` (an independent route). Nothing is stored.
"""

import arviz as az
import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm
from tests.support import count_oracles as C

pytest.importorskip("polyagamma")


@pytest.mark.parametrize(
    ("family", "param", "y"),
    [
        ("bernoulli", 1.0, np.array([1.0, 0, 0, 0, 0, 0, 0, 0])),
        ("negative_binomial", 3.0, np.array([0.0, 2, 1, 0, 5, 1, 0, 0])),
    ],
)
def test_gibbs_draws_match_the_exact_posterior(family, param, y):
    m0, C0 = 0.0, 4.0
    fam = dlm.NegativeBinomial(param) if family == "negative_binomial" else family
    with pm.Model():
        theta = dlm.LatentStates("theta", dlm.LocalLevel(0.0, m0=m0, C0=C0), steps=y.size)
        eta = theta[:, 0]
        if family == "bernoulli":
            pm.Bernoulli("y", logit_p=eta, observed=y)
        else:
            pm.NegativeBinomial("y", mu=pm.math.exp(eta), alpha=param, observed=y)
        step = dlm.PolyaGammaFFBS(theta, family=fam, observed=y)
        idata = pm.sample(1500, tune=100, chains=2, cores=1, step=[step], random_seed=1,
                          progressbar=False, compute_convergence_checks=False)  # fmt: skip
    draws = idata.posterior["theta"].values[..., 0, 0]
    exact = C.static_level_posterior_mean(family, y, m0, C0, lambda t: t, param)
    ess = float(az.ess(draws))
    assert abs(draws.mean() - exact) < 4 * draws.std() / np.sqrt(ess)
    assert np.allclose(idata.posterior["theta"].values[..., 0], draws[..., None])


def test_refuses_other_families_and_other_variables():
    with pm.Model():
        theta = dlm.LatentStates("theta", dlm.LocalLevel(0.1, m0=0.0, C0=1.0), steps=4)
        with pytest.raises(ValueError, match="family"):
            dlm.PolyaGammaFFBS(theta, family="poisson", observed=np.ones(4))
        with pytest.raises(TypeError, match="LatentStates"):
            dlm.PolyaGammaFFBS(theta * 2, family="bernoulli", observed=np.ones(4))


@pytest.mark.slow
def test_with_nuts_matches_the_corrected_laplace_posterior():
    rng = np.random.default_rng(11)
    n_time, alpha_true = 30, 5.0
    mu = np.exp(1.5 + np.cumsum(rng.normal(0, 0.2, n_time)))
    y = rng.negative_binomial(alpha_true, alpha_true / (alpha_true + mu)).astype(float)
    opts = dict(chains=2, progressbar=False, random_seed=2)
    with pm.Model():
        sigma = pm.HalfNormal("sigma", 0.3)
        alpha = pm.Exponential("alpha", 0.1)
        theta = dlm.LatentStates("theta", dlm.LocalLevel(sigma, m0=1.5, C0=1.0), steps=n_time)
        pm.NegativeBinomial("y", mu=pm.math.exp(theta[:, 0]), alpha=alpha, observed=y)
        step = dlm.PolyaGammaFFBS(theta, family=dlm.NegativeBinomial(alpha), observed=y)
        idata_pg = pm.sample(1500, tune=500, cores=1, step=[step], **opts)
    with pm.Model() as laplace:
        sigma = pm.HalfNormal("sigma", 0.3)
        alpha = pm.Exponential("alpha", 0.1)
        dlm.DLM("y", dlm.LocalLevel(sigma, m0=1.5, C0=1.0), family=dlm.NegativeBinomial(alpha),
                observed=y)  # fmt: skip
        idata_la = pm.sample(500, tune=500, nuts_sampler="pymc", **opts)
    corrected = dlm.importance_correct(idata_la, laplace, n_importance=50, random_seed=3,
                                       progressbar=False)  # fmt: skip
    w = np.exp(corrected["importance"]["log_weight"].values).ravel()
    for name in ("sigma", "alpha"):
        a = idata_pg.posterior[name]
        b = idata_la.posterior[name].values.ravel()
        mean_b = np.sum(w * b)
        se_a = float(az.mcse(a))
        se_b = (
            float(az.mcse(idata_la.posterior[name])) * np.sqrt(1.0 / np.sum(w**2) / b.size) ** -1
        )
        assert abs(float(a.mean()) - mean_b) < 4 * np.hypot(se_a, se_b), name
