"""The fused FFBS kernel (``pymc_dlm.kalman.fused.states``) against independent oracles.

The kernel's draws are affine in its standard normal inputs: path = mu + A eps. With eps = 0
the smoothed path is the smoothed mean (the backward recursion of conditional means is the
RTS smoother's), and A A' is the covariance of the whole path. Both are computed exactly, by
one kernel call per entry of eps, and compared with

* the dense joint Gaussian of ``tests/support/oracles.py`` (proper priors: the full joint posterior
  covariance of theta_1:T, not only its marginals);
* statsmodels' exact diffuse smoother (diffuse starts: means and marginal covariances).

The filtered draws are checked the same way against the filtered moments, and the per-step
log-likelihoods against statsmodels' ``llf_obs``.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

import pymc_dlm as dlm
from pymc_dlm.kalman.fused.canonical import canonical_inputs
from pymc_dlm.kalman.fused.records import ForecastOutputs, Future, Inputs
from pymc_dlm.kalman.fused.states import ffbs_kernel, forecast_into
from pymc_dlm.model.statespace import system_matrices
from tests.support.oracles import (
    _condition,
    dense_gaussian,
    dense_loglik,
    statsmodels_diffuse,
    statsmodels_filter,
)

PY = Mode(linker="py", optimizer="fast_compile")


def _inputs(component, y, sigma_obs):
    """The kernel's inputs (numpy) for a univariate series, and the diffuse log-Jacobian."""
    ss = dlm.as_statespace(component)
    obs = pt.as_tensor_variable(np.atleast_1d(np.asarray(sigma_obs, dtype=float)))
    system = system_matrices(ss, obs, obs_diag=True)
    y2 = np.asarray(y, dtype=float)
    y2 = y2[:, None] if y2.ndim == 1 else y2
    canon, batch, log_jac = canonical_inputs(system, pt.as_tensor_variable(y2))
    out = pytensor.function([], [*canon, pt.as_tensor_variable(log_jac)], mode=PY)()
    return [np.ascontiguousarray(x, dtype=float) for x in out[:-1]], float(np.sum(out[-1]))


def _affine(inputs, which):
    """(mu, A) of the kernel's filtered (which=0) or smoothed (which=1) output, flattened."""
    _, T, _ = inputs[0].shape
    n = inputs[2].shape[-1]
    zero = np.zeros((1, T, n))
    outs = ffbs_kernel(Inputs(*inputs), zero, zero)
    mu = outs[which][0].reshape(-1)
    A = np.empty((T * n, T * n))
    for j in range(T * n):
        e = np.zeros(T * n)
        e[j] = 1.0
        e = e.reshape(1, T, n)
        args = (e, zero) if which == 0 else (zero, e)
        A[:, j] = ffbs_kernel(Inputs(*inputs), *args)[which][0].reshape(-1) - mu
    return mu, A, outs[2][0]


def _series(T, seed, missing=()):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    y = 5 + 0.2 * t + 1.5 * np.sin(2 * np.pi * t / 4) + np.cumsum(rng.normal(0, 0.4, T))
    y = y + rng.normal(0, 0.5, T)
    y[list(missing)] = np.nan
    return y


# Correlated level/slope noise: W is not diagonal, so the backward step runs on the augmented
# state (theta_t, w_t+1). The trend+seasonal model has a diagonal, singular W.
W_FULL = np.array([[0.30, 0.08], [0.08, 0.05]])
PROPER = {
    "correlated_trend": lambda: dlm.StateSpace(
        np.array([[1.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 1.0]]), W_FULL, [1.0, 0.0], 4.0
    ),
    "trend+seasonal": lambda: (
        dlm.LocalLinearTrend(0.5, 0.1, m0=[1.0, 0.0], C0=9.0) + dlm.Seasonal(4, 0.3, C0=4.0)
    ),
}


@pytest.mark.parametrize("name", list(PROPER))
def test_proper_prior_path_is_the_joint_posterior(name):
    """The map eps -> path is exactly the joint posterior of theta_1:T (dense joint Gaussian)."""
    comp = PROPER[name]()
    T, sigma_obs = 12, 0.7
    y = _series(T, 3, missing=(2, 7))
    inputs, _ = _inputs(comp, y, sigma_obs)
    n = inputs[2].shape[-1]
    F, G, W = inputs[1][0, 0], inputs[2][0, 0], inputs[3][0, 0]
    m0, L0 = inputs[5][0], inputs[6][0]
    args = (F, G, W @ W.T, np.array([[sigma_obs**2]]), m0, L0 @ L0.T)
    J = dense_gaussian(*args, T)
    mask = ~np.isnan(y)[:, None]
    mean, cov = _condition(J, np.arange(T * n), np.nan_to_num(y)[:, None], mask)

    mu, A, ll_t = _affine(inputs, 1)
    scale = np.max(np.abs(mean))
    np.testing.assert_allclose(mu, mean, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(A @ A.T, cov, rtol=0, atol=1e-10 * np.max(np.diag(cov)))
    assert np.sum(ll_t) == pytest.approx(dense_loglik(*args, y), rel=1e-11)

    ref = statsmodels_filter(*args, y, smooth=False)
    mu_f, A_f, _ = _affine(inputs, 0)
    np.testing.assert_allclose(mu_f.reshape(T, n), ref.filtered_mean, rtol=1e-10, atol=1e-10)
    cov_f = np.array([(A_f @ A_f.T)[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(T)])
    np.testing.assert_allclose(cov_f, ref.filtered_cov, rtol=1e-9, atol=1e-10)


DIFFUSE = {
    "trend+seasonal": (lambda: dlm.LocalLinearTrend(0.5, 0.1) + dlm.Seasonal(4, 0.3), None),
    "correlated_trend": (
        lambda: dlm.StateSpace(
            np.array([[1.0, 0.0]]), np.array([[1.0, 1.0], [0.0, 1.0]]), W_FULL, 0.0, "diffuse"
        ),
        None,
    ),
    "level+regression, one proper block": (
        lambda: dlm.LocalLevel(0.4) + dlm.Regression(np.linspace(-1, 1, 16)[:, None], C0=2.0),
        [(0, 1, None), (1, 2, "proper")],
    ),
}


@pytest.mark.parametrize("name", list(DIFFUSE))
def test_diffuse_start_matches_statsmodels_smoother(name):
    """Through the diffuse period (missing values inside it): exact diffuse smoothed moments."""
    build, blocks = DIFFUSE[name]
    comp = build()
    T, sigma_obs = 16, 0.6
    y = _series(T, 5, missing=(1, 9))
    inputs, log_jac = _inputs(comp, y, sigma_obs)
    n = inputs[2].shape[-1]
    ss = dlm.as_statespace(comp)
    F, G, Wf = (np.asarray(x) for x in pytensor.function([], [ss.F, ss.G, ss.W], mode=PY)())
    if blocks is not None:
        # the proper block's (a1, P1): theta_0 ~ N(0, C0) through G and W of step 1
        blocks = [
            (a, b, None) if kind is None else (a, b, (np.zeros(b - a), 2.0 + Wf[a:b, a:b]))
            for a, b, kind in blocks
        ]
    ref = statsmodels_diffuse(F, G, Wf, np.array([[sigma_obs**2]]), y, blocks)

    mu, A, ll_t = _affine(inputs, 1)
    cov = A @ A.T
    marg = np.array([cov[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(T)])
    scale = np.max(np.abs(ref["smoothed_mean"]))
    np.testing.assert_allclose(mu.reshape(T, n), ref["smoothed_mean"], atol=1e-9 * scale)
    np.testing.assert_allclose(marg, ref["smoothed_cov"], atol=1e-9 * np.max(marg))
    assert np.sum(ll_t) + log_jac == pytest.approx(ref["loglik"], rel=1e-10)

    # Filtered draws: NaN exactly where the state is still diffuse, else N(m_t, P_t).
    mu_f, A_f, _ = _affine(inputs, 0)
    mu_f = mu_f.reshape(T, n)
    improper = np.isnan(mu_f)
    k = ref["nobs_diffuse"]  # steps with a diffuse prediction; the last one ends proper
    assert improper[: k - 1].any(axis=1).all() and not improper[k - 1 :].any()
    done = ~improper.any(axis=1)
    np.testing.assert_allclose(mu_f[done], ref["filtered_mean"][done], atol=1e-9 * scale)


def test_batch_members_and_time_varying_regression():
    """Two batch members with a time-varying F each get their own exact smoothed mean."""
    T = 10
    X = np.linspace(-1.0, 2.0, T)[:, None]
    ys = np.stack([_series(T, 7, (4,)), _series(T, 8)])
    comp = dlm.LocalLevel(0.3, C0=5.0) + dlm.Regression(X, sigma=0.2, C0=3.0)
    inputs, _ = _inputs(comp, ys[:, :, None], 0.5)
    assert inputs[0].shape[0] == 2 and inputs[1].shape[1] == T
    zero = np.zeros((2, T, 2))
    _, path, _, _ = ffbs_kernel(Inputs(*inputs), zero, zero)
    for b in range(2):
        F = np.concatenate([np.ones((T, 1, 1)), X[:, None, :]], axis=-1)
        args = (F, np.eye(2), np.diag([0.09, 0.04]), np.array([[0.25]]), np.zeros(2))
        J = dense_gaussian(*args, np.diag([5.0, 3.0]), T)
        mask = ~np.isnan(ys[b])[:, None]
        mean, _ = _condition(J, np.arange(T * 2), np.nan_to_num(ys[b])[:, None], mask)
        np.testing.assert_allclose(path[b].reshape(-1), mean, atol=1e-10 * np.max(np.abs(mean)))


def test_nonpositive_forecast_variance_gives_nan_draws():
    """A member whose forecast variance is zero (no noise, no prior) gets NaN, not garbage."""
    inputs, _ = _inputs(dlm.LocalLevel(0.3, C0=1.0), np.array([1.0, 2.0, 3.0]), 0.5)
    for k in (3, 4, 6):  # W, the observation sd and the prior factor: all zero
        inputs[k] = np.zeros_like(inputs[k])
    zero = np.zeros((1, 3, 1))
    filt, path, _, _ = ffbs_kernel(Inputs(*inputs), zero, zero)
    assert np.isnan(filt).all() and np.isnan(path).all()


def _forecast_affine(inputs, ahead, H):
    """(mu, A) of the forecast kernel's (theta_T+1:T+H, y_T+1:T+H), flattened time-major."""
    n, k, p = inputs[2].shape[-1], ahead[2].shape[-1], inputs[0].shape[-1]
    m = n + H * (k + p)

    def run(eps):
        y_out, theta = np.empty((1, H, p)), np.empty((1, H, n))
        status = np.empty(1, dtype=np.int64)
        out = ForecastOutputs(y=y_out, theta=theta, status=status)
        forecast_into(Inputs(*inputs), Future(*ahead), eps[None], out, 0, 1)
        return np.concatenate([theta.reshape(-1), y_out.reshape(-1)])

    mu = run(np.zeros(m))
    A = np.stack([run(np.eye(m)[j]) - mu for j in range(m)], axis=1)
    return mu, A


@pytest.mark.parametrize("name", list(PROPER))
def test_forecast_is_the_predictive_distribution(name):
    """Future states and observations: exact moments of p(theta, y at T+1..T+H | y_1:T)."""
    comp = PROPER[name]()
    T, H, sigma_obs = 12, 4, 0.7
    y = _series(T, 3, missing=(2, 11))
    inputs, _ = _inputs(comp, y, sigma_obs)
    n = inputs[2].shape[-1]
    ahead = [np.ascontiguousarray(x) for x in inputs[1:5]]  # time-invariant: same matrices
    F, G, W = inputs[1][0, 0], inputs[2][0, 0], inputs[3][0, 0]
    m0, L0 = inputs[5][0], inputs[6][0]
    J = dense_gaussian(F, G, W @ W.T, np.array([[sigma_obs**2]]), m0, L0 @ L0.T, T + H)
    full = np.concatenate([y, np.full(H, np.nan)])
    idx = np.concatenate(
        [np.concatenate([J.theta_index(t) for t in range(T, T + H)])]
        + [np.concatenate([J.y_index(t) for t in range(T, T + H)])]
    )
    mean, cov = _condition(J, idx, np.nan_to_num(full)[:, None], ~np.isnan(full)[:, None])
    mu, A = _forecast_affine(inputs, ahead, H)
    np.testing.assert_allclose(mu, mean, atol=1e-10 * np.max(np.abs(mean)))
    np.testing.assert_allclose(A @ A.T, cov, atol=1e-10 * np.max(np.diag(cov)))
    assert idx.size == H * (n + 1)


def test_forecast_after_a_diffuse_start_matches_statsmodels():
    """Default (diffuse) trend + seasonal: forecasts are statsmodels' predictions past T."""
    comp = dlm.LocalLinearTrend(0.5, 0.1) + dlm.Seasonal(4, 0.3)
    T, H, sigma_obs = 14, 3, 0.6
    y = _series(T, 5, missing=(1,))
    inputs, _ = _inputs(comp, y, sigma_obs)
    ahead = [np.ascontiguousarray(x) for x in inputs[1:5]]
    ss = dlm.as_statespace(comp)
    F, G, Wf = (np.asarray(x) for x in pytensor.function([], [ss.F, ss.G, ss.W], mode=PY)())
    ref = statsmodels_diffuse(
        F, G, Wf, np.array([[sigma_obs**2]]), np.concatenate([y, np.full(H, np.nan)])
    )
    n = G.shape[0]
    mu, A = _forecast_affine(inputs, ahead, H)
    cov = A @ A.T
    theta_mean = mu[: H * n].reshape(H, n)
    theta_cov = np.array([cov[h * n : (h + 1) * n, h * n : (h + 1) * n] for h in range(H)])
    scale = np.max(np.abs(theta_mean))
    np.testing.assert_allclose(theta_mean, ref["filtered_mean"][T:], atol=1e-9 * scale)
    np.testing.assert_allclose(theta_cov, ref["filtered_cov"][T:], atol=1e-9 * np.max(theta_cov))
    y_var = np.diag(cov)[H * n :]
    ref_y_var = np.einsum("pi,hij,pj->h", F, ref["filtered_cov"][T:], F) + sigma_obs**2
    np.testing.assert_allclose(y_var, ref_y_var, rtol=1e-9)


def test_kernels_and_scans_turn_the_same_normals_into_the_same_draws():
    """The two engines of ``sample_states``, fed the same standard normals, agree to round-off.

    Both factor every positive definite covariance by its lower Cholesky factor: the kernels
    directly, the scans through signed QR triangularizations. (A singular covariance, as with
    the seasonal's singular W, has many factors: there the engines give different draws from
    the same distribution, which the tests above check.)
    """
    name = "correlated_trend"
    from pymc_dlm.kalman.filter import filter_scan
    from pymc_dlm.kalman.sampler import backward_sample, filtered_sample

    y = _series(14, seed=5, missing=(3, 8))
    inputs, _ = _inputs(PROPER[name](), y, 0.6)
    T, n = 14, inputs[2].shape[-1]
    rng = np.random.default_rng(11)
    eps_f, eps_s = rng.normal(size=(1, T, n)), rng.normal(size=(1, T, n))
    filt_k, path_k, _, _ = ffbs_kernel(Inputs(*inputs), eps_f, eps_s)

    ss = dlm.as_statespace(PROPER[name]())
    system = system_matrices(ss, pt.as_tensor_variable(np.array([0.6])), obs_diag=True)
    res = filter_scan(system, pt.as_tensor_variable(y[:, None]), return_all=True)
    draws = [
        filtered_sample(res, pt.as_tensor_variable(eps_f[0])),
        backward_sample(res, system.G, system.W_sqrt, system.time_varying, eps_s[0]),
    ]
    filt_s, path_s = pytensor.function([], draws, mode=PY)()
    scale = np.max(np.abs(path_k))
    np.testing.assert_allclose(filt_k[0], filt_s, rtol=0, atol=1e-11 * scale)
    np.testing.assert_allclose(path_k[0], path_s, rtol=0, atol=1e-11 * scale)
