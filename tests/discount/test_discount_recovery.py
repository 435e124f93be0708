"""NUTS recovers a discount factor and a learned variance from data simulated with them.

The data are drawn by the package's forward simulation (``pm.draw`` of the DLM at fixed
values), whose moments are checked against the dense oracles in
``test_discount_simulation.py``; the posterior is then judged against the values used.
"""

import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm

DELTA, N0, S0, T = 0.85, 40.0, 0.5, 300


def _simulate(seed):
    level = dlm.LocalLevel(discount=DELTA, m0=0.0, C0=1.0)
    rv = dlm.DLM.dist(level, obs_var=dlm.LearnedVariance(N0, S0), steps=T)
    return pm.draw(rv, random_seed=seed)


@pytest.mark.slow
def test_nuts_recovers_the_discount_factor_and_the_variance():
    y = _simulate(20261205)
    with pm.Model():
        delta = pm.Beta("delta", 9.0, 1.0)  # prior mean 0.9, sd 0.09
        S = pm.HalfNormal("S", 2.0)
        level = dlm.LocalLevel(discount=delta, m0=0.0, C0=1.0)
        # n0 = 1: a vague prior on V around S; the data (T = 300) carry the variance.
        dlm.DLM("y", level, obs_var=dlm.LearnedVariance(1.0, S), observed=y)
        idata = pm.sample(
            draws=300,
            tune=300,
            chains=2,
            cores=1,
            nuts_sampler="pymc",
            random_seed=3,
            progressbar=False,
            compute_convergence_checks=False,
        )
    post = idata["posterior"]
    d = post["delta"].values.ravel()
    assert abs(d.mean() - DELTA) < 3 * d.std(), (d.mean(), d.std())
    assert d.std() < 0.05  # the data inform delta well beyond its prior (sd 0.09)
    # The learned variance's final estimate S_T at the posterior mean of delta is near the
    # variance drawn for the simulation, which has mean S0 and a spread of S0*sqrt(2/N0).
    fit = dlm.kalman_filter(
        dlm.LocalLevel(discount=float(d.mean()), m0=0.0, C0=1.0),
        y,
        obs_var=dlm.LearnedVariance(1.0, float(post["S"].mean())),
    )
    S_T = float(fit["scale"][-1])
    assert abs(S_T - S0) < 4 * S0 * np.sqrt(2.0 / N0), S_T
