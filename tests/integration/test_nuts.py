"""NUTS on DLMs, end to end: parameter recovery, external samplers, the strict C linker.

Long runs (marked ``slow``). Witnesses: the true values of a simulated local level, within 3
posterior standard deviations; for the Nile, Durbin & Koopman's (2012, §2.10.3)
maximum-likelihood estimates, sigma 38.3 (level) and 122.9 (observation). The log-likelihood
and gradient these runs evaluate are checked against independent witnesses in
``tests/distribution/``.
"""

import arviz as az
import numpy as np
import pymc as pm
import pytensor
import pytest

import pymc_dlm as dlm

SEED = 20261124

_NEEDS_CXX = pytest.mark.skipif(not pytensor.config.cxx, reason="no C++ compiler for pytensor")


@pytest.mark.slow
@_NEEDS_CXX
def test_nile_samples_under_the_strict_c_linker(nile):
    """NUTS with every node compiled to C (pytensor's "C" mode) recovers the Nile variances.

    Witness: the maximum-likelihood estimates of Durbin & Koopman (2012, §2.10.3),
    sigma_eta^2 = 1469.1 and sigma_eps^2 = 15099, i.e. sigma 38.3 and 122.9; the posterior
    means under these weak priors lie within 2.5 posterior sd of them.
    """
    _, flow = nile
    with pm.Model():
        s = pm.HalfNormal("s", 100.0)
        v = pm.HalfNormal("v", 200.0)
        dlm.DLM("y", dlm.LocalLevel(s), sigma_obs=v, observed=flow)
        idata = pm.sample(
            300,
            tune=300,
            chains=1,
            compile_kwargs={"mode": "C"},
            nuts_sampler="pymc",
            random_seed=SEED,
            progressbar=False,
        )
    for name, mle in (("s", 38.3), ("v", 122.9)):
        draws = idata["posterior"][name].values.ravel()
        assert abs(draws.mean() - mle) < 2.5 * draws.std(), (name, draws.mean(), draws.std())


@pytest.mark.slow
def test_local_level_parameter_recovery():
    rng = np.random.default_rng(SEED + 20)
    T_ = 300
    y = 10.0 + np.cumsum(rng.normal(0.0, 1.0, T_)) + rng.normal(0.0, 2.0, T_)
    with pm.Model():
        sigma_level = pm.HalfNormal("sigma_level", 5.0)
        sigma_obs = pm.HalfNormal("sigma_obs", 5.0)
        dlm.DLM("y", dlm.LocalLevel(sigma_level), sigma_obs=sigma_obs, observed=y)
        idata = pm.sample(
            draws=300, tune=300, chains=2, cores=1, random_seed=SEED, progressbar=False
        )
    posterior = idata["posterior"]
    for name, truth in (("sigma_level", 1.0), ("sigma_obs", 2.0)):
        draws = posterior[name].values.ravel()
        assert abs(draws.mean() - truth) < 3 * draws.std(), (name, draws.mean(), draws.std())


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["nutpie", "numpyro"])
def test_external_samplers_on_nile_keep_dims(nile, sampler):
    years, flow = nile
    with pm.Model(coords={"year": years}):
        sigma_level = pm.HalfNormal("sigma_level", 100.0)
        sigma_obs = pm.HalfNormal("sigma_obs", 200.0)
        dlm.DLM("y", dlm.LocalLevel(sigma_level), sigma_obs=sigma_obs, observed=flow, dims="year")
        idata = pm.sample(
            draws=200,
            tune=200,
            chains=2,
            nuts_sampler=sampler,
            random_seed=SEED,
            progressbar=False,
            # numpyro runs chains in parallel only on as many devices as chains; on one CPU
            # device it draws them one after the other anyway, and says so unless asked to.
            **({"nuts": {"chain_method": "sequential"}} if sampler == "numpyro" else {}),
        )
    summary = az.summary(idata, var_names=["sigma_level", "sigma_obs"])
    assert len(summary) == 2
    observed = idata["observed_data"]["y"]
    assert observed.dims == ("year",)
    np.testing.assert_array_equal(observed["year"].values, years)
    np.testing.assert_array_equal(observed.values, flow)
    # Durbin & Koopman's ML estimates are sigma_obs ~ 123 and sigma_level ~ 38.
    assert 60 < float(idata["posterior"]["sigma_obs"].mean()) < 180
