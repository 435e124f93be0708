"""Exact diffuse initialisation (C0="diffuse") against statsmodels' exact diffuse filter.

Oracles: statsmodels' ``MLEModel`` with ``ssm.initialize('diffuse')`` (or a mixed
``Initialization`` with diffuse and known blocks) and ``ssm.tolerance = 0``; the limit of
the proper-prior log-likelihood as C0 = kappa*I grows; Monte Carlo moments of FFBS draws
against the smoothed moments; ``verify_grad``.

Timing: our diffuse prior is on theta_0 (before y_1). With every state of a block diffuse and
G block diagonal, theta_1 = G theta_0 + w_1 is flat on that block, which is statsmodels'
``initialize('diffuse')`` on alpha_1 = theta_1 (P_inf = I, P_* = 0 on the block); proper
blocks keep a_1 = G m0, P_1 = G C0 G' + W ("known").
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.compile.mode import Mode

import pymc_dlm as dlm
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.sampler import backward_sample
from pymc_dlm.model.statespace import system_matrices
from tests.support.oracles import statsmodels_diffuse

PY = Mode(linker="py", optimizer="fast_compile")


def _matrices(model):
    ss = dlm.as_statespace(model)
    ev = pytensor.function([], [ss.F, ss.G, ss.W], mode=PY)
    return [np.asarray(x) for x in ev()]


def _compare(ds, ref, *, rtol=1e-8, diffuse_cov=True):
    scale = max(1.0, float(np.nanmax(np.abs(ref["smoothed_mean"]))))
    assert ds.loglik.item() == pytest.approx(ref["loglik"], rel=1e-10, abs=1e-9)
    for name in ("predicted_mean", "filtered_mean", "smoothed_mean"):
        np.testing.assert_allclose(ds[name].values, ref[name], rtol=rtol, atol=rtol * scale)
    for name in ("predicted_cov", "filtered_cov", "smoothed_cov"):
        np.testing.assert_allclose(ds[name].values, ref[name], rtol=rtol, atol=rtol * scale**0)
    if diffuse_cov:
        np.testing.assert_allclose(
            ds["predicted_diffuse_cov"].values, ref["predicted_diffuse_cov"], atol=1e-12
        )
    # the diffuse period (predicted P_inf nonzero) ends where statsmodels says it does
    active = np.any(ds["predicted_diffuse_cov"].values != 0, axis=(-2, -1))
    assert int(active.sum()) == ref["nobs_diffuse"]
    assert not active[ref["nobs_diffuse"] :].any()


def _series(T, seed, missing=()):
    rng = np.random.default_rng(seed)
    t = np.arange(T)
    y = 10 + 0.3 * t + 2 * np.sin(2 * np.pi * t / 4) + np.cumsum(rng.normal(0, 0.5, T))
    y = y + rng.normal(0, 0.8, T)
    y[list(missing)] = np.nan
    return y


CASES = {
    "level": lambda X: dlm.LocalLevel(0.6),
    "poly3": lambda X: dlm.Polynomial(3, [0.3, 0.1, 0.05]),
    "fourier_nyquist": lambda X: dlm.Fourier(6, 3, 0.2),
    "fourier": lambda X: dlm.Fourier(12, 2, 0.2),
    "regression_rw": lambda X: dlm.Regression(X, sigma=[0.1, 0.2]),
    "trend+seasonal": lambda X: dlm.LocalLinearTrend(0.5, 0.1) + dlm.Seasonal(4, 0.3),
    "level+fourier+regression": lambda X: (
        dlm.LocalLevel(0.4) + dlm.Fourier(4, 2, 0.2) + dlm.Regression(X[:, :1])
    ),
}
CASES_MISSING = {
    "level": (),
    "poly3": (2, 9, 10),
    "fourier_nyquist": (2, 9),
    "fourier": (),
    "regression_rw": (2, 9),
    "trend+seasonal": (2, 9, 10),
    "level+fourier+regression": (2, 9),
}


@pytest.mark.parametrize("name", list(CASES))
def test_matches_statsmodels_exact_diffuse(name):
    """Loglik, filtered, predicted and smoothed moments vs statsmodels.

    Missing values: one in the diffuse period at t=3, and later ones; X[5, 0] = 0 makes an
    observation in the diffuse period uninformative about the first coefficient.
    """
    missing = CASES_MISSING[name]
    T = 30
    rng = np.random.default_rng(3)
    X = rng.normal(size=(T, 2))
    X[5, 0] = 0.0  # an observation uninformative about the first coefficient
    model = CASES[name](X)
    y = _series(T, 1, missing)
    ds = dlm.kalman_smoother(model, y, sigma_obs=0.8)
    F, G, W = _matrices(model)
    ref = statsmodels_diffuse(F, G, W, np.array([[0.64]]), y)
    _compare(ds, ref)


def test_multivariate_full_obs_cov_and_partial_missing():
    """Two series observing one trend (F_inf singular: the univariate treatment).

    A non-diagonal V (whitened) and partially missing rows, one in the diffuse period.
    """
    F = np.array([[1.0, 0.0], [1.0, 0.0]])
    G = np.array([[1.0, 1.0], [0.0, 1.0]])
    W = np.diag([0.2, 0.01])
    V = np.array([[0.5, 0.2], [0.2, 0.4]])
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=(25, 1)), axis=0) + rng.normal(size=(25, 2))
    y[0, 1] = np.nan
    y[1, 0] = np.nan
    y[6] = np.nan
    model = dlm.StateSpace(F, G, W, C0="diffuse")
    ds = dlm.kalman_smoother(model, y, obs_cov=V)
    _compare(ds, statsmodels_diffuse(F, G, W, V, y))


def test_mixed_diffuse_and_proper_blocks():
    """A diffuse level + a proper AR(1) block (explicit C0) + a stationary AR(1) block."""
    model = (
        dlm.LocalLevel(0.5)
        + dlm.AR(0.6, 0.7, m0=0.5, C0=2.0, name="ar_proper")
        + dlm.AR(-0.4, 0.3, name="ar_stat")
    )
    y = _series(30, 4, (1, 12))
    ds = dlm.kalman_smoother(model, y, sigma_obs=0.5)
    F, G, W = _matrices(model)
    st = 0.3**2 / (1 - 0.4**2)
    blocks = [
        (0, 1, None),
        (1, 2, (np.array([0.6 * 0.5]), np.array([[0.36 * 2.0 + 0.49]]))),
        (2, 3, (np.array([0.0]), np.array([[0.16 * st + 0.09]]))),
    ]
    ref = statsmodels_diffuse(F, G, W, np.array([[0.25]]), y, blocks)
    _compare(ds, ref)


def test_statespace_mask_equals_component_defaults():
    """StateSpace(diffuse=mask) with a proper C0 for the rest equals the component sum."""
    a = dlm.LocalLevel(0.5) + dlm.AR(0.6, 0.7, C0=2.0)
    F, G, W = _matrices(a)
    b = dlm.StateSpace(F, G, W, m0=0.0, C0=np.diag([99.0, 2.0]), diffuse=[True, False])
    y = _series(20, 5)
    da = dlm.kalman_filter(a, y, sigma_obs=0.5)
    db = dlm.kalman_filter(b, y, sigma_obs=0.5)
    assert da.loglik.item() == pytest.approx(db.loglik.item(), rel=1e-12)
    np.testing.assert_allclose(da.filtered_cov.values, db.filtered_cov.values, atol=1e-12)


def _loglik_fn(ss, y, sigma_obs):
    obs = pt.as_tensor_variable(np.array([sigma_obs]))
    system = system_matrices(ss, obs, obs_diag=True)
    ll = filter_scan(system, pt.as_tensor_variable(y[:, None])).loglik
    return float(pytensor.function([], ll, mode=PY)())


def test_limit_of_vague_proper_prior():
    r"""ell_proper(kappa) + (d/2) log(kappa) -> ell_diffuse with error O(1/kappa).

    With theta_0 ~ N(0, kappa I): p_kappa(y) = (2 pi kappa)^(-d/2) int p(y | theta_0)
    exp(-|theta_0|^2 / 2 kappa) d theta_0, so ell_proper + (d/2) log(2 pi kappa) tends to
    log int p(y | theta_0) d theta_0 = ell_diffuse + (d/2) log(2 pi) (Durbin & Koopman 2012,
    §7.2.2, which counts 0.5 log 2 pi for every observation). G has det 0.6 != 1, which checks
    that the flat prior is on theta_0, not on theta_1.
    """
    F = np.array([[1.0, 0.5]])
    G = np.array([[1.0, 1.0], [0.0, 0.6]])
    W = np.diag([0.3, 0.1])
    y = _series(15, 8, (4,))
    diffuse = _loglik_fn(dlm.StateSpace(F, G, W, C0="diffuse"), y, 0.7)
    errors = []
    for kappa in (1e3, 1e4, 1e5, 1e6):
        proper = _loglik_fn(dlm.StateSpace(F, G, W, C0=kappa), y, 0.7)
        errors.append(proper + 0.5 * 2 * np.log(kappa) - diffuse)
    errors = np.abs(errors)
    assert errors[-1] < 1e-4
    # rate 1/kappa: each factor 10 in kappa divides the error by about 10
    np.testing.assert_allclose(errors[:-1] / errors[1:], 10.0, rtol=0.05)


def test_more_diffuse_states_than_observations():
    y = np.array([1.0, np.nan, 2.0, np.nan])
    model = dlm.LocalLinearTrend(0.1, 0.1) + dlm.Seasonal(4, 0.1)  # d = 5 > 2 observed
    with pytest.raises(ValueError, match="diffuse states"):
        dlm.kalman_filter(model, y, sigma_obs=1.0)
    # counted statically, it is -inf (never NaN) in the symbolic log-likelihood
    ss = dlm.as_statespace(model)
    assert _loglik_fn(ss, y, 1.0) == -np.inf
    # enough values, but not informative: X is zero when the coefficient's value is needed
    reg = dlm.Regression(np.array([[0.0], [0.0], [0.0]]))
    with pytest.raises(ValueError, match="do not identify"):
        dlm.kalman_filter(reg, np.array([1.0, 2.0, 3.0]), sigma_obs=1.0)


def test_bad_diffuse_arguments():
    F, G, W = np.eye(2)[:1], np.eye(2), np.eye(2)
    with pytest.raises(ValueError, match="diffuse must be"):
        dlm.StateSpace(F, G, W, diffuse=[True])
    with pytest.raises(ValueError, match="C0='diffuse'"):
        dlm.StateSpace(F, G, W, C0="diffuse", diffuse=[True, False])
    with pytest.raises(ValueError, match="full column"):
        dlm.StateSpace(F, np.array([[1.0, 1.0], [0.0, 0.0]]), W, C0="diffuse")
    with pytest.raises(ValueError, match="'diffuse' or 'stationary'"):
        dlm.StateSpace(F, G, W, C0="flat")


def test_gradients_through_the_diffuse_period():
    """Gradients of the diffuse log-likelihood pass verify_grad.

    With respect to state and observation noise scales, with a missing value inside the
    diffuse period and a full observation covariance.
    """
    y = _series(6, 9, (1,))
    y2 = np.stack([y, 0.5 * y + 1.0], axis=-1)
    y2[3, 1] = np.nan

    def loglik(s_level, s_slope, s_seas, v):
        model = dlm.LocalLinearTrend(s_level, s_slope) + dlm.Seasonal(3, s_seas)
        ss = dlm.as_statespace(model)
        F2 = pt.concatenate([ss.F, 0.5 * ss.F], axis=-2)
        two = dlm.StateSpace(F2, ss.G, None, C0="diffuse", W_sqrt=ss.W_sqrt)
        V = pt.stack([pt.stack([v, 0.3 * v]), pt.stack([0.3 * v, 1.2 * v])])
        system = system_matrices(two, V, obs_diag=False)
        return filter_scan(system, pt.as_tensor_variable(y2)).loglik

    rng = np.random.default_rng(0)
    pt_args = [np.array(0.5), np.array(0.2), np.array(0.3), np.array(0.8)]
    pytensor.gradient.verify_grad(loglik, pt_args, rng=rng, mode=PY, abs_tol=1e-6, rel_tol=1e-5)


@pytest.mark.slow
def test_ffbs_through_the_diffuse_period_matches_smoothed_moments():
    """Monte Carlo moments of backward-sampled paths match the exact smoothed moments.

    Both through the diffuse period, which lasts several steps here.
    """
    model = dlm.LocalLinearTrend(0.3, 0.1) + dlm.Seasonal(4, 0.2)
    y = _series(10, 11, (2,))
    ds = dlm.kalman_smoother(model, y, sigma_obs=0.6)
    ss = dlm.as_statespace(model)
    system = system_matrices(ss, pt.as_tensor_variable(np.array([0.6])), obs_diag=True)
    res = filter_scan(system, pt.as_tensor_variable(y[:, None]), return_all=True)
    S, T, n = 4000, y.size, ss.n_state
    eps = pt.as_tensor_variable(np.random.default_rng(2).standard_normal((S, T, n)))
    path = backward_sample(res, ss.G, ss.W_sqrt, ss.time_varying, eps)
    draws = pytensor.function([], path, mode=PY)()
    mean, var = draws.mean(0), draws.var(0)
    s_mean = ds.smoothed_mean.values
    s_var = np.diagonal(ds.smoothed_cov.values, axis1=-2, axis2=-1)
    se = np.sqrt(s_var / S)
    assert np.all(np.abs(mean - s_mean) < 4.5 * se)
    # variance: relative standard error sqrt(2/S) ~ 2.2%
    np.testing.assert_allclose(var, s_var, rtol=5 * np.sqrt(2 / S))
    assert ds.smoothed_cov.isel(time=0).values.trace() > 0  # proper in the diffuse period


def test_default_components_need_no_prior():
    """The issue's example: defaults give the exact diffuse likelihood (statsmodels' value)."""
    y = _series(30, 12)
    model = dlm.LocalLevel(0.5) + dlm.Seasonal(12, 0.2)
    ds = dlm.kalman_filter(model, y, sigma_obs=0.7)
    F, G, W = _matrices(model)
    ref = statsmodels_diffuse(F, G, W, np.array([[0.49]]), y)
    assert ds.loglik.item() == pytest.approx(ref["loglik"], rel=1e-10)
    assert "diffuse" in ds.attrs["loglik_convention"]
