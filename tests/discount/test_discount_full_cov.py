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
dense log-likelihood.

Altered on purpose (by hand, not kept): without the log-Jacobian the value is off by 4.0;
with the original y beside the decorrelated F by 20.5; the stored one-step terms without
each step's log-Jacobian by 4.0.
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
from pymc_dlm.postprocess.discount_kernel_draws import chunk_inputs, kernel_paths, kernel_system
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


def oracle_loglik(delta, rho, y):
    """The dense joint Gaussian of the observed values, with the recursion's W_t."""
    _, z_mean, _, By, S_yy, y_obs = _joint(delta, rho, y)
    return scipy.stats.multivariate_normal(By @ z_mean, S_yy).logpdf(y_obs)


def oracle_states(delta, rho, y):
    """Mean (T, n) and covariance (T n, T n) of θ_{1:T} | y: the dense conditional."""
    A, z_mean, z_cov, By, S_yy, y_obs = _joint(delta, rho, y)
    S_ty = A @ z_cov @ By.T
    gain = np.linalg.solve(S_yy, S_ty.T).T
    mean = A @ z_mean + gain @ (y_obs - By @ z_mean)
    cov = A @ z_cov @ A.T - gain @ S_ty.T
    return mean.reshape(T, 2), 0.5 * (cov + cov.T)


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
    assert kernel_system(target) is None  # the predictive checks keep the scans
    system = kernel_system(target, full_cov=True)
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
