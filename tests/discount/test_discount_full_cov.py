r"""A discounted DLM with a full observation covariance: the kernel on decorrelated data.

The log-density of a bivariate series y_t = F θ_t + v_t, v_t ~ N(0, V) with V full, under a
local linear trend discounted by δ (R_t = P_t / δ) is run by the discounted kernel on
L_t^{-1} y_t with L_t^{-1} F and unit noise (``canonical.decorrelate``). Oracle, written here:
the W_t = (1/δ - 1) G C_{t-1} G' of West & Harrison's covariance recursion in matrix form
(all observed components of a step at once, ``np.linalg.solve``), then the joint Gaussian of
every observed value as one dense vector (``scipy.stats.multivariate_normal``), with a
partially missing step and a fully missing one. The gradients in δ and in the correlation
against central differences of that oracle.

The state draws of ``sample_states`` (the kernels' FFBS on the same decorrelated data)
against the dense conditional of θ_{1:T} | y, and the one-step terms it stores against the
dense log-likelihood. In the space of the observations (the model's F and V beside the
kernel's decorrelated inputs): the one-step predictive of every component, missing ones
included, against the dense conditional of y_t | y_{1:t-1} (behind ``kind="one_step"``
replicates and ``posterior_residuals``); the forecast from the end and from an origin
inside the sample (a step there is partially missing) against West & Harrison's held-noise
forecast from the dense θ_T | y; the smoothed replicates by their Monte Carlo moments;
``kalman_filter`` and ``kalman_smoother`` (log-likelihood, one-step moments, filtered and
smoothed states) against the same dense conditionals.

Altered on purpose (by hand, not kept): without the log-Jacobian the value is off by 4.0;
with the original y beside the decorrelated F by 20.5; the stored one-step terms without
each step's log-Jacobian by 4.0; the one-step moments with the kernel's (decorrelated) F
and unit V: off by 3.8; the forecast's observations left in the decorrelated space (without
``L y'``): mean off by 4.8 from the end, 1.0 from the origin; the origin's future from the
kernel's in-sample F (decorrelated with the data's missing pattern) and unit V: mean off by
0.85; the smoothed replicates' noise at the kernel's unit variance: covariance z = 19.4;
``kalman_filter``'s log-likelihood without the log-Jacobian: off by 3.96, its one-step
moments from the kernel's F: means off by up to 1.0.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.linalg
import scipy.stats
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.postprocess.discount_kernel_draws import (
    chunk_inputs,
    kernel_paths,
    kernel_system,
    lay_out,
)
from pymc_dlm.postprocess.discount_kernel_forecast import (
    forecast_paths,
    kernel_forecast_function,
    split_at_origin,
)
from pymc_dlm.postprocess.discount_kernel_predictive import kernel_one_step
from pymc_dlm.postprocess.future_inputs import future_params
from pymc_dlm.postprocess.posterior import dlm_targets
from tests.support.fixed_posterior import fixed_posterior

T = 15
F = np.array([[1.0, 0.0], [1.0, 1.0]])
G = np.array([[1.0, 1.0], [0.0, 1.0]])
M0 = np.array([1.0, 0.5])
C0 = np.array([[2.0, 0.3], [0.3, 1.0]])


def _series():
    rng = np.random.default_rng(20261207)
    level = np.cumsum(0.5 + rng.normal(0.0, 0.3, T))
    y = np.stack([level, level + 0.5], axis=1) + rng.normal(0.0, 0.7, (T, 2))
    y[4, 1] = np.nan
    y[9] = np.nan
    return y


def _cov(rho):
    return np.array([[1.0, rho], [rho, 2.0]])


def _joint(delta, rho, y):
    """Z = (θ_0, w_1..w_T) ~ N(z_mean, z_cov), θ = A z (stacked), every y = By z + v."""
    T = len(y)
    V = _cov(rho)
    C, Ws = C0, []
    for t in range(T):
        P = G @ C @ G.T
        W = (1.0 / delta - 1.0) * P
        Ws.append(W)
        R = P + W
        o = ~np.isnan(y[t])
        if o.any():
            Fo = F[o]
            Q = Fo @ R @ Fo.T + V[np.ix_(o, o)]
            K = np.linalg.solve(Q, Fo @ R).T
            C = R - K @ Fo @ R
        else:
            C = R
    # theta_t = G^t theta_0 + sum_{j<=t} G^{t-j} w_j
    n = 2
    A = np.zeros((T * n, n * (T + 1)))
    for t in range(T):
        A[t * n : (t + 1) * n, :n] = np.linalg.matrix_power(G, t + 1)
        for j in range(t + 1):
            A[t * n : (t + 1) * n, n * (j + 1) : n * (j + 2)] = np.linalg.matrix_power(G, t - j)
    z_mean = np.concatenate([M0, np.zeros(n * T)])
    z_cov = scipy.linalg.block_diag(C0, *Ws)
    By = scipy.linalg.block_diag(*[F] * T) @ A
    keep = ~np.isnan(y.ravel())
    S_yy = (By @ z_cov @ By.T + scipy.linalg.block_diag(*[V] * T))[np.ix_(keep, keep)]
    return A, z_mean, z_cov, By[keep], S_yy, y.ravel()[keep]


def oracle_one_step(delta, rho, y):
    """Mean (T, 2) and covariance (T, 2, 2) of y_t | y_{1:t-1}, every component of y_t."""
    A, z_mean, z_cov, _, _, _ = _joint(delta, rho, y)
    By = scipy.linalg.block_diag(*[F] * T) @ A
    mean = By @ z_mean
    S = By @ z_cov @ By.T + scipy.linalg.block_diag(*[_cov(rho)] * T)
    flat = y.ravel()
    f, Q = np.empty((T, 2)), np.empty((T, 2, 2))
    for t in range(T):
        past = np.flatnonzero(~np.isnan(flat[: 2 * t]))
        now = np.arange(2 * t, 2 * t + 2)
        gain = np.linalg.solve(S[np.ix_(past, past)], S[np.ix_(past, now)]).T
        f[t] = mean[now] + gain @ (flat[past] - mean[past])
        Q[t] = S[np.ix_(now, now)] - gain @ S[np.ix_(past, now)]
    return f, Q


def oracle_forecast(delta, rho, y, origin, H):
    """Mean (2H,) and covariance of y_{k+1..k+H} | y_{1:k}, W_{k+j} = (1/δ - 1) G C_k G'."""
    m, C = oracle_states(delta, rho, y[:origin], n_time=origin)
    m, C = m[-1], C[-2:, -2:]
    W = (1.0 / delta - 1.0) * G @ C @ G.T
    # (theta_{k+1..k+H}) = B (theta_k, w_1..w_H); y = (I_H ⊗ F) theta + v
    B = np.zeros((2 * H, 2 * (H + 1)))
    for j in range(H):
        B[2 * j : 2 * j + 2, :2] = np.linalg.matrix_power(G, j + 1)
        for i in range(j + 1):
            B[2 * j : 2 * j + 2, 2 * (i + 1) : 2 * (i + 2)] = np.linalg.matrix_power(G, j - i)
    Fy = scipy.linalg.block_diag(*[F] * H) @ B
    cov_u = scipy.linalg.block_diag(C, *[W] * H)
    mean = Fy @ np.concatenate([m, np.zeros(2 * H)])
    return mean, Fy @ cov_u @ Fy.T + scipy.linalg.block_diag(*[_cov(rho)] * H)


def oracle_loglik(delta, rho, y):
    """The dense joint Gaussian of the observed values, with the recursion's W_t."""
    _, z_mean, _, By, S_yy, y_obs = _joint(delta, rho, y)
    return scipy.stats.multivariate_normal(By @ z_mean, S_yy).logpdf(y_obs)


def oracle_states(delta, rho, y, n_time=T):
    """Mean (T, n) and covariance (T n, T n) of θ_{1:T} | y: the dense conditional."""
    A, z_mean, z_cov, By, S_yy, y_obs = _joint(delta, rho, y)
    S_ty = A @ z_cov @ By.T
    gain = np.linalg.solve(S_yy, S_ty.T).T
    mean = A @ z_mean + gain @ (y_obs - By @ z_mean)
    cov = A @ z_cov @ A.T - gain @ S_ty.T
    return mean.reshape(n_time, 2), 0.5 * (cov + cov.T)


@pytest.fixture(scope="module")
def compiled():
    y = _series()
    delta, rho = pt.dscalar("delta"), pt.dscalar("rho")
    ss = dlm.StateSpace(F, G, m0=M0, C0=C0, discount=delta)
    cov = pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 2.0])])
    rv = dlm.DLM.dist(ss, obs_cov=cov, steps=T)
    logp = pm.logp(rv, y)
    fn = pytensor.function([delta, rho], [logp, *pytensor.grad(logp, [delta, rho])])
    return fn, y


def test_value_and_gradient_against_the_dense_gaussian(compiled):
    fn, y = compiled
    names = {type(node.op).__name__ for node in fn.maker.fgraph.apply_nodes}
    assert any("Discount" in name for name in names), names  # the kernel's node, no scan
    assert not any("Scan" in name for name in names), names
    h = 1e-6
    for delta, rho in [(0.8, 0.4), (0.95, -0.6)]:
        value, g_delta, g_rho = fn(delta, rho)
        np.testing.assert_allclose(value, oracle_loglik(delta, rho, y), rtol=1e-10)
        num_delta = (oracle_loglik(delta + h, rho, y) - oracle_loglik(delta - h, rho, y)) / (2 * h)
        num_rho = (oracle_loglik(delta, rho + h, y) - oracle_loglik(delta, rho - h, y)) / (2 * h)
        np.testing.assert_allclose([g_delta, g_rho], [num_delta, num_rho], rtol=1e-6)


def test_a_covariance_that_is_not_positive_definite_gives_minus_infinity(compiled):
    fn, _ = compiled
    assert fn(0.8, 2.0)[0] == -np.inf


def test_state_draws_and_terms_are_the_dense_conditional():
    """The kernels' FFBS on the decorrelated data over ε = 0 and every unit vector.

    The path is affine in its normal inputs: the ε = 0 path is the smoothed mean, the changes
    by the unit vectors are the columns of a factor of the joint covariance. The one-step
    terms (with the decorrelation's log-Jacobian) sum to the dense log-likelihood.
    """
    y = _series()
    with pm.Model() as model:
        rho = pm.Uniform("rho", -0.9, 0.9)
        cov = pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 2.0])])
        dlm.DLM("y", dlm.StateSpace(F, G, m0=M0, C0=C0, discount=0.8), obs_cov=cov, observed=y)
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"rho": 0.4}, 1, 1)})
    (target,) = dlm_targets(model, idata, None, allow_discounted=True)
    system = kernel_system(target)
    M = 2 * T + 1
    chunk = chunk_inputs(target, system, [np.full(M, 0.4)], M)
    eps = np.concatenate([np.zeros((1, 2 * T)), np.eye(2 * T)]).reshape(M, T, 2)
    res = kernel_paths(chunk.inp, chunk.dinp, False, chunk.diffuse, np.stack([eps, eps]), None)
    mean, cov = oracle_states(0.8, 0.4, y)
    cols = (res.path[1:] - res.path[0]).reshape(2 * T, 2 * T)
    np.testing.assert_allclose(res.path[0], mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cols.T @ cols, cov, rtol=1e-9, atol=1e-11)
    # the one-step terms sample_states stores: the kernel's, with each step's log-Jacobian
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"rho": 0.4}, 1, 3)})
    out = dlm.sample_states(idata, model, log_likelihood=True, random_seed=1, progressbar=False)
    terms = out["log_likelihood"]["y"].values.sum(-1)
    np.testing.assert_allclose(terms, oracle_loglik(0.8, 0.4, y), rtol=1e-10)
    assert out["posterior"]["y_smoothed_state"].shape == (1, 3, T, 2)


@pytest.fixture(scope="module")
def rho_model():
    y = _series()
    with pm.Model() as model:
        rho = pm.Uniform("rho", -0.9, 0.9)
        cov = pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 2.0])])
        dlm.DLM("y", dlm.StateSpace(F, G, m0=M0, C0=C0, discount=0.8), obs_cov=cov, observed=y)
    return model, y


def test_one_step_predictive_is_the_dense_conditional_in_the_space_of_y(rho_model):
    model, y = rho_model
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"rho": 0.4}, 1, 2)})
    (target,) = dlm_targets(model, idata, None, allow_discounted=True)
    f, Q, dof, improper = kernel_one_step(target, kernel_system(target), [np.full(2, 0.4)], 2,
                                          10, False)  # fmt: skip
    f_ref, Q_ref = oracle_one_step(0.8, 0.4, y)
    np.testing.assert_allclose(f[1], f_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(Q[1], Q_ref, rtol=1e-10, atol=1e-10)
    assert not improper.any() and np.all(np.isinf(dof))
    z = dlm.posterior_residuals(idata, model, progressbar=False)["y"].values[0, 0]
    L = np.linalg.cholesky(Q_ref[0])
    np.testing.assert_allclose(z[0], np.linalg.solve(L, y[0] - f_ref[0]), rtol=1e-9)
    assert np.isnan(z[9]).all() and np.isnan(z[4, 1])


@pytest.mark.parametrize("origin", [None, 3])
def test_forecast_is_the_held_noise_forecast_of_the_dense_posterior(rho_model, origin):
    """From the end, and from inside the sample (y_5 partially missing, after the origin)."""
    model, y = rho_model
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"rho": 0.4}, 1, 1)})
    (target,) = dlm_targets(model, idata, None, allow_discounted=True)
    H = 3
    future = future_params(model, target, None, H) if origin is None else None
    fn, batched = kernel_forecast_function(target, future, H)
    width = 2 + H * 4
    chunk = lay_out(target, fn(np.full(width + 1, 0.4)), batched, width + 1)
    inp, ahead = split_at_origin(chunk, origin, H, target.op.time_varying)
    eps = np.concatenate([np.zeros((1, width)), np.eye(width)])
    y_f, _ = forecast_paths(inp, chunk.dinp, ahead, False, chunk.diffuse, eps, None)
    draws = y_f.reshape(width + 1, -1)
    k = T if origin is None else origin
    mean, cov = oracle_forecast(0.8, 0.4, y, k, H)
    cols = draws[1:] - draws[0]
    np.testing.assert_allclose(draws[0], mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(cols.T @ cols, cov, rtol=1e-9, atol=1e-11)


def test_smoothed_replicates_carry_the_full_covariance(rho_model):
    """Monte Carlo: replicates at t = 2 have mean F s_t and covariance F S_t F' + V."""
    model, y = rho_model
    N = 4000
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"rho": 0.4}, 1, N)})
    pp = dlm.posterior_predictive(idata, model, random_seed=3, progressbar=False)
    rep = pp["posterior_predictive"]["y"].values[0, :, 2]
    mean, cov = oracle_states(0.8, 0.4, y)
    m_y, S_y = F @ mean[2], F @ cov[4:6, 4:6] @ F.T + _cov(0.4)
    z_mean = (rep.mean(0) - m_y) / np.sqrt(np.diag(S_y) / N)
    emp = np.cov(rep.T)
    se = np.sqrt((S_y * S_y + np.outer(np.diag(S_y), np.diag(S_y))) / N)
    assert np.abs(z_mean).max() < 4.5
    assert np.abs((emp - S_y) / se).max() < 4.5, np.abs((emp - S_y) / se).max()


def test_kalman_filter_and_smoother_are_the_dense_conditionals():
    y = _series()
    ss = dlm.StateSpace(F, G, m0=M0, C0=C0, discount=0.8)
    res = dlm.kalman_smoother(ss, y, obs_cov=_cov(0.4))
    np.testing.assert_allclose(float(res["loglik"]), oracle_loglik(0.8, 0.4, y), rtol=1e-10)
    f, Q = oracle_one_step(0.8, 0.4, y)
    np.testing.assert_allclose(res["forecast_mean"].values, f, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res["forecast_cov"].values, Q, rtol=1e-10, atol=1e-10)
    mean, cov = oracle_states(0.8, 0.4, y)
    blocks = np.array([cov[2 * t : 2 * t + 2, 2 * t : 2 * t + 2] for t in range(T)])
    np.testing.assert_allclose(res["smoothed_mean"].values, mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(res["smoothed_cov"].values, blocks, rtol=1e-9, atol=1e-11)
    m_T, C_T = oracle_states(0.8, 0.4, y[:10], n_time=10)
    np.testing.assert_allclose(res["filtered_mean"].values[9], m_T[-1], rtol=1e-10)
    np.testing.assert_allclose(res["filtered_cov"].values[9], C_T[-2:, -2:], rtol=1e-9)
