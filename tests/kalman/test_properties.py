"""Property tests (hypothesis): random models against the dense joint Gaussian.

Adds to ``test_random_models_match_dense_and_covariances_are_psd`` in
``tests/kalman/test_oracle_dense.py`` (time-invariant StateSpace models, loglik and smoothed
moments) what it does not draw:

* time-varying F, G and W (a random subset declared in ``time_varying``) with random missing
  patterns that include whole missing rows and partially missing rows;
* random sums of components (local level, local linear trend, dummy seasonal, Fourier, AR,
  damped cycle), the reference matrices built independently by ``tests/support/oracles.py``'s
  ``mod_*`` (R ``dlm``'s definitions), not read from the package;
* the predicted, forecast and filtered moments (dense conditioning on y_{1:t-1} and y_{1:t}),
  not only the smoothed ones, and the symmetric-PSD property of every covariance.

Witness: ``oracles.dense_filtered``/``dense_smoothed`` (explicit linear maps of θ_0 and the
noises, scipy logpdf, conditioning by ``np.linalg.solve``; no recursion). Examples are bounded
(``max_examples``) and derandomized so the suite is reproducible. The property tests of
``C0="stationary"`` (random G and W against scipy's Lyapunov solver) are in
``tests/model/test_stationary.py``.
"""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pymc_dlm as dlm
from tests.support import oracles as O

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _spd(rng, n, scale):
    A = rng.standard_normal((n, n))
    return scale * (A @ A.T / n + 0.3 * np.eye(n))


def _missing(rng, y, rate):
    """Random missing entries plus, sometimes, a whole missing row."""
    y = y.copy()
    y[rng.random(y.shape) < rate] = np.nan
    if y.shape[0] > 2 and rng.random() < 0.5:
        y[rng.integers(y.shape[0])] = np.nan
    return y


def _obs_kwargs(V, p):
    if p == 1:
        return {"sigma_obs": float(np.sqrt(np.asarray(V).reshape(-1)[0]))}
    return {"obs_cov": V}


def _check_against_dense(ds, F, G, W, V, m0, C0, y):
    ours = O.moments_from_dataset(ds)
    filt = O.dense_filtered(F, G, W, V, m0, C0, y)
    smooth = O.dense_smoothed(F, G, W, V, m0, C0, y)
    np.testing.assert_allclose(ours.loglik, filt.loglik, rtol=1e-9, atol=1e-10)
    for key in ("predicted_cov", "forecast_cov", "filtered_cov", "smoothed_cov"):
        O.assert_psd(getattr(ours, key), rel_tol=1e-9, label=key)
    scale = 1.0 if np.isnan(y).all() else max(float(np.nanmax(np.abs(y))), 1.0)
    ref = O.Moments(
        loglik=filt.loglik,
        predicted_mean=filt.predicted_mean,
        predicted_cov=filt.predicted_cov,
        forecast_mean=filt.forecast_mean,
        forecast_cov=filt.forecast_cov,
        filtered_mean=filt.filtered_mean,
        filtered_cov=filt.filtered_cov,
        smoothed_mean=smooth.smoothed_mean,
        smoothed_cov=smooth.smoothed_cov,
    )
    O.assert_moments_close(ours, ref, mean_scale=scale, rtol=1e-7, atol_factor=1e-9)


# --------------------------------------------------------------------------------------------
# Time-varying StateSpace models
# --------------------------------------------------------------------------------------------


@st.composite
def time_varying_models(draw):
    n = draw(st.integers(1, 3))
    p = draw(st.integers(1, 3))
    T = draw(st.integers(2, 6))
    tv = tuple(x for x in ("F", "G", "W") if draw(st.booleans()))
    rate = draw(st.sampled_from([0.0, 0.3, 0.6]))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)

    def stable():
        A = rng.standard_normal((n, n))
        return rng.uniform(0.2, 0.98) * A / max(np.max(np.abs(np.linalg.eigvals(A))), 1e-3)

    F = rng.standard_normal((T, p, n)) if "F" in tv else rng.standard_normal((p, n))
    G = np.stack([stable() for _ in range(T)]) if "G" in tv else stable()
    if "W" in tv:
        W = np.stack([_spd(rng, n, 0.3) for _ in range(T)])
        if n > 1:  # one singular step
            b = rng.standard_normal((n, 1))
            W[rng.integers(T)] = 0.3 * b @ b.T
    else:
        W = _spd(rng, n, 0.3)
    V = _spd(rng, p, 0.5)
    m0 = rng.standard_normal(n)
    C0 = _spd(rng, n, 2.0)
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    return F, G, W, V, m0, C0, _missing(rng, y, rate), tv


@SETTINGS
@given(time_varying_models())
def test_time_varying_models_match_dense(model):
    F, G, W, V, m0, C0, y, tv = model
    p = y.shape[1]
    ss = dlm.StateSpace(F, G, W, m0, C0, time_varying=tv)
    ds = dlm.kalman_smoother(ss, y[:, 0] if p == 1 else y, **_obs_kwargs(V, p))
    _check_against_dense(ds, F, G, W, V, m0, C0, y)


# --------------------------------------------------------------------------------------------
# Random sums of components
# --------------------------------------------------------------------------------------------


@st.composite
def component(draw):
    kind = draw(st.sampled_from(["level", "trend", "seasonal", "fourier", "ar", "cycle"]))
    sigma = draw(st.floats(0.05, 1.0))
    scale = draw(st.floats(0.5, 5.0))
    if kind == "level":
        return O.mod_poly(1, sigma, m0=1.0, C0=scale), lambda m0, C0: dlm.LocalLevel(
            sigma, m0=m0, C0=C0
        )
    if kind == "trend":
        return O.mod_poly(2, [sigma, sigma / 4], m0=1.0, C0=scale), (
            lambda m0, C0: dlm.LocalLinearTrend(sigma, sigma / 4, m0=m0, C0=C0)
        )
    if kind == "seasonal":
        period = draw(st.integers(2, 5))
        return O.mod_seas(period, sigma, m0=1.0, C0=scale), (
            lambda m0, C0: dlm.Seasonal(period, sigma, m0=m0, C0=C0)
        )
    if kind == "fourier":
        period = draw(st.integers(3, 8))
        q = draw(st.integers(1, period // 2))
        return O.mod_trig(period, q, sigma, m0=1.0, C0=scale), (
            lambda m0, C0: dlm.Fourier(period, q, sigma, m0=m0, C0=C0)
        )
    if kind == "ar":
        rho = draw(st.floats(-0.95, 0.95))
        return O.mod_arma([rho], [], sigma**2, m0=1.0, C0=scale), (
            lambda m0, C0: dlm.AR(rho, sigma, m0=m0, C0=C0)
        )
    period = draw(st.floats(2.5, 20.0))
    damping = draw(st.floats(0.1, 0.99))
    return O.mod_cycle(period, damping, sigma, m0=1.0, C0=scale), (
        lambda m0, C0: dlm.Cycle(period, damping, sigma, m0=m0, C0=C0)
    )


@st.composite
def component_sums(draw):
    parts = draw(st.lists(component(), min_size=1, max_size=3))
    T = draw(st.integers(2, 8))
    rate = draw(st.sampled_from([0.0, 0.3, 0.6]))
    s_obs = draw(st.floats(0.1, 1.0))
    seed = draw(st.integers(0, 2**31 - 1))
    ref = O.mod_sum(*(r for r, _ in parts))
    rng = np.random.default_rng(seed)
    _, y = O.simulate(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, T, rng)
    return parts, ref, s_obs, _missing(rng, y, rate)


@SETTINGS
@given(component_sums())
def test_random_component_sums_match_dense(case):
    parts, ref, s_obs, y = case
    blocks = []
    for part_ref, make in parts:
        k = part_ref.m0.shape[0]
        blocks.append(make(part_ref.m0.copy(), np.diag(part_ref.C0).copy()))
        assert k == blocks[-1].n_state
    model = sum(blocks)
    ds = dlm.kalman_smoother(model, y[:, 0], sigma_obs=s_obs)
    _check_against_dense(ds, ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, y)


def test_strategies_draw_what_they_promise():
    """The strategies reach every time-varying matrix, whole missing rows, several block sizes."""
    sizes, tvs, whole_rows = set(), set(), 0

    @settings(max_examples=40, derandomize=True, deadline=None)
    @given(time_varying_models(), st.lists(component(), min_size=1, max_size=1))
    def collect(model, comps):
        nonlocal whole_rows
        *_, y, tv = model
        tvs.update(tv)
        whole_rows += int(np.isnan(y).all(axis=1).any())
        sizes.add(comps[0][0].m0.shape[0])

    collect()
    assert tvs == {"F", "G", "W"}
    assert whole_rows > 0
    assert len(sizes) >= 3
