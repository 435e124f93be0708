"""The DLM as a PyMC distribution (STYLE.md §7), each number against an independent witness (§8).

Pattern: PyMC's ``tests/distributions/test_timeseries.py`` (logp equals an explicit model,
batched equals looped, warnings are errors). The witness for every log-density is the dense
joint Gaussian of y, written below from the model's definition with no recursion and scored
with ``scipy.stats.multivariate_normal``; prior draws are checked against its analytic moments
within Monte Carlo error; gradients with ``pytensor.gradient.verify_grad``.

Compiling a pytensor graph costs seconds (numba), so each graph is compiled once
(``functools.cache``) and evaluated at many points.
"""

import contextlib
import functools
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.linalg
import scipy.stats
from pymc.distributions.distribution import support_point
from pymc.distributions.shape_utils import change_dist_size

import pymc_dlm as dlm

SEED = 20261124


# --------------------------------------------------------------------------------------------
# The witness: the dense joint Gaussian of y_1..y_T, from the definitions
# --------------------------------------------------------------------------------------------


def _as_cov(c, n):
    c = np.asarray(c, dtype=float)
    if c.ndim == 0:
        return c * np.eye(n)
    if c.ndim == 1:
        return np.diag(c)
    return c


def dense_moments(F, G, W, V, m0, C0, T):
    """Mean (T, p) and covariance (T p, T p) of (y_1, ..., y_T), time-major.

    theta_t = G^t theta_0 + sum_{j <= t} G^{t-j} w_j is a linear map of z = (theta_0, w_1..w_T),
    and y_t = F_t theta_t + v_t, so E y = B E z and Cov y = B Cov(z) B' + I_T (x) V.
    ``F`` is (p, n) or (T, p, n) (time-varying); G, W are (n, n); V is (p, p).
    """
    G = np.atleast_2d(np.asarray(G, dtype=float))
    n = G.shape[0]
    F = np.asarray(F, dtype=float)
    F = np.broadcast_to(F, (T, *F.shape[-2:])) if F.ndim == 2 else F
    V = np.atleast_2d(np.asarray(V, dtype=float))
    A = np.zeros((n, n * (T + 1)))
    A[:, :n] = np.eye(n)
    rows = []
    for t in range(T):
        A = G @ A
        A[:, n * (t + 1) : n * (t + 2)] += np.eye(n)
        rows.append(F[t] @ A)
    B = np.vstack(rows)
    z_mean = np.concatenate([np.broadcast_to(np.asarray(m0, dtype=float), (n,)), np.zeros(n * T)])
    z_cov = scipy.linalg.block_diag(_as_cov(C0, n), *[np.asarray(W, dtype=float)] * T)
    mean = B @ z_mean
    cov = B @ z_cov @ B.T + np.kron(np.eye(T), V)
    return mean.reshape(T, -1), cov


def dense_logpdf(y, mean, cov):
    """Log N(y_obs; mean_obs, cov_obs) over the non-NaN entries (0 when none is observed)."""
    y = np.asarray(y, dtype=float).ravel()
    keep = ~np.isnan(y)
    if not keep.any():
        return 0.0
    return scipy.stats.multivariate_normal(mean.ravel()[keep], cov[np.ix_(keep, keep)]).logpdf(
        y[keep]
    )


def local_level_moments(sigma, sigma_obs, m0, C0, T):
    """Local level written out: y_t = theta_0 + sum_{j<=t} w_j + v_t, theta_0 ~ N(m0, C0)."""
    t = np.arange(1, T + 1)
    cov = C0 + sigma**2 * np.minimum.outer(t, t) + sigma_obs**2 * np.eye(T)
    return np.full(T, float(m0)), cov


def test_dense_witness_agrees_with_the_written_out_local_level():
    # The general dense construction reproduces the closed form for the local level.
    mean, cov = dense_moments([[1.0]], [[1.0]], [[0.49]], [[2.25]], 3.0, 5.0, 7)
    m2, c2 = local_level_moments(0.7, 1.5, 3.0, 5.0, 7)
    np.testing.assert_allclose(mean.ravel(), m2, rtol=1e-14)
    np.testing.assert_allclose(cov, c2, rtol=1e-14)


# --------------------------------------------------------------------------------------------
# Compiled graphs shared by several tests
# --------------------------------------------------------------------------------------------

T = 12
RNG = np.random.default_rng(SEED)
Y_LL = np.cumsum(RNG.normal(size=T)) + RNG.normal(scale=0.5, size=T) + 2.0


@functools.cache
def local_level_logp():
    """Compiled logp(y, sigma, sigma_obs, m0, C0) of the univariate local level."""
    y = pt.vector("y")
    s, v, m0, c0 = pt.dscalars("sigma", "sigma_obs", "m0", "C0")
    rv = dlm.DLM.dist(dlm.LocalLevel(s, m0=m0, C0=c0), sigma_obs=v, steps=T)
    return pytensor.function([y, s, v, m0, c0], pm.logp(rv, y))


# A bivariate model with a non-diagonal observation covariance.
MV_F = np.array([[1.0, 0.5], [0.0, 1.0]])
MV_G = np.array([[0.9, 0.1], [0.0, 0.7]])
MV_W = np.array([[0.3, 0.1], [0.1, 0.2]])
MV_M0 = np.array([1.0, -1.0])
MV_C0 = np.array([[1.0, 0.2], [0.2, 0.5]])
MV_V = np.array([[1.0, 0.6], [0.6, 2.0]])
MV_T = 6


def mv_statespace():
    return dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, MV_C0)


@functools.cache
def multivariate_logp():
    """Compiled logp(y (T, 2), V (2, 2)) of the bivariate model with symbolic obs_cov."""
    y = pt.matrix("y")
    V = pt.tensor("V", shape=(2, 2), dtype="float64")
    rv = dlm.DLM.dist(mv_statespace(), obs_cov=V, steps=MV_T)
    return pytensor.function([y, V], pm.logp(rv, y))


def mv_data(seed):
    rng = np.random.default_rng(seed)
    mean, cov = dense_moments(MV_F, MV_G, MV_W, MV_V, MV_M0, MV_C0, MV_T)
    return rng.multivariate_normal(mean.ravel(), cov).reshape(MV_T, 2)


# --------------------------------------------------------------------------------------------
# logp equals the dense Gaussian
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sigma, sigma_obs, m0, C0",
    [(1.0, 0.5, 0.0, 10.0), (0.3, 2.0, 2.0, 1.0), (2.5, 0.1, -1.0, 100.0), (0.0, 1.0, 0.5, 3.0)],
)
def test_local_level_logp_equals_dense_gaussian(sigma, sigma_obs, m0, C0):
    f = local_level_logp()
    mean, cov = local_level_moments(sigma, sigma_obs, m0, C0, T)
    expected = dense_logpdf(Y_LL, mean, cov)
    np.testing.assert_allclose(f(Y_LL, sigma, sigma_obs, m0, C0), expected, rtol=1e-10)
    # The log-density is a function of the value: another value, another (correct) number.
    y2 = Y_LL + np.linspace(-1.0, 2.0, T)
    expected2 = dense_logpdf(y2, mean, cov)
    got2 = f(y2, sigma, sigma_obs, m0, C0)
    np.testing.assert_allclose(got2, expected2, rtol=1e-10)
    assert abs(expected2 - expected) > 1e-3
    # Missing values: the dense Gaussian of the observed entries only.
    y3 = Y_LL.copy()
    y3[[0, 4, 5, T - 1]] = np.nan
    np.testing.assert_allclose(
        f(y3, sigma, sigma_obs, m0, C0), dense_logpdf(y3, mean, cov), rtol=1e-10
    )


def test_local_level_logp_of_all_missing_is_zero():
    assert local_level_logp()(np.full(T, np.nan), 1.0, 1.0, 0.0, 1.0) == 0.0


@contextlib.contextmanager
def warnings_are_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_building_a_dlm_emits_no_warning():
    with warnings_are_errors():
        dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, steps=T)
        dlm.DLM.dist(mv_statespace(), obs_cov=MV_V, steps=MV_T, size=(2,))


def test_observed_nan_in_model_is_not_imputed():
    y = Y_LL.copy()
    y[[2, 3, 9]] = np.nan
    with warnings_are_errors():
        with pm.Model() as model:
            s = pm.HalfNormal("s", 2.0)
            v = pm.HalfNormal("v", 2.0)
            obs = dlm.DLM("y", dlm.LocalLevel(s, m0=1.0, C0=4.0), sigma_obs=v, observed=y)
        assert model.observed_RVs == [obs]
        assert [rv.name for rv in model.free_RVs] == ["s", "v"]
        assert set(model.named_vars) == {"s", "v", "y"}  # no y_observed / y_unobserved
        data = model.rvs_to_values[obs].data
        np.testing.assert_array_equal(np.isnan(data), np.isnan(y))
        logp = model.compile_logp(vars=[obs])
    s0, v0 = 1.3, 0.7
    got = logp({"s_log__": np.log(s0), "v_log__": np.log(v0)})
    expected = dense_logpdf(y, *local_level_moments(s0, v0, 1.0, 4.0, T))
    np.testing.assert_allclose(got, expected, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Batched equals looped
# --------------------------------------------------------------------------------------------

SIGMAS = np.array([1.0, 2.0, 3.0])
SIGMAS_OBS = np.array([0.5, 1.0, 2.0])
Y_BATCH = np.stack([Y_LL, 2 * Y_LL[::-1], np.sin(np.arange(T))])


def _looped(sigmas, sigmas_obs, y, m0=0.0, C0=1e7):
    f = local_level_logp()
    return np.array([f(y[i], sigmas[i], sigmas_obs[i], m0, C0) for i in range(len(y))])


def test_batched_parameters_vector_form_equals_looped():
    rv = dlm.DLM.dist(dlm.LocalLevel(sigma=SIGMAS, C0=1e7), sigma_obs=SIGMAS_OBS, steps=T)
    value = pt.matrix("value")
    got = pytensor.function([value], pm.logp(rv, value))(Y_BATCH)
    np.testing.assert_allclose(got, _looped(SIGMAS, SIGMAS_OBS, Y_BATCH), rtol=1e-10)


def test_batched_parameters_equal_looped():
    # A (3, 1, 1) obs_cov is a batch of three 1x1 covariances (the other way to batch the
    # observation noise of a univariate model).
    y = Y_BATCH.copy()
    y[1, 3] = np.nan
    rv = dlm.DLM.dist(
        dlm.LocalLevel(sigma=SIGMAS, C0=5.0), obs_cov=SIGMAS_OBS[:, None, None] ** 2, steps=T
    )
    assert tuple(rv.shape.eval()) == (3, T)
    value = pt.matrix("value")
    f = pytensor.function([value], pm.logp(rv, value))
    got = f(y)
    assert got.shape == (3,)
    looped = _looped(SIGMAS, SIGMAS_OBS, y, 0.0, 5.0)
    np.testing.assert_allclose(got, looped, rtol=1e-10)
    dense = [
        dense_logpdf(y[i], *local_level_moments(SIGMAS[i], SIGMAS_OBS[i], 0.0, 5.0, T))
        for i in range(3)
    ]
    np.testing.assert_allclose(got, dense, rtol=1e-10)


@pytest.mark.parametrize("how", ["size", "shape"])
def test_size_and_shape_batch_an_unbatched_model(how):
    kwargs = {"size": (3,)} if how == "size" else {"shape": (3, T)}
    steps = {"steps": T} if how == "size" else {}
    rv = dlm.DLM.dist(dlm.LocalLevel(1.5, m0=1.0, C0=2.0), sigma_obs=0.5, **steps, **kwargs)
    value = pt.matrix("value")
    got = pytensor.function([value], pm.logp(rv, value))(Y_BATCH)
    assert got.shape == (3,)
    looped = _looped([1.5] * 3, [0.5] * 3, Y_BATCH, 1.0, 2.0)
    np.testing.assert_allclose(got, looped, rtol=1e-10)


def test_change_dist_size_keeps_the_model():
    rv = dlm.DLM.dist(dlm.LocalLevel(sigma=SIGMAS), sigma_obs=0.5, steps=T)
    bigger = change_dist_size(rv, (2,), expand=True)
    replaced = change_dist_size(rv, (4, 3))
    f = pytensor.function([], [bigger.shape, replaced.shape], mode="FAST_COMPILE")
    assert [tuple(s) for s in f()] == [(2, 3, T), (4, 3, T)]
    assert bigger.owner.op.time_varying == rv.owner.op.time_varying


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_multivariate_nondiagonal_obs_cov_logp_equals_dense(seed):
    f = multivariate_logp()
    y = mv_data(seed)
    V = MV_V * (1 + 0.5 * seed) + np.diag([0.1 * seed, 0.0])
    _, cov = dense_moments(MV_F, MV_G, MV_W, V, MV_M0, MV_C0, MV_T)
    mean, _ = dense_moments(MV_F, MV_G, MV_W, V, MV_M0, MV_C0, MV_T)
    np.testing.assert_allclose(f(y, V), dense_logpdf(y, mean, cov), rtol=1e-10)
    # Partially and fully missing rows use the observed components only.
    y[1, 0] = np.nan
    y[3, :] = np.nan
    y[4, 1] = np.nan
    np.testing.assert_allclose(f(y, V), dense_logpdf(y, mean, cov), rtol=1e-10)


def test_multivariate_batched_obs_cov_equals_looped():
    Vs = np.stack([MV_V, np.array([[0.5, -0.2], [-0.2, 0.3]])])
    ys = np.stack([mv_data(11), mv_data(12)])
    ys[0, 2, 1] = np.nan
    rv = dlm.DLM.dist(mv_statespace(), obs_cov=Vs, steps=MV_T)
    assert tuple(rv.shape.eval()) == (2, MV_T, 2)
    value = pt.tensor3("value")
    got = pytensor.function([value], pm.logp(rv, value))(ys)
    looped = [multivariate_logp()(ys[i], Vs[i]) for i in range(2)]
    np.testing.assert_allclose(got, looped, rtol=1e-10)


def test_invalid_symbolic_obs_cov_gives_minus_inf():
    f = multivariate_logp()
    y = mv_data(5)
    for V in (np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([[-1.0, 0.0], [0.0, 1.0]])):
        with warnings_are_errors():
            value = f(y, V)
        assert value == -np.inf
    assert np.isfinite(f(y, MV_V))


def test_invalid_symbolic_W_gives_minus_inf():
    Wsym = pt.tensor("W", shape=(2, 2), dtype="float64")
    y = pt.matrix("y")
    rv = dlm.DLM.dist(dlm.StateSpace(MV_F, MV_G, Wsym, MV_M0, MV_C0), obs_cov=MV_V, steps=MV_T)
    f = pytensor.function([y, Wsym], pm.logp(rv, y))
    data = mv_data(6)
    assert f(data, np.array([[1.0, 3.0], [3.0, 1.0]])) == -np.inf
    mean, cov = dense_moments(MV_F, MV_G, MV_W, MV_V, MV_M0, MV_C0, MV_T)
    np.testing.assert_allclose(f(data, MV_W), dense_logpdf(data, mean, cov), rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Prior predictive: Monte Carlo moments against the analytic ones
# --------------------------------------------------------------------------------------------

N_DRAWS = 4000


def assert_mc_moments(draws, mean, cov, k=5.0):
    """Sample mean and covariance within k standard errors of the analytic ones.

    Var(mean_i) = S_ii / N; Var(cov_ij) ~= (S_ii S_jj + S_ij^2) / N for Gaussian draws.
    """
    N = draws.shape[0]
    X = draws.reshape(N, -1)
    mean = mean.ravel()
    se_mean = np.sqrt(np.diag(cov) / N)
    z_mean = np.abs(X.mean(0) - mean) / se_mean
    assert z_mean.max() < k, f"mean off by {z_mean.max():.1f} standard errors"
    d = np.diag(cov)
    se_cov = np.sqrt((np.outer(d, d) + cov**2) / N)
    z_cov = np.abs(np.cov(X, rowvar=False) - cov) / se_cov
    assert z_cov.max() < k, f"covariance off by {z_cov.max():.1f} standard errors"


def test_prior_draws_level_seasonal_ar1_singular_W_batched_sigma_obs():
    T_ = 8
    m0_seas = np.array([1.0, -0.5, 0.2])
    model = (
        dlm.LocalLevel(0.5, m0=1.0, C0=2.0)
        + dlm.Seasonal(4, 0.3, m0=m0_seas, C0=0.5)
        + dlm.AR(0.8, 0.6, m0=2.0, C0=1.0)
    )
    sigma_obs = np.array([0.4, 1.0])
    rv = dlm.DLM.dist(model, obs_cov=sigma_obs[:, None, None] ** 2, steps=T_)
    draws = pm.draw(rv, draws=N_DRAWS, random_seed=SEED)
    assert draws.shape == (N_DRAWS, 2, T_)
    F = np.array([[1.0, 1.0, 0.0, 0.0, 1.0]])
    G = scipy.linalg.block_diag([[1.0]], [[-1.0, -1.0, -1.0], [1.0, 0, 0], [0, 1.0, 0]], [[0.8]])
    W = np.diag([0.25, 0.09, 0.0, 0.0, 0.36])
    C0 = np.diag([2.0, 0.5, 0.5, 0.5, 1.0])
    m0 = np.concatenate([[1.0], m0_seas, [2.0]])
    for b in range(2):
        mean, cov = dense_moments(F, G, W, sigma_obs[b] ** 2, m0, C0, T_)
        # The analytic mean is F G^t m0: the seasonal pattern shows up in the draws.
        expected_mean = [F @ np.linalg.matrix_power(G, t) @ m0 for t in range(1, T_ + 1)]
        np.testing.assert_allclose(mean, expected_mean, rtol=1e-12)
        assert_mc_moments(draws[:, b], mean, cov)


X_DRAW = np.column_stack([np.ones(8), np.linspace(-1.0, 1.0, 8)])


def test_prior_draws_random_walk_regression():
    T_ = 8
    model = dlm.Regression(X_DRAW, sigma=[0.3, 0.1], m0=[1.0, -1.0], C0=0.5)
    rv = dlm.DLM.dist(model, sigma_obs=0.3, steps=T_)
    draws = pm.draw(rv, draws=N_DRAWS, random_seed=SEED + 1)
    assert draws.shape == (N_DRAWS, T_)
    mean, cov = dense_moments(
        X_DRAW[:, None, :], np.eye(2), np.diag([0.09, 0.01]), 0.09, [1.0, -1.0], 0.5, T_
    )
    assert_mc_moments(draws, mean, cov)


def test_prior_draws_ar1_plus_regression():
    T_ = 8
    model = dlm.AR(0.8, 0.5, C0=1.0) + dlm.Regression(X_DRAW, sigma=0.1, m0=[1.0, -1.0], C0=0.5)
    rv = dlm.DLM.dist(model, sigma_obs=0.3, steps=T_)
    draws = pm.draw(rv, draws=N_DRAWS, random_seed=SEED + 1)
    F = np.concatenate([np.ones((T_, 1, 1)), X_DRAW[:, None, :]], axis=-1)
    mean, cov = dense_moments(
        F,
        np.diag([0.8, 1.0, 1.0]),
        np.diag([0.25, 0.01, 0.01]),
        0.09,
        [0.0, 1.0, -1.0],
        np.diag([1.0, 0.5, 0.5]),
        T_,
    )
    assert_mc_moments(draws, mean, cov)


def test_prior_draws_multivariate_nondiagonal_obs_cov():
    rv = dlm.DLM.dist(mv_statespace(), obs_cov=MV_V, steps=MV_T)
    draws = pm.draw(rv, draws=N_DRAWS, random_seed=SEED + 2)
    assert draws.shape == (N_DRAWS, MV_T, 2)
    mean, cov = dense_moments(MV_F, MV_G, MV_W, MV_V, MV_M0, MV_C0, MV_T)
    assert_mc_moments(draws, mean, cov)


def test_sample_prior_predictive_with_dims():
    years = np.arange(2000, 2000 + T)
    coords = {"year": years, "series": ["a", "b"]}
    y_mv = np.column_stack([Y_LL, -Y_LL])
    with pm.Model(coords=coords):
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s, C0=1.0), sigma_obs=0.5, observed=Y_LL, dims="year")
        ss = dlm.StateSpace(np.eye(2), np.eye(2), np.eye(2) * s**2, C0=1.0)
        dlm.DLM("z", ss, obs_cov=MV_V, observed=y_mv, dims=("year", "series"))
        dlm.DLM("latent", dlm.LocalLevel(s, C0=1.0), sigma_obs=0.5, dims="year", steps=T)
        idata = pm.sample_prior_predictive(draws=20, random_seed=SEED)
    y = idata["prior_predictive"]["y"]
    z = idata["prior_predictive"]["z"]
    latent = idata["prior"]["latent"]
    assert y.dims == latent.dims == ("chain", "draw", "year")
    assert z.dims == ("chain", "draw", "year", "series")
    np.testing.assert_array_equal(y["year"].values, years)
    np.testing.assert_array_equal(z["series"].values, ["a", "b"])
    assert y.shape == (1, 20, T) and z.shape == (1, 20, T, 2)
    for x in (y, z, latent):
        assert np.all(np.isfinite(x.values))
    np.testing.assert_array_equal(idata["observed_data"]["z"].values, y_mv)


def test_dims_alone_give_the_number_of_steps():
    with pm.Model(coords={"year": np.arange(T), "series": ["a", "b"]}) as model:
        y = dlm.DLM("y", dlm.LocalLevel(1.0), sigma_obs=0.5, dims="year")
        z = dlm.DLM("z", mv_statespace(), obs_cov=MV_V, dims=("year", "series"))
    shapes = pytensor.function([], [y.shape, z.shape], mode="FAST_COMPILE")()
    assert [tuple(s) for s in shapes] == [(T,), (T, 2)]
    assert model.named_vars_to_dims == {"y": ("year",), "z": ("year", "series")}


# --------------------------------------------------------------------------------------------
# Support point, float32
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, steps=T), (T,)),
        (lambda: dlm.DLM.dist(dlm.LocalLevel(1.0), sigma_obs=1.0, steps=T, size=(2,)), (2, T)),
        (lambda: dlm.DLM.dist(mv_statespace(), obs_cov=MV_V, steps=MV_T), (MV_T, 2)),
    ],
)
def test_support_point_shape(make, shape):
    value = support_point(make()).eval()
    assert value.shape == shape
    assert np.all(np.isfinite(value))


def test_initial_point_has_finite_logp():
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s) + dlm.Seasonal(4, 0.1), sigma_obs=0.5, steps=T)
    point = model.initial_point()
    assert point["y"].shape == (T,)
    logp = model.compile_logp()(point)
    assert np.isfinite(logp)


def test_float32_model_builds_and_has_finite_logp(nile):
    _, flow = nile
    with pytensor.config.change_flags(floatX="float32"):
        with pm.Model() as model:
            s = pm.HalfNormal("s", 100.0)
            v = pm.HalfNormal("v", 200.0)
            dlm.DLM("y", dlm.LocalLevel(s), sigma_obs=v, observed=flow[:20])
        assert model["s"].dtype == "float32"
        logp = model.compile_logp()(model.initial_point())
    assert np.isfinite(logp)


# --------------------------------------------------------------------------------------------
# Gradients
# --------------------------------------------------------------------------------------------

T_GRAD = 12
Y_GRAD = np.random.default_rng(SEED + 3).normal(size=T_GRAD).cumsum()
Y_GRAD[[2, 7]] = np.nan
X_GRAD = np.column_stack([np.linspace(0, 1, T_GRAD), np.cos(np.arange(T_GRAD))])


def _scalars(*xs):
    return [pt.specify_shape(x, ()) for x in xs]


def _logp_structural(s_level, s_slope, s_seas, s_four, s_obs):
    s_level, s_slope, s_seas, s_four, s_obs = _scalars(s_level, s_slope, s_seas, s_four, s_obs)
    model = (
        dlm.LocalLevel(s_level, C0=2.0, name="level")
        + dlm.LocalLinearTrend(s_level, s_slope, C0=2.0)
        + dlm.Seasonal(4, s_seas, C0=1.0)
        + dlm.Fourier(6, 1, s_four, C0=1.0)
    )
    return pm.logp(dlm.DLM.dist(model, sigma_obs=s_obs, steps=T_GRAD), Y_GRAD)


def _logp_regression(s_reg, s_obs):
    # Alone: a sum with a Regression cannot be built yet (see tests/components/test_components.py).
    s_reg = pt.specify_shape(s_reg, (2,))
    s_obs = pt.specify_shape(s_obs, ())
    model = dlm.Regression(X_GRAD, sigma=s_reg, C0=1.0)
    return pm.logp(dlm.DLM.dist(model, sigma_obs=s_obs, steps=T_GRAD), Y_GRAD)


def _logp_arma_cycle(ar, ma, s_arma, period, damping, s_cycle, s_obs):
    ar = pt.specify_shape(ar, (2,))
    ma = pt.specify_shape(ma, (1,))
    s_arma, period, damping, s_cycle, s_obs = _scalars(s_arma, period, damping, s_cycle, s_obs)
    model = dlm.ARMA(ar, ma, s_arma, C0=1.0) + dlm.Cycle(period, damping, s_cycle, C0=1.0)
    return pm.logp(dlm.DLM.dist(model, sigma_obs=s_obs, steps=T_GRAD), Y_GRAD)


def _logp_ar1(rho, sigma, s_obs):
    rho, sigma, s_obs = _scalars(rho, sigma, s_obs)
    model = dlm.AR(rho, sigma, C0=1.0) + dlm.LocalLevel(0.3, C0=1.0)
    return pm.logp(dlm.DLM.dist(model, sigma_obs=s_obs, steps=T_GRAD), Y_GRAD)


def _logp_prior(m0, C0, sigma):
    m0 = pt.specify_shape(m0, (2,))
    C0, sigma = _scalars(C0, sigma)
    model = dlm.LocalLinearTrend(sigma, 0.1, m0=m0, C0=C0)
    return pm.logp(dlm.DLM.dist(model, sigma_obs=1.0, steps=T_GRAD), Y_GRAD)


Y_MV_GRAD = np.random.default_rng(SEED + 4).normal(size=(T_GRAD, 2)).cumsum(0)
Y_MV_GRAD[3, 0] = np.nan
Y_MV_GRAD[5, :] = np.nan


def _tril(v):
    """Lower-triangular 2x2 factor from (l11, l21, l22)."""
    return pt.stack([pt.stack([v[0], 0.0 * v[0]]), pt.stack([v[1], v[2]])])


def _logp_obs_cov(chol_V, chol_C0):
    L = _tril(pt.specify_shape(chol_V, (3,)))
    L0 = _tril(pt.specify_shape(chol_C0, (3,)))
    ss = dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, pt.dot(L0, L0.T))
    return pm.logp(dlm.DLM.dist(ss, obs_cov=pt.dot(L, L.T), steps=T_GRAD), Y_MV_GRAD)


GRAD_CASES = {
    "sigmas of LocalLevel, LocalLinearTrend, Seasonal, Fourier; sigma_obs": (
        _logp_structural,
        [0.8, 0.3, 0.5, 0.4, 0.7],
    ),
    "Regression random-walk sigmas": (_logp_regression, [np.array([0.2, 0.4]), 0.7]),
    "ARMA ar and ma, Cycle period and damping, sigmas": (
        _logp_arma_cycle,
        [np.array([0.5, -0.2]), np.array([0.3]), 0.6, 7.0, 0.85, 0.4, 0.9],
    ),
    "AR(1) rho": (_logp_ar1, [0.7, 0.5, 0.8]),
    "m0 (vector), C0 (scalar)": (_logp_prior, [np.array([0.5, -0.1]), 3.0, 0.6]),
    "obs_cov and C0 matrices via Cholesky factors": (
        _logp_obs_cov,
        [np.array([1.0, 0.4, 0.8]), np.array([1.0, 0.3, 0.9])],
    ),
}


def _verify_grad(case, mode):
    fun, point = GRAD_CASES[case]
    point = [np.asarray(x, dtype="float64") for x in point]
    value = pytensor.function([], fun(*[pt.as_tensor(x) for x in point]), mode=mode)()
    assert np.isfinite(value)
    pytensor.gradient.verify_grad(
        fun, point, n_tests=1, rng=np.random.default_rng(SEED), mode=mode
    )


@pytest.mark.parametrize("case", list(GRAD_CASES))
def test_logp_gradients(case):
    # The symbolic gradient is the same on every backend; FAST_COMPILE avoids minutes of numba
    # compilation per gradient graph. Numba's own dlogp is compared with the C and JAX backends
    # in test_backends_agree_on_nile_logp_and_dlogp and checked once by verify_grad below.
    _verify_grad(case, "FAST_COMPILE")


@pytest.mark.slow
def test_logp_gradients_default_backend():
    _verify_grad("ARMA ar and ma, Cycle period and damping, sigmas", None)


# --------------------------------------------------------------------------------------------
# Backends
# --------------------------------------------------------------------------------------------


def _scan_only_cvm():
    from pytensor.compile.mode import get_mode

    return get_mode("CVM").excluding("pymc_dlm_fused_kalman_c", "pymc_dlm_fused_kalman_share_c")


_NEEDS_CXX = pytest.mark.skipif(not pytensor.config.cxx, reason="no C++ compiler for pytensor")


@pytest.mark.slow
@pytest.mark.parametrize(
    "mode",
    [
        "NUMBA",
        pytest.param("CVM", marks=_NEEDS_CXX),
        pytest.param("C", marks=_NEEDS_CXX),
        "JAX",
        "CVM scan",
    ],
)
def test_backends_agree_on_nile_logp_and_dlogp(nile, mode):
    """Every backend against the scan definition on the Python linker (``FAST_COMPILE``).

    numba, "CVM" (C thunks) and "C" (the strict C linker, C code for every node) run the fused
    kernels, the last two through the fused ops' C code; JAX runs the scan; "CVM scan" is the
    C backend with the fused rewrite excluded, so the scan definition keeps working there.
    """
    from pymc_dlm.kalman.fused.ops import FusedLoglikGrad

    _, flow = nile
    y = flow.copy()
    y[[20, 21, 60]] = np.nan
    with pm.Model() as model:
        s = pm.HalfNormal("s", 100.0)
        v = pm.HalfNormal("v", 200.0)
        dlm.DLM("y", dlm.LocalLevel(s), sigma_obs=v, observed=y)
    point = {"s_log__": np.log(38.3), "v_log__": np.log(122.9)}
    ref = tuple(f(mode="FAST_COMPILE")(point) for f in (model.compile_logp, model.compile_dlogp))
    compiled = mode if mode != "CVM scan" else _scan_only_cvm()
    dlogp = model.compile_dlogp(mode=compiled)
    other = (model.compile_logp(mode=compiled)(point), dlogp(point))
    fused = any(isinstance(n.op, FusedLoglikGrad) for n in dlogp.f.maker.fgraph.apply_nodes)
    assert fused == (mode in ("NUMBA", "CVM", "C"))
    np.testing.assert_allclose(other[0], ref[0], rtol=1e-10)
    np.testing.assert_allclose(other[1], ref[1], rtol=1e-8)


def test_covariances_given_as_data_follow_set_data():
    """W and C0 given as ``pm.Data`` matrices stay linked to the data.

    Their factors are graphs of the data, not numbers taken when the model is built: after
    ``pm.set_data`` the log-density equals the dense Gaussian at the new matrices (the
    witness above), including a singular W. (Built as constants from the first values, the
    factors gave the old log-density.)
    """
    G = np.array([[1.0, 1.0], [0.0, 1.0]])
    F = np.array([[1.0, 0.0]])
    y = np.array([0.3, 1.1, 0.7, 2.0, np.nan, 2.4])
    first = {"W": np.array([[0.2, 0.05], [0.05, 0.1]]), "C0": np.array([[2.0, 0.3], [0.3, 1.0]])}
    second = {"W": np.array([[0.5, 0.0], [0.0, 0.0]]), "C0": np.array([[1.0, -0.2], [-0.2, 3.0]])}
    with pm.Model() as model:
        W = pm.Data("W", first["W"])
        C0 = pm.Data("C0", first["C0"])
        dlm.DLM("y", dlm.StateSpace(F, G, W=W, m0=[0.5, 0.0], C0=C0), sigma_obs=0.4, observed=y)
    logp = model.compile_logp()
    for values in (first, second):
        pm.set_data(values, model=model)
        mean, cov = dense_moments(F, G, values["W"], 0.16, [0.5, 0.0], values["C0"], len(y))
        expected = dense_logpdf(y, mean, cov)
        assert abs(logp({}) - expected) < 1e-9 * abs(expected)
