"""LatentStates: the state path as a PyMC variable, and the posterior it gives.

Witnesses: the dense joint Gaussian of the path θ_{1:T} = B z built from the state equation
by explicit linear maps (``tests.support.discount_oracles.state_map``) for the prior (the
centred log-density exactly, the non-centred draws by their Monte Carlo moments); and, for
the posterior, two independent routes to the same Poisson model (NUTS on the latent path
with PyMC's Poisson likelihood, and NUTS on the Laplace likelihood followed by
``importance_correct``). Nothing is stored.
"""

import numpy as np
import pymc as pm
import pytest
import scipy.linalg
import scipy.stats

import pymc_dlm as dlm
from tests.support import discount_oracles as D

T = 6


def _models():
    pkg = dlm.LocalLevel(0.3, m0=1.0, C0=0.5) + dlm.LocalLinearTrend(
        0.2, 0.1, m0=[0.0, 0.1], C0=[0.4, 0.2]
    )
    oracle = D.combine(
        D.poly_block(1, sigma=0.3, m0=1.0, C0=0.5, n_time=T),
        D.poly_block(2, sigma=[0.2, 0.1], m0=[0.0, 0.1], C0=[0.4, 0.2], n_time=T),
    )
    B = D.state_map(oracle)
    n = oracle.G.shape[0]
    mean = B @ np.concatenate([oracle.m0, np.zeros(n * T)])
    cov = B @ scipy.linalg.block_diag(oracle.C0, *[oracle.W] * T) @ B.T
    return pkg, mean, cov


def test_centred_log_density_is_the_dense_gaussian():
    pkg, mean, cov = _models()
    with pm.Model() as model:
        dlm.LatentStates("theta", pkg, steps=T, centered=True)
    logp = model.compile_logp()
    rng = np.random.default_rng(0)
    for _ in range(3):
        x = rng.multivariate_normal(mean, cov)
        expected = scipy.stats.multivariate_normal(mean, cov).logpdf(x)
        assert abs(logp({"theta": x.reshape(T, -1)}) - expected) < 1e-10 * abs(expected)


def test_non_centred_draws_have_the_dense_moments():
    pkg, mean, cov = _models()
    with pm.Model():
        theta = dlm.LatentStates("theta", pkg, steps=T)
        draws = pm.draw(theta, 20000, random_seed=1).reshape(20000, -1)
    sd = np.sqrt(np.diag(cov))
    z = (draws.mean(axis=0) - mean) / (sd / np.sqrt(len(draws)))
    assert np.all(np.abs(z) < 4.5)
    corr_emp = np.corrcoef(draws.T)
    corr = cov / np.outer(sd, sd)
    assert np.max(np.abs(corr_emp - corr)) < 0.04  # 20000 draws: sd of a correlation <= 0.007


def test_singular_noise_and_diffuse_start():
    """A dummy seasonal (W of rank 1 on 3 states) and a diffuse level.

    Innovations per column of the factor, a flat coefficient per diffuse state; centred
    refuses both.
    """
    model = dlm.LocalLevel(0.2) + dlm.Seasonal(4, 0.1, C0=1.0)
    with pm.Model() as pmodel:
        dlm.LatentStates("theta", model, steps=10)
    shapes = {v.name: tuple(v.type.shape) for v in pmodel.free_RVs}
    assert shapes["theta_innovations"] == (10, 2)  # level noise + one seasonal noise
    assert shapes["theta_diffuse"] == (1,)
    with pm.Model():
        with pytest.raises(ValueError, match="proper prior"):
            dlm.LatentStates("theta", model, steps=10, centered=True)
    with pm.Model():
        with pytest.raises(ValueError, match="full rank"):
            dlm.LatentStates("theta", dlm.Seasonal(4, 0.1, C0=1.0), steps=10, centered=True)


@pytest.mark.slow
def test_latent_path_and_corrected_laplace_give_the_same_posterior():
    rng = np.random.default_rng(11)
    n_time = 30
    level = 1.5 + np.cumsum(rng.normal(0, 0.2, n_time))
    y = rng.poisson(np.exp(level)).astype(float)
    draws = dict(draws=400, tune=400, chains=2, progressbar=False, nuts_sampler="pymc")
    with pm.Model():
        sigma = pm.HalfNormal("sigma", 0.3)
        theta = dlm.LatentStates("theta", dlm.LocalLevel(sigma, m0=1.5, C0=1.0), steps=n_time)
        pm.Poisson("y", mu=pm.math.exp(theta[:, 0]), observed=y)
        idata_a = pm.sample(random_seed=1, target_accept=0.9, **draws)
    with pm.Model() as laplace:
        sigma = pm.HalfNormal("sigma", 0.3)
        dlm.DLM("y", dlm.LocalLevel(sigma, m0=1.5, C0=1.0), family="poisson", observed=y)
        idata_b = pm.sample(random_seed=2, **draws)
    corrected = dlm.importance_correct(idata_b, laplace, n_importance=50, random_seed=3,
                                       progressbar=False)  # fmt: skip
    w = np.exp(corrected["importance"]["log_weight"].values).ravel()
    s_a = idata_a.posterior["sigma"].values.ravel()
    s_b = idata_b.posterior["sigma"].values.ravel()
    mean_b = np.sum(w * s_b)
    # Monte Carlo errors with an allowance for autocorrelation (ESS of about a third)
    se_a = s_a.std() / np.sqrt(len(s_a) / 3)
    se_b = np.sqrt(np.sum(w**2 * (s_b - mean_b) ** 2)) * np.sqrt(3)
    assert abs(s_a.mean() - mean_b) < 4 * np.hypot(se_a, se_b)
    states = dlm.sample_states(idata_b, laplace, random_seed=4, progressbar=False,
                               n_importance=50)  # fmt: skip
    path_b = states.posterior["y_smoothed_state"].values[..., 0].reshape(-1, n_time)
    path_a = idata_a.posterior["theta"].values[..., 0].reshape(-1, n_time)
    se = np.hypot(
        path_a.std(0) / np.sqrt(len(path_a) / 3), path_b.std(0) / np.sqrt(len(path_b) / 3)
    )
    assert np.all(np.abs(path_a.mean(0) - path_b.mean(0)) < 4.5 * se)
