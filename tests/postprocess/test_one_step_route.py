"""The one-step predictive of fixed-W models (``postprocess/one_step.py``) against dense oracles.

A diffuse period broken by a missing value: ``LocalLinearTrend(0.3, 0.1) + Seasonal(12,
0.2)``, exact diffuse start (13 diffuse states), ``sigma_obs`` = 1.2, T = 36, y_9 missing.
The season of the missing value stays diffuse until it is observed again at t = 21 (index
20); the observations between see only the other seasons.

Oracle: the covariance filter (dense numpy, written here) with the proper prior κI on the
diffuse states. Where the one-step predictive is improper its variance grows with κ (×100
from κ = 1e6 to 1e8: t = 0..12 and 20); elsewhere it converges (ratio below 1.01), and its
moments at κ = 1e8 are the exact diffuse ones to about 1e-7.

Figures (2026-12-07): before the replicates were drawn from N(f_t, Q_t), they pushed the
filtered draw of θ_{t-1} through G_t and F_t; that draw is NaN in every state the missing
season's direction touches, so t = 13..19 were left out too (``dropped_times`` 0..20).

A ``C0_sqrt`` (n, k) with k < n: the residuals against the dense filter (``dense_filtered``
of ``tests.support.oracles``). Before the filter scan squared the initial factor,
``posterior_residuals`` failed on such a model (a shape error, 2026-12-07).
"""

import numpy as np
import pymc as pm
import xarray as xr

import pymc_dlm as dlm
from tests.support.discount_cases import series
from tests.support.discount_oracles import combine, poly_block, seasonal_block
from tests.support.fixed_posterior import fixed_posterior
from tests.support.oracles import dense_filtered

N_TIME = 36
V = 1.2**2
Y = np.concatenate([series(62, (8,)), series(63), series(64)])


def _kappa_moments(kappa):
    """One-step means f_t and variances Q_t (T,) with the prior κI on the diffuse states."""
    system = combine(poly_block(2, sigma=[0.3, 0.1], n_time=N_TIME),
                     seasonal_block(12, sigma=0.2, n_time=N_TIME))  # fmt: skip
    m, C = system.m0, system.C0 + kappa * np.diag(system.diffuse.astype(float))
    f, Q = [], []
    for t in range(N_TIME):
        a, R = system.G @ m, system.G @ C @ system.G.T + system.W
        RF = R @ system.F[t]
        f.append(system.F[t] @ a)
        Q.append(system.F[t] @ RF + V)
        if np.isnan(Y[t]):
            m, C = a, R
        else:
            m, C = a + RF * (Y[t] - f[-1]) / Q[-1], R - np.outer(RF, RF) / Q[-1]
    return np.array(f), np.array(Q)


def test_one_step_replicates_keep_every_proper_time_with_the_exact_moments():
    f6, Q6 = _kappa_moments(1e6)
    f8, Q8 = _kappa_moments(1e8)
    ratio = Q8 / Q6
    assert np.all((ratio > 50.0) | (ratio < 1.01))
    improper = ratio > 50.0
    assert np.flatnonzero(improper).tolist() == [*range(13), 20]
    with pm.Model() as model:
        trend = dlm.LocalLinearTrend(0.3, 0.1)
        dlm.DLM("y", trend + dlm.Seasonal(12, 0.2), observed=Y, sigma_obs=V**0.5)
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({}, 1, 4000)})
    pp = dlm.posterior_predictive(idata, model, kind="one_step", random_seed=5,
                                  progressbar=False)  # fmt: skip
    rep = pp["posterior_predictive"]["y"]
    expected = np.flatnonzero(improper)
    assert rep.attrs["dropped_times"] == [str(t) for t in expected]
    draws = rep.values.reshape(-1, N_TIME - len(expected))
    assert np.all(np.isfinite(draws))
    keep = ~improper
    z_mean = (draws.mean(0) - f8[keep]) / np.sqrt(Q8[keep] / len(draws))
    z_var = (draws.var(0) - Q8[keep]) / (Q8[keep] * np.sqrt(2.0 / len(draws)))
    assert np.abs(z_mean).max() < 4.5
    assert np.abs(z_var).max() < 4.5


def test_residuals_with_a_rectangular_initial_factor_are_the_dense_ones():
    L0 = np.array([[1.0], [0.5]])
    F, G, W = np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 0.8]]), np.diag([0.2, 0.1])
    y = np.array([1.3, 0.5, np.nan, 1.2, 0.7, 0.9])
    with pm.Model() as model:
        dlm.DLM("y", dlm.StateSpace(F, G, W, m0=[1.0, 0.0], C0_sqrt=L0), sigma_obs=0.5,
                observed=y)  # fmt: skip
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({}, 1, 2)})
    z = dlm.posterior_residuals(idata, model, progressbar=False)["y"].values[0, 1]
    ref = dense_filtered(F, G, W, 0.25 * np.eye(1), [1.0, 0.0], L0 @ L0.T, y)
    expected = (y - ref.forecast_mean[:, 0]) / np.sqrt(ref.forecast_cov[:, 0, 0])
    np.testing.assert_allclose(z, expected, rtol=1e-10)
