"""pymc_dlm's filter and smoother against the dense joint Gaussian.

Witness (STYLE.md §8): for small T the states and observations (θ_1..θ_T, y_1..y_T)
are jointly Gaussian with a mean and covariance built by explicit linear maps in
``oracles.dense_gaussian`` (no Kalman recursion). The log-likelihood is the
scipy logpdf of the observed entries; smoothed moments are Gaussian conditioning
with ``np.linalg.solve``. Nothing is stored.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import oracles as O

SEED = 20261124


def _spd(rng, n, scale=1.0, ridge=0.3):
    A = rng.standard_normal((n, n))
    return scale * (A @ A.T / n + ridge * np.eye(n))


def _obs_kwargs(V, p):
    V = np.asarray(V, float)
    if p == 1:
        return dict(sigma_obs=float(np.sqrt(V.reshape(-1)[0])))
    return dict(obs_cov=V)


def _y_for_package(y, p):
    return y[:, 0] if (y.ndim == 2 and p == 1) else y


# ---------------------------------------------------------------------------
# Fixed small cases (T <= 8)
# ---------------------------------------------------------------------------


def case_uni_trend_seasonal():
    rng = np.random.default_rng([SEED, 1])
    m0_t, C0_t = np.array([1.0, 0.2]), np.array([[2.0, 0.3], [0.3, 0.5]])
    ref = O.mod_sum(O.mod_poly(2, [0.3, 0.1], m0=m0_t, C0=C0_t), O.mod_seas(4, 0.2, C0=4.0))
    V = 0.25
    _, y = O.simulate(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, 8, rng)
    y[2, 0] = np.nan

    def build(dlm):
        return dlm.LocalLinearTrend(0.3, 0.1, m0=m0_t, C0=C0_t) + dlm.Seasonal(4, 0.2, C0=4.0)

    return ref, V, y, build


def case_mv3_nondiag_missing():
    rng = np.random.default_rng([SEED, 2])
    n, p, T = 3, 3, 6
    G = np.array([[0.9, 0.2, 0.0], [0.0, 0.7, 0.1], [0.1, 0.0, -0.5]])
    F = rng.standard_normal((p, n))
    W = _spd(rng, n, 0.2)
    V = _spd(rng, p, 0.5)  # non-diagonal
    m0 = rng.standard_normal(n)
    C0 = _spd(rng, n, 2.0)
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    y[0, 1] = np.nan  # one component missing
    y[2, [0, 2]] = np.nan  # two components missing
    y[3, :] = np.nan  # whole row missing
    ref = O.System(F, G, W, m0, C0)
    return ref, V, y, lambda dlm: dlm.StateSpace(F, G, W, m0, C0)


def case_mv2_time_varying_F():
    rng = np.random.default_rng([SEED, 3])
    n, p, T = 2, 2, 7
    F = rng.standard_normal((T, p, n))
    G = np.array([[1.0, 0.5], [0.0, 0.8]])
    W = np.diag([0.1, 0.0])  # singular W
    V = np.array([[0.4, -0.15], [-0.15, 0.3]])
    m0 = np.array([0.5, -0.5])
    C0 = np.array([[3.0, 0.4], [0.4, 1.0]])
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    y[1, 0] = np.nan
    y[5, :] = np.nan
    ref = O.System(F, G, W, m0, C0)
    return ref, V, y, lambda dlm: dlm.StateSpace(F, G, W, m0, C0, time_varying=("F",))


def case_uni_time_varying_GW():
    rng = np.random.default_rng([SEED, 4])
    T = 6
    G = np.stack([np.array([[1.0, 0.1 * t], [0.0, 0.9 - 0.1 * t]]) for t in range(T)])
    W = np.stack([np.array([[0.05 * (t + 1), 0.01], [0.01, 0.2]]) for t in range(T)])
    F = np.array([[1.0, 0.5]])
    m0, C0 = np.array([2.0, 0.0]), 3.0
    V = 0.1
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    y[4, 0] = np.nan
    ref = O.System(F, G, W, m0, C0 * np.eye(2))
    return ref, V, y, lambda dlm: dlm.StateSpace(F, G, W, m0, C0, time_varying=("G", "W"))


def case_regression_component():
    rng = np.random.default_rng([SEED, 5])
    T = 8
    X = np.column_stack([np.linspace(-1, 1, T), rng.standard_normal(T)])
    ref = O.mod_reg(X, [0.1, 0.0], m0=[0.5, -0.5], C0=[4.0, 1.0])
    V = 0.2
    _, y = O.simulate(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, T, rng)
    y[[0, 6], 0] = np.nan
    return ref, V, y, lambda dlm: dlm.Regression(X, [0.1, 0.0], m0=[0.5, -0.5], C0=[4.0, 1.0])


def case_all_missing():
    ref = O.mod_poly(2, [0.5, 0.1], m0=[1.0, 0.1], C0=[2.0, 0.5])
    y = np.full((4, 1), np.nan)
    return ref, 0.3, y, lambda dlm: dlm.LocalLinearTrend(0.5, 0.1, m0=[1.0, 0.1], C0=[2.0, 0.5])


def case_single_time_mv():
    F = np.array([[1.0, 0.0], [1.0, 1.0]])
    G = np.array([[0.5, 0.0], [0.3, 0.2]])
    W = np.array([[1.0, 0.2], [0.2, 0.5]])
    V = np.array([[0.5, 0.1], [0.1, 0.4]])
    m0, C0 = np.array([1.0, -1.0]), np.array([[1.0, 0.5], [0.5, 2.0]])
    y = np.array([[0.3, -0.7]])
    return O.System(F, G, W, m0, C0), V, y, lambda dlm: dlm.StateSpace(F, G, W, m0, C0)


DENSE_CASES = {
    "uni_trend_seasonal": case_uni_trend_seasonal,
    "mv3_nondiag_missing": case_mv3_nondiag_missing,
    "mv2_time_varying_F": case_mv2_time_varying_F,
    "uni_time_varying_GW": case_uni_time_varying_GW,
    "regression_component": case_regression_component,
    "all_missing": case_all_missing,
    "single_time_mv": case_single_time_mv,
}


@pytest.mark.parametrize("name", list(DENSE_CASES))
def test_filter_loglik_equals_dense_logpdf(name):
    dlm = pytest.importorskip("pymc_dlm")
    ref, V, y, build = DENSE_CASES[name]()
    p = y.shape[1]
    expected = O.dense_loglik(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, y)
    dense_f = O.dense_filtered(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, y)
    ds = dlm.kalman_filter(build(dlm), _y_for_package(y, p), **_obs_kwargs(V, p))
    ours = O.moments_from_dataset(ds)
    if np.isnan(y).all():
        assert ours.loglik == 0.0, "a fully missing series must contribute exactly 0"
    np.testing.assert_allclose(
        ours.loglik, expected, rtol=1e-10, atol=1e-12, err_msg=f"{name}: loglik"
    )
    scale = max(float(np.nanmax(np.abs(y))) if not np.isnan(y).all() else 1.0, 1.0)
    O.assert_moments_close(
        ours, dense_f, mean_scale=scale, rtol=1e-8, atol_factor=1e-10, label=name, smoothed=False
    )


@pytest.mark.parametrize("name", list(DENSE_CASES))
def test_smoother_equals_dense_conditional(name):
    dlm = pytest.importorskip("pymc_dlm")
    ref, V, y, build = DENSE_CASES[name]()
    p = y.shape[1]
    dense_s = O.dense_smoothed(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, y)
    ds = dlm.kalman_smoother(build(dlm), _y_for_package(y, p), **_obs_kwargs(V, p))
    ours = O.moments_from_dataset(ds)
    np.testing.assert_allclose(
        ours.loglik, dense_s.loglik, rtol=1e-10, atol=1e-12, err_msg=f"{name}: loglik"
    )
    scale = max(float(np.nanmax(np.abs(y))) if not np.isnan(y).all() else 1.0, 1.0)
    only_smoothed = O.Moments(
        loglik=dense_s.loglik,
        smoothed_mean=dense_s.smoothed_mean,
        smoothed_cov=dense_s.smoothed_cov,
    )
    O.assert_moments_close(
        ours, only_smoothed, mean_scale=scale, rtol=1e-8, atol_factor=1e-10, label=name
    )
    # at the last time the smoother is the filter
    np.testing.assert_allclose(
        ours.smoothed_mean[-1], ours.filtered_mean[-1], rtol=1e-12, atol=1e-12 * scale
    )
    np.testing.assert_allclose(
        ours.smoothed_cov[-1], ours.filtered_cov[-1], rtol=1e-12, atol=1e-14
    )


# ---------------------------------------------------------------------------
# Property test: random stable models of random small sizes
# ---------------------------------------------------------------------------


@st.composite
def random_models(draw):
    n = draw(st.integers(1, 4))
    p = draw(st.integers(1, 3))
    T = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    missing_rate = draw(st.sampled_from([0.0, 0.25, 0.6]))
    singular_W = draw(st.booleans())
    radius = draw(st.floats(0.2, 0.99))

    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, n))
    G = radius * A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-3)  # spectral radius = radius
    F = rng.standard_normal((p, n))
    if singular_W and n > 1:
        b = rng.standard_normal((n, 1))
        W = 0.3 * (b @ b.T)  # rank one
    else:
        W = _spd(rng, n, 0.3)
    V = _spd(rng, p, 0.5)
    m0 = rng.standard_normal(n)
    C0 = _spd(rng, n, 2.0)
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    y[rng.random(y.shape) < missing_rate] = np.nan
    return O.System(F, G, W, m0, C0), V, y


@pytest.mark.slow
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,  # the same examples every run, so pytensor's compile cache is reused
    suppress_health_check=[HealthCheck.too_slow],
)
@given(random_models())
def test_random_models_match_dense_and_covariances_are_psd(model):
    dlm = pytest.importorskip("pymc_dlm")
    ref, V, y = model
    p = y.shape[1]
    dense_s = O.dense_smoothed(ref.F, ref.G, ref.W, V, ref.m0, ref.C0, y)
    ds = dlm.kalman_smoother(
        dlm.StateSpace(ref.F, ref.G, ref.W, ref.m0, ref.C0),
        _y_for_package(y, p),
        **_obs_kwargs(V, p),
    )
    ours = O.moments_from_dataset(ds)
    np.testing.assert_allclose(ours.loglik, dense_s.loglik, rtol=1e-9, atol=1e-10)
    for key in ("predicted_cov", "forecast_cov", "filtered_cov", "smoothed_cov"):
        O.assert_psd(getattr(ours, key), rel_tol=1e-9, label=key)
    scale = max(float(np.nanmax(np.abs(y))) if not np.isnan(y).all() else 1.0, 1.0)
    only_smoothed = O.Moments(
        loglik=dense_s.loglik,
        smoothed_mean=dense_s.smoothed_mean,
        smoothed_cov=dense_s.smoothed_cov,
    )
    O.assert_moments_close(
        ours, only_smoothed, mean_scale=scale, rtol=1e-7, atol_factor=1e-9, label="random model"
    )
