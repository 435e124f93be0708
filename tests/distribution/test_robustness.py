"""Numerical robustness: long series, extreme scales, near unit roots and invalid parameters.

Witnesses (STYLE.md §8), all computed when the tests run, nothing stored:

* a scalar local-level Kalman filter written below in plain numpy (Petris et al. 2009,
  Prop. 2.2 for n = p = 1), and its central finite differences for the gradient;
* statsmodels (``tests/support/oracles.py::statsmodels_filter``, ``tolerance = 0``);
* the exact change-of-scale identity of a Gaussian density: multiplying y, every standard
  deviation and m0 by c, and C0 by c², maps the joint law of (θ, y) to that of (cθ, cy), so
  loglik(c·y) = loglik(y) − n_obs·log c, with n_obs the number of observed scalars;
* the stationary covariance of a damped rotation, σ²/(1 − ρ²)·I₂, and of an AR(1),
  σ²/(1 − ρ²), written down by hand for the ``C0="stationary"`` cases.
* for AR(2) blocks with ``C0="stationary"`` (singular stationary covariances included):
  scipy's ``solve_discrete_lyapunov`` for C0 and the dense joint Gaussian
  (``oracles.dense_loglik``) for the log-likelihood, and its central finite differences for
  the gradient;
* at invalid parameters (negative standard deviations or variances, non-stationary G under
  ``C0="stationary"``, damping outside [0, 1], NaN) the answer is -inf with a finite gradient,
  on numba and on the Python backend; valid batch members keep their own value.

Every test passes m0 and C0 explicitly.
"""

import ctypes

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from tests.support import oracles as O

SEED = 20261124
LOG2PI = np.log(2 * np.pi)
ONE = np.ones((1, 1))


def local_level_loglik(y, sigma, sigma_obs, m0, C0):
    """Scalar Kalman filter of the local level, NaN = missing (textbook recursion)."""
    W, V = sigma**2, sigma_obs**2
    m, C, ll = m0, C0, 0.0
    for yt in y:
        R = C + W
        if np.isnan(yt):
            m, C = m, R
            continue
        Q = R + V
        e = yt - m
        ll -= 0.5 * (LOG2PI + np.log(Q) + e * e / Q)
        m, C = m + R / Q * e, R * V / Q
    return ll


# --------------------------------------------------------------------------------------------
# One compiled log-likelihood of the distribution, reused: local level with every input free
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def level_logp():
    """``pm.logp`` of ``DLM.dist(LocalLevel)`` and its gradient, compiled once (default mode).

    Inputs y (any length; NaN = missing), sigma, sigma_obs, m0, C0. This is the graph NUTS
    evaluates: the distribution's registered log-likelihood.
    """
    y = pt.dvector("y")
    s, so, m0, C0 = (pt.dscalar(n) for n in ("s", "so", "m0", "C0"))
    # steps only sizes forward simulation; the log-likelihood takes the value's length.
    rv = dlm.DLM.dist(dlm.LocalLevel(s, m0=m0, C0=C0), sigma_obs=so, steps=1)
    lp = pm.logp(rv, y)
    grads = pt.grad(lp, [s, so])
    fn = pytensor.function([y, s, so, m0, C0], [lp, *grads])

    def run(y, s, so, m0, C0):
        lp, *g = fn(np.asarray(y, float), s, so, m0, C0)
        return float(lp), np.array(g, dtype=float)

    return run


def _peak_rss_reset():
    """Return freed heap memory to the OS and reset the peak RSS (Linux ``clear_refs`` 5)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pytest.skip("cannot reset the peak RSS on this system")


def _status_bytes(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1]) * 1024
    pytest.skip(f"/proc/self/status has no {key}")


@pytest.mark.slow
def test_long_series_loglik_gradient_and_memory(level_logp):
    """T = 100,000: exact log-likelihood, gradient equal to finite differences, bounded memory.

    Memory bound: the gradient of a filter needs at most the per-step filter quantities
    (a_t, R_t, f_t, Q_t, m_t, C_t, e_t: about ten n²-sized numbers per step, 8 MB here at
    n = p = 1), plus the data (0.8 MB). The bound, 40 MB = 50 float64 per time step, leaves
    room for that five times over; keeping every intermediate of every step of a generic scan
    gradient (hundreds of nodes per step), or anything growing like T², would exceed it.
    """
    T = 100_000
    rng = np.random.default_rng([SEED, 1])
    y = np.cumsum(rng.normal(0, 0.5, T)) + rng.normal(0, 1.0, T)
    y[rng.random(T) < 0.05] = np.nan
    args = (0.5, 1.0, 0.0, 10.0)
    lp, grad = level_logp(y, *args)  # compiles on the first call
    ref = local_level_loglik(y, *args)
    assert np.isfinite(lp) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(lp, ref, rtol=1e-10)
    sm = O.statsmodels_filter(
        ONE, ONE, args[0] ** 2 * ONE, args[1] ** 2, args[2], args[3], y, False
    )
    np.testing.assert_allclose(lp, sm.loglik, rtol=1e-10)
    for i, h in enumerate((1e-6, 1e-6)):
        up, down = list(args), list(args)
        up[i] += h
        down[i] -= h
        fd = (local_level_loglik(y, *up) - local_level_loglik(y, *down)) / (2 * h)
        np.testing.assert_allclose(grad[i], fd, rtol=1e-5)

    _peak_rss_reset()
    before = _status_bytes("VmRSS")
    lp2, grad2 = level_logp(y, *args)
    peak = _status_bytes("VmHWM") - before
    assert lp2 == lp and np.array_equal(grad2, grad)
    assert peak < 40e6, f"evaluating logp and gradient at T={T} took {peak / 1e6:.1f} MB"


@pytest.mark.parametrize("c", [1e-6, 1e9])
def test_scale_identity_of_the_distribution_logp(level_logp, c):
    rng = np.random.default_rng([SEED, 2])
    T = 50
    y = np.cumsum(rng.normal(0, 0.3, T)) + rng.normal(0, 0.5, T) + 3.0
    y[[4, 17, 18]] = np.nan
    n_obs = int(np.sum(~np.isnan(y)))
    s, so, m0, C0 = 0.3, 0.5, 2.0, 4.0
    lp, grad = level_logp(y, s, so, m0, C0)
    lp_c, grad_c = level_logp(c * y, c * s, c * so, c * m0, c * c * C0)
    np.testing.assert_allclose(lp_c, lp - n_obs * np.log(c), rtol=1e-10)
    # d/d(c sigma) loglik(c y; c sigma, ...) = (1/c) d/d sigma loglik(y; sigma, ...)
    np.testing.assert_allclose(grad_c, grad / c, rtol=1e-8)
    sm = O.statsmodels_filter(ONE, ONE, s**2 * ONE, so**2, m0, C0, y, False)
    np.testing.assert_allclose(lp, sm.loglik, rtol=1e-10)
    if c > 1:  # see test_scale_identity_trend_seasonal for statsmodels at c = 1e-6
        W = (c * s) ** 2 * ONE
        sm = O.statsmodels_filter(ONE, ONE, W, (c * so) ** 2, c * m0, c * c * C0, c * y, False)
        np.testing.assert_allclose(lp_c, sm.loglik, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Scale with kalman_filter: a sum of components and a multivariate model with obs_cov
# --------------------------------------------------------------------------------------------

S_LEVEL, S_SLOPE, S_SEAS, S_OBS = 0.3, 0.05, 0.2, 0.4
M0 = np.array([5.0, 0.1, 1.0, -0.5, 0.2])
C0 = np.array([4.0, 0.5, 2.0, 2.0, 2.0])


def _trend_seasonal(c):
    trend = dlm.LocalLinearTrend(c * S_LEVEL, c * S_SLOPE, m0=c * M0[:2], C0=c * c * C0[:2])
    return trend + dlm.Seasonal(4, c * S_SEAS, m0=c * M0[2:], C0=c * c * C0[2:])


@pytest.fixture(scope="module")
def trend_seasonal_data():
    ref = O.mod_sum(O.mod_poly(2, [S_LEVEL, S_SLOPE]), O.mod_seas(4, S_SEAS))
    rng = np.random.default_rng([SEED, 3])
    _, y = O.simulate(ref.F, ref.G, ref.W, S_OBS**2, M0, np.diag(C0), 40, rng)
    y = y[:, 0]
    y[[0, 7, 8, 30]] = np.nan
    return ref, y


@pytest.mark.parametrize("c", [1e-6, 1e9])
def test_scale_identity_trend_seasonal(trend_seasonal_data, c):
    ref, y = trend_seasonal_data
    n_obs = int(np.sum(~np.isnan(y)))
    base = dlm.kalman_smoother(_trend_seasonal(1.0), y, sigma_obs=S_OBS)
    scaled = dlm.kalman_smoother(_trend_seasonal(c), c * y, sigma_obs=c * S_OBS)
    np.testing.assert_allclose(
        float(scaled.loglik), float(base.loglik) - n_obs * np.log(c), rtol=1e-10
    )
    for name in ("filtered_mean", "smoothed_mean", "forecast_mean"):
        np.testing.assert_allclose(scaled[name].values, c * base[name].values, rtol=1e-8)
    for name in ("filtered_cov", "smoothed_cov", "forecast_cov"):
        np.testing.assert_allclose(
            scaled[name].values,
            c * c * base[name].values,
            rtol=1e-8,
            atol=1e-10 * c * c * np.abs(base[name].values).max(),
        )
    sm = O.statsmodels_filter(ref.F, ref.G, ref.W, S_OBS**2, M0, np.diag(C0), y)
    np.testing.assert_allclose(float(base.loglik), sm.loglik, rtol=1e-10)
    if c > 1:
        # At c = 1e-6 (variances near 1e-13) statsmodels itself is off (by 193 in a
        # log-likelihood of 449 here), so there the identity is the witness.
        sm = O.statsmodels_filter(
            ref.F, ref.G, c * c * ref.W, (c * S_OBS) ** 2, c * M0, c * c * np.diag(C0), c * y
        )
        np.testing.assert_allclose(float(scaled.loglik), sm.loglik, rtol=1e-10)


@pytest.mark.parametrize("c", [1e-6, 1e9])
def test_scale_identity_multivariate_obs_cov(c):
    rng = np.random.default_rng([SEED, 4])
    F = np.array([[1.0, 0.0], [0.5, 1.0], [0.0, 2.0]])
    G = np.array([[0.9, 0.1], [0.0, 0.7]])
    W = np.array([[0.3, 0.1], [0.1, 0.2]])
    V = np.array([[0.5, 0.2, 0.0], [0.2, 0.4, 0.1], [0.0, 0.1, 0.3]])
    m0, P0 = np.array([1.0, -1.0]), np.array([[2.0, 0.5], [0.5, 1.0]])
    _, y = O.simulate(F, G, W, V, m0, P0, 25, rng)
    y[3] = np.nan
    y[10, 1] = np.nan
    n_obs = int(np.sum(~np.isnan(y)))

    def run(k):
        ss = dlm.StateSpace(F, G, k * k * W, m0=k * m0, C0=k * k * P0)
        return float(dlm.kalman_filter(ss, k * y, obs_cov=k * k * V).loglik)

    np.testing.assert_allclose(run(c), run(1.0) - n_obs * np.log(c), rtol=1e-10)
    sm = O.statsmodels_filter(F, G, W, V, m0, P0, y, False)
    np.testing.assert_allclose(run(1.0), sm.loglik, rtol=1e-10)
    if c > 1:
        sm = O.statsmodels_filter(F, G, c * c * W, c * c * V, c * m0, c * c * P0, c * y, False)
        np.testing.assert_allclose(run(c), sm.loglik, rtol=1e-10)


# --------------------------------------------------------------------------------------------
# Near unit roots
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("rho", [0.999, 0.99999])
@pytest.mark.parametrize("prior", ["explicit", "stationary"])
def test_near_unit_root_ar_matches_statsmodels(rho, prior):
    sigma, s_obs, T = 0.5, 0.3, 200
    stationary = sigma**2 / (1 - rho**2)
    rng = np.random.default_rng([SEED, 5])
    ref = O.mod_arma([rho], [], sigma**2, m0=0.0, C0=stationary)
    _, y = O.simulate(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, T, rng)
    y = y[:, 0]
    y[50:60] = np.nan
    C0 = stationary if prior == "explicit" else "stationary"
    ours = dlm.kalman_smoother(dlm.AR(rho, sigma, m0=0.0, C0=C0), y, sigma_obs=s_obs)
    sm = O.statsmodels_filter(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, y)
    np.testing.assert_allclose(float(ours.loglik), sm.loglik, rtol=1e-10)
    np.testing.assert_allclose(
        ours.smoothed_mean.values, sm.smoothed_mean, rtol=1e-7, atol=1e-8 * np.nanmax(abs(y))
    )
    np.testing.assert_allclose(ours.filtered_cov.values, sm.filtered_cov, rtol=1e-7)


@pytest.mark.parametrize("prior", ["explicit", "stationary"])
def test_cycle_with_damping_near_one_matches_statsmodels(prior):
    period, damping, sigma, s_obs, T = 12.0, 0.999, 0.2, 0.5, 200
    stationary = sigma**2 / (1 - damping**2)  # G G' = damping² I for a damped rotation
    ref = O.mod_cycle(period, damping, sigma, m0=[1.0, 0.0], C0=stationary * np.eye(2))
    rng = np.random.default_rng([SEED, 6])
    _, y = O.simulate(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, T, rng)
    y = y[:, 0]
    y[::17] = np.nan
    C0 = stationary if prior == "explicit" else "stationary"
    ours = dlm.kalman_smoother(
        dlm.Cycle(period, damping, sigma, m0=[1.0, 0.0], C0=C0), y, sigma_obs=s_obs
    )
    sm = O.statsmodels_filter(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, y)
    np.testing.assert_allclose(float(ours.loglik), sm.loglik, rtol=1e-10)
    np.testing.assert_allclose(ours.smoothed_cov.values, sm.smoothed_cov, rtol=1e-7, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Valid parameters: finite; invalid: -inf, never NaN, never an exception (what NUTS sees)
# --------------------------------------------------------------------------------------------


def _short_series():
    rng = np.random.default_rng([SEED, 7])
    y = np.cumsum(rng.normal(0, 0.3, 30)) + rng.normal(0, 0.5, 30)
    y[5] = np.nan
    return y


@pytest.mark.parametrize("s, so", [(0.3, 0.5), (1e-8, 0.5), (0.0, 0.5), (0.3, 1e-8), (50.0, 1e-3)])
def test_local_level_logp_at_valid_parameters_is_finite(level_logp, s, so):
    y = _short_series()
    lp, grad = level_logp(y, s, so, 0.0, 10.0)
    assert np.isfinite(lp) and np.all(np.isfinite(grad)), (lp, grad)
    np.testing.assert_allclose(lp, local_level_loglik(y, s, so, 0.0, 10.0), rtol=1e-9)


@pytest.mark.parametrize("s, so", [(np.nan, 0.5), (0.3, np.inf), (0.3, np.nan)])
def test_local_level_logp_at_non_finite_parameters_is_minus_inf(level_logp, s, so):
    lp, _ = level_logp(_short_series(), s, so, 0.0, 10.0)
    assert lp == -np.inf


@pytest.mark.parametrize("s, so", [(-0.3, 0.5), (0.3, -0.5), (-1e-300, 0.5), (0.3, -1e-300)])
def test_local_level_logp_at_negative_sigma_is_minus_inf(level_logp, s, so):
    # sigma enters W only through its square: without the components' constraint this would
    # be the (finite) log-likelihood of |sigma|.
    lp, grad = level_logp(_short_series(), s, so, 0.0, 10.0)
    assert lp == -np.inf
    np.testing.assert_array_equal(grad, 0.0)


@pytest.fixture(scope="module")
def stationary_model():
    """AR(1) and a damped cycle with C0='stationary', their parameters unconstrained (Flat)."""
    rng = np.random.default_rng([SEED, 8])
    y = rng.normal(size=30)
    y[4] = np.nan
    with pm.Model() as model:
        rho = pm.Flat("rho")
        damping = pm.Flat("damping")
        s = pm.Flat("s")
        dlm.DLM("ar", dlm.AR(rho, s, m0=0.0, C0="stationary"), sigma_obs=0.5, observed=y)
        cycle = dlm.Cycle(8.0, damping, 0.3, m0=0.0, C0="stationary")
        dlm.DLM("cycle", cycle, sigma_obs=0.5, observed=y)
    # The Python backend: numba compilation of the Lyapunov solve and its gradient takes minutes.
    outs = [*model.logp(sum=False), model.dlogp()]
    fn = model.compile_fn(outs, point_fn=True, mode="FAST_COMPILE")
    return model, fn, y


VALID = {"rho": 0.5, "damping": 0.9, "s": 0.7}


@pytest.mark.parametrize(
    "point",
    [
        {},
        {"rho": 0.999, "damping": 0.999},
        {"rho": -0.99999},
        {"rho": 1.0},
        {"rho": -1.2},
        # A unit-modulus G makes the Lyapunov system singular: pytensor's Python-backend
        # solve used to raise there (its NaN fallback had the wrong shape).
        {"damping": 1.0},
        {"damping": 1.5},
        {"damping": -0.1},
        {"s": -0.7},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()) or "valid",
)
def test_stationary_prior_logp_is_finite_or_minus_inf(stationary_model, point):
    _, fn, y = stationary_model
    values = {**VALID, **point}
    *terms, grad = fn({k: np.asarray(v) for k, v in values.items()})
    ar_lp, cycle_lp = float(terms[-2]), float(terms[-1])
    ar_ok = abs(values["rho"]) < 1 and values["s"] >= 0
    cycle_ok = 0 <= values["damping"] < 1
    for ok, lp in ((ar_ok, ar_lp), (cycle_ok, cycle_lp)):
        assert not np.isnan(lp)
        assert np.isfinite(lp) if ok else lp == -np.inf, (values, lp)
    # Finite everywhere: at -inf the invalid block contributes a zero derivative.
    assert np.all(np.isfinite(grad)), grad
    if ar_ok and cycle_ok:
        # The AR's log-likelihood against statsmodels at the stationary prior.
        rho, s = values["rho"], values["s"]
        ref = O.mod_arma([rho], [], s**2, m0=0.0, C0=s**2 / (1 - rho**2))
        sm = O.statsmodels_filter(ref.F, ref.G, ref.W, 0.25, ref.m0, ref.C0, y, False)
        np.testing.assert_allclose(ar_lp, sm.loglik, rtol=1e-9)


# --------------------------------------------------------------------------------------------
# Singular stationary covariances, symbolic constraints, and derivatives at invalid points,
# on both backends (numba, the default, and the Python backend)
# --------------------------------------------------------------------------------------------


def _ar2_level_oracle(values, y):
    """Dense-Gaussian log-likelihood of LocalLevel + AR(2) with C0 from scipy's Lyapunov solve."""
    from scipy.linalg import solve_discrete_lyapunov

    ar = O.mod_arma(values["rho"], [], values["s_ar"] ** 2, m0=0.0, C0=0.0)
    C0_ar = solve_discrete_lyapunov(ar.G, ar.W)
    ar = ar._replace(C0=C0_ar)
    level = O.mod_poly(1, values["s_level"], m0=0.0, C0=values["c0"])
    ref = O.mod_sum(level, ar)
    return O.dense_loglik(ref.F, ref.G, ref.W, values["so"] ** 2, ref.m0, ref.C0, y), C0_ar


def _ar2_level_fn(mode, full_cov):
    """LocalLevel (symbolic C0) + AR(2) (C0='stationary'), every parameter Flat (unconstrained).

    Returns the compiled ``(logp, dlogp)`` point function of the model on the given backend
    and the data; the noise is ``sigma_obs``, or a (1, 1) ``obs_cov`` with ``full_cov``.
    """
    rng = np.random.default_rng([SEED, 9])
    y = np.cumsum(rng.normal(0, 0.3, 25)) + rng.normal(0, 0.6, 25)
    y[[3, 11]] = np.nan
    with pm.Model() as model:
        rho = pm.Flat("rho", shape=2)
        s_level, s_ar, so, c0 = (pm.Flat(n) for n in ("s_level", "s_ar", "so", "c0"))
        ss = dlm.LocalLevel(s_level, m0=0.0, C0=c0) + dlm.AR(rho, s_ar, m0=0.0, C0="stationary")
        noise = {"obs_cov": (so**2)[None, None]} if full_cov else {"sigma_obs": so}
        dlm.DLM("y", ss, **noise, observed=y)
    mode = None if mode == "numba" else mode
    fn = model.compile_fn([model.logp(), model.dlogp()], point_fn=True, mode=mode)
    return fn, y


@pytest.fixture(scope="module", params=["numba", "FAST_COMPILE"])
def ar2_level(request):
    return _ar2_level_fn(request.param, full_cov=False)


AR2_VALID = {"rho": [0.5, 0.3], "s_level": 0.2, "s_ar": 0.7, "so": 0.5, "c0": 3.0}


def _at(point):
    return {k: np.asarray(v, dtype=float) for k, v in {**AR2_VALID, **point}.items()}


SINGULAR_POINTS = {
    "pd": {},
    # phi_2 = 0: the stationary covariance of the companion form has rank one, and a
    # Cholesky factor of it does not exist (it used to give NaN, hence -inf).
    "rho=0,0": {"rho": [0.0, 0.0]},
    "rho=0.6,0": {"rho": [0.6, 0.0]},
    "rho=-0.9,0": {"rho": [-0.9, 0.0]},
    "sigmas=0": {"s_level": 0.0, "s_ar": 0.0},  # W = 0: the AR block is identically zero
}


@pytest.mark.parametrize("name", list(SINGULAR_POINTS))
def test_stationary_singular_covariance_is_exact(ar2_level, name):
    fn, y = ar2_level
    values = _at(SINGULAR_POINTS[name])
    lp, _ = fn(values)
    ref, C0_ar = _ar2_level_oracle(values, y)
    if name.startswith("rho"):
        assert np.linalg.matrix_rank(C0_ar) < 2  # the case under test is singular indeed
    np.testing.assert_allclose(lp, ref, rtol=1e-10)


@pytest.mark.parametrize("name", list(SINGULAR_POINTS))
def test_stationary_singular_covariance_gradient_is_finite(ar2_level, name):
    """The gradient is finite on both routes.

    numba runs the kernels' adjoint; the other backends differentiate the covariance-form
    filter. The square-root filter's QR derivative would be NaN at a singular predicted
    covariance, as here at every step.
    """
    fn, _ = ar2_level
    _, grad = fn(_at(SINGULAR_POINTS[name]))
    assert np.all(np.isfinite(grad)), grad


@pytest.fixture(scope="module", params=["numba", "FAST_COMPILE"])
def ar2_level_full_cov(request):
    """The model of ``ar2_level`` with its noise given as a (1, 1) ``obs_cov``."""
    return _ar2_level_fn(request.param, full_cov=True)


@pytest.mark.parametrize("name", list(SINGULAR_POINTS))
def test_full_obs_cov_singular_covariance_is_exact_with_finite_gradient(ar2_level_full_cov, name):
    """A full obs_cov is decorrelated in front of the kernels / covariance-form gradient."""
    fn, y = ar2_level_full_cov
    values = _at(SINGULAR_POINTS[name])
    lp, grad = fn(values)
    ref, _ = _ar2_level_oracle(values, y)
    np.testing.assert_allclose(lp, ref, rtol=1e-10)
    assert np.all(np.isfinite(grad)), grad


def test_stationary_gradient_matches_finite_differences(ar2_level):
    """At a positive definite point the (new) factor route keeps the exact derivative."""
    fn, y = ar2_level
    values = _at({})
    _, grad = fn(values)
    flat = np.concatenate([np.atleast_1d(values[k]) for k in AR2_VALID])
    sizes = [np.atleast_1d(values[k]).size for k in AR2_VALID]

    def oracle(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        point = {k: (p if k == "rho" else p[0]) for k, p in zip(AR2_VALID, parts)}
        return _ar2_level_oracle(point, y)[0]

    fd = np.empty_like(flat)
    for i in range(flat.size):
        h = 1e-6 * max(1.0, abs(flat[i]))
        up, down = flat.copy(), flat.copy()
        up[i] += h
        down[i] -= h
        fd[i] = (oracle(up) - oracle(down)) / (2 * h)
    # dlogp orders the value variables as the model defines them: rho, s_level, s_ar, so, c0.
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize(
    "point",
    [
        {"s_level": -0.2},
        {"s_ar": -0.7},
        {"so": -0.5},
        {"c0": -3.0},
        {"rho": [0.7, 0.3]},  # unit root: phi_1 + phi_2 = 1
        {"rho": [1.5, 0.2]},
        {"rho": [0.0, -1.0]},  # a pair of roots on the unit circle
        {"s_level": np.nan},
    ],
    ids=lambda p: ",".join(f"{k}={v}" for k, v in p.items()),
)
def test_invalid_points_give_minus_inf_and_finite_gradient(ar2_level, point):
    fn, _ = ar2_level
    lp, grad = fn(_at(point))
    assert lp == -np.inf, lp
    assert np.all(np.isfinite(grad)), grad


def test_degenerate_valid_point_gives_minus_inf(ar2_level):
    """Every variance zero: y has a point mass at zero, so the data have density zero."""
    fn, _ = ar2_level
    lp, grad = fn(_at({"so": 0.0, "s_level": 0.0, "c0": 0.0, "s_ar": 0.0}))
    assert lp == -np.inf, lp
    assert np.all(np.isfinite(grad)), grad


def test_constraints_follow_the_batch_axes():
    """A negative sigma of one batch member makes only that member's log-likelihood -inf.

    Components and sigma_obs (time-varying here) each mark their own symbolic parameters;
    the reference is the same distribution at valid values (member by member).
    """
    rng = np.random.default_rng([SEED, 10])
    T = 12
    y = rng.normal(size=(3, T))
    s_level = pt.dvector("s_level")  # (3,): one per member
    s_seas = pt.dscalar("s_seas")  # shared
    damping = pt.dscalar("damping")
    so = pt.dmatrix("so")  # (3, T): time-varying, one row per member
    model = (
        dlm.LocalLevel(s_level, m0=0.0, C0=2.0)
        + dlm.Seasonal(3, s_seas, m0=0.0, C0=1.0)
        + dlm.Cycle(6.0, damping, 0.2, m0=0.0, C0=1.0)
    )
    rv = dlm.DLM.dist(model, sigma_obs=so, obs_time_varying=True, steps=T)
    lp = pm.logp(rv, y)
    fn = pytensor.function([s_level, s_seas, damping, so], lp, mode="FAST_COMPILE")
    good = (np.array([0.3, 0.4, 0.5]), 0.1, 0.8, np.full((3, T), 0.5))
    ref = fn(*good)
    assert ref.shape == (3,) and np.all(np.isfinite(ref))
    bad_so = good[3].copy()
    bad_so[2, 7] = -0.5  # member 2 at one time step
    cases = [
        ((np.array([0.3, -0.4, 0.5]), *good[1:]), [False, True, False]),
        ((*good[:3], bad_so), [False, False, True]),
        ((good[0], -0.1, *good[2:]), [True, True, True]),
        ((*good[:2], 1.2, good[3]), [True, True, True]),  # damping outside [0, 1]
        ((*good[:2], -0.2, good[3]), [True, True, True]),
    ]
    for args, invalid in cases:
        out = fn(*args)
        np.testing.assert_array_equal(out == -np.inf, invalid)
        np.testing.assert_allclose(out[~np.array(invalid)], ref[~np.array(invalid)], rtol=1e-12)
