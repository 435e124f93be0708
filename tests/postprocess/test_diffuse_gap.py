"""Fixed-W models whose diffuse period is broken by a missing value, against κ-limits.

``LocalLinearTrend(0.3, 0.1) + Seasonal(12, 0.2)``, exact diffuse start (13 diffuse states),
``sigma_obs`` = 1.2, T = 36, y_9 missing. The season of the missing value stays diffuse
until it is observed again at t = 21 (index 20); the observations between see only the
other seasons, and the slope is pinned down while that season is not.

Oracle: the covariance filter (dense numpy, written here) with the proper prior κI on the
diffuse states. Where the one-step predictive is improper its variance grows with κ (×100
from κ = 1e6 to 1e8: t = 0..12 and 20); elsewhere it converges (ratio below 1.01), and its
moments at κ = 1e8 are the exact diffuse ones to about 1e-7. The same holds for the
filtered variance of each state: a filtered draw is NaN exactly where it grows with κ. The
one-step terms stored for LOO are those of the proper times, equal to the κ-limit's
log densities.

Figures (2026-12-07): before the replicates were drawn from N(f_t, Q_t), they pushed the
filtered draw of θ_{t-1} through G_t and F_t; that draw is NaN in every state the missing
season's direction touches, so t = 13..19 were left out too (``dropped_times`` 0..20).
And a filtered draw was NaN where the state's row of the diffuse factor was not exactly
zero: the slope at t = 12..19, pinned down, was NaN (its row held round-off). The terms
stored for LOO left out every t after a filtered state with a NaN, so t = 13..19 too
(``excluded_times`` 0..20).

A ``C0_sqrt`` (n, k) with k < n: the residuals against the dense filter (``dense_filtered``
of ``tests.support.oracles``); they failed with a shape error when they ran the filter scan,
which now squares the initial factor (``tests/kalman/test_univariate.py``).
"""

import numpy as np
import pymc as pm
import pytensor.tensor as pt
import scipy.stats
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.kalman.prepare import FilterResult
from pymc_dlm.kalman.sampler import filtered_sample
from tests.support.discount_cases import series
from tests.support.discount_oracles import combine, poly_block, seasonal_block
from tests.support.fixed_posterior import fixed_posterior
from tests.support.oracles import dense_filtered

N_TIME = 36
V = 1.2**2
Y = np.concatenate([series(62, (8,)), series(63), series(64)])


def _kappa_filter(kappa):
    """f_t, Q_t (T,) and m_t, C_t (T, n), (T, n, n) with the prior κI on the diffuse states."""
    system = combine(poly_block(2, sigma=[0.3, 0.1], n_time=N_TIME),
                     seasonal_block(12, sigma=0.2, n_time=N_TIME))  # fmt: skip
    m, C = system.m0, system.C0 + kappa * np.diag(system.diffuse.astype(float))
    f, Q, ms, Cs = [], [], [], []
    for t in range(N_TIME):
        a, R = system.G @ m, system.G @ C @ system.G.T + system.W
        RF = R @ system.F[t]
        f.append(system.F[t] @ a)
        Q.append(system.F[t] @ RF + V)
        if np.isnan(Y[t]):
            m, C = a, R
        else:
            m, C = a + RF * (Y[t] - f[-1]) / Q[-1], R - np.outer(RF, RF) / Q[-1]
        ms.append(m)
        Cs.append(C)
    return np.array(f), np.array(Q), np.array(ms), np.array(Cs)


def _model():
    with pm.Model() as model:
        trend = dlm.LocalLinearTrend(0.3, 0.1)
        dlm.DLM("y", trend + dlm.Seasonal(12, 0.2), observed=Y, sigma_obs=V**0.5)
    return model


def test_one_step_replicates_keep_every_proper_time_with_the_exact_moments():
    _, Q6, _, _ = _kappa_filter(1e6)
    f8, Q8, _, _ = _kappa_filter(1e8)
    ratio = Q8 / Q6
    assert np.all((ratio > 50.0) | (ratio < 1.01))
    improper = ratio > 50.0
    assert np.flatnonzero(improper).tolist() == [*range(13), 20]
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({}, 1, 4000)})
    pp = dlm.posterior_predictive(idata, _model(), kind="one_step", random_seed=5,
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


def test_filtered_draws_are_nan_exactly_where_the_kappa_limit_diverges():
    """The slope is pinned down at t = 12..19 while a season is not: its draws are finite."""
    _, _, _, C6 = _kappa_filter(1e6)
    _, _, m8, C8 = _kappa_filter(1e8)
    v6, v8 = np.diagonal(C6, axis1=1, axis2=2), np.diagonal(C8, axis1=1, axis2=2)
    ratio = v8 / v6
    assert np.all((ratio > 50.0) | (ratio < 1.01))
    diffuse = ratio > 50.0
    assert not diffuse[12:20, 1].any() and diffuse[12:20, [0, *range(2, 13)]].all()
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({}, 1, 4000)})
    out = dlm.sample_states(idata, _model(), random_seed=6, progressbar=False)
    draws = out["posterior"]["y_filtered_state"].values[0]
    np.testing.assert_array_equal(np.isnan(draws).any(0), diffuse)
    slope = draws[:, 12:20, 1]
    z_mean = (slope.mean(0) - m8[12:20, 1]) / np.sqrt(v8[12:20, 1] / len(slope))
    z_var = (slope.var(0) - v8[12:20, 1]) / (v8[12:20, 1] * np.sqrt(2.0 / len(slope)))
    assert np.abs(z_mean).max() < 4.5 and np.abs(z_var).max() < 4.5


def test_the_scans_filtered_draws_take_the_rank_test():
    """Round-off (1e-17) in a row of the diffuse factor leaves that state's draw finite."""
    B = np.zeros((1, 3, 1))
    B[0, :, 0] = [0.8, 1e-17, -0.6]
    eps = np.ones((1, 3))
    res = FilterResult(  # one time step, three states
        filtered_mean=pt.as_tensor(np.zeros((1, 3))),
        filtered_factor=pt.as_tensor(np.eye(3)[None]),
        loglik=None,
        loglik_t=None,
        filtered_diffuse=pt.as_tensor(B),
    )
    draw = filtered_sample(res, pt.as_tensor(eps)).eval()
    np.testing.assert_array_equal(np.isnan(draw), [[True, False, True]])


def test_loo_terms_are_the_proper_times_with_the_kappa_limit_densities():
    _, Q6, _, _ = _kappa_filter(1e6)
    f8, Q8, _, _ = _kappa_filter(1e8)
    improper = Q8 / Q6 > 50.0
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({}, 1, 2)})
    out = dlm.sample_states(idata, _model(), log_likelihood=True, random_seed=7,
                            progressbar=False)  # fmt: skip
    ll = out["log_likelihood"]["y"]
    assert ll.attrs["excluded_times"] == [str(t) for t in np.flatnonzero(improper)]
    keep = ~improper
    expected = scipy.stats.norm(f8[keep], np.sqrt(Q8[keep])).logpdf(Y[keep])
    np.testing.assert_allclose(ll.values[0, 0], expected, rtol=1e-6)
