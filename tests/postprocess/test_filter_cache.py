"""The compiled-function cache of ``kalman_filter``/``kalman_smoother`` is used and never stale.

One structure (model layout, noise form, diffuse mask, filter or smoother) compiles once; new
parameter values, new data and new series lengths on it reuse the compiled function, and every
result equals an independent computation at those values (STYLE.md §8): statsmodels' filter
and smoother (``tests.support.oracles``), with a proper prior and with the exact diffuse start.
"""

import numpy as np
import pytensor
import pytest
from pytensor.compile.mode import Mode

import pymc_dlm as dlm
from pymc_dlm.kalman import fixed_filter
from tests.support import oracles as O

SEED = 20261126
PY = Mode(linker="py", optimizer="fast_compile")


@pytest.fixture(autouse=True)
def empty_cache():
    fixed_filter.clear_cache()
    yield
    fixed_filter.clear_cache()


def _series(T, missing=()):
    rng = np.random.default_rng(SEED)
    y = np.cumsum(rng.normal(size=T)) + np.sin(np.arange(T) * np.pi / 2) + rng.normal(size=T)
    y[list(missing)] = np.nan
    return y


def _matrices(model):
    ss = dlm.as_statespace(model)
    ev = pytensor.function([], [ss.F, ss.G, ss.W, ss.m0, ss.C0], mode=PY)
    return [np.asarray(x) for x in ev()]


def _proper(sigmas):
    level, slope, season = sigmas
    return dlm.LocalLinearTrend(level, slope, m0=[1.0, 0.0], C0=50.0) + dlm.Seasonal(
        4, season, C0=20.0
    )


def _check_proper(ds, model, sigma_obs, y):
    F, G, W, m0, C0 = _matrices(model)
    ref = O.statsmodels_filter(F, G, W, np.array([[sigma_obs**2]]), m0, C0, y[:, None])
    assert ds.loglik.item() == pytest.approx(ref.loglik, rel=1e-10)
    O.assert_moments_close(
        O.moments_from_dataset(ds), ref, mean_scale=1.0, rtol=1e-8, atol_factor=1e-9
    )


def test_new_parameter_values_reuse_the_compiled_smoother_and_match_statsmodels():
    y = _series(40, missing=(3, 17, 18))
    first = ((0.5, 0.1, 0.3), 0.8)
    second = ((0.05, 0.02, 1.5), 0.2)
    model_a = _proper(first[0])
    ds_a = dlm.kalman_smoother(model_a, y, sigma_obs=first[1])
    assert fixed_filter.cache_info() == fixed_filter.CacheInfo(hits=0, misses=1, size=1)
    model_b = _proper(second[0])
    ds_b = dlm.kalman_smoother(model_b, y, sigma_obs=second[1])
    assert fixed_filter.cache_info() == fixed_filter.CacheInfo(hits=1, misses=1, size=1)
    assert ds_a.loglik.item() != ds_b.loglik.item()
    # both results, the first read after the second call, are those of their own values
    _check_proper(ds_b, model_b, second[1], y)
    _check_proper(ds_a, model_a, first[1], y)


def test_other_data_and_length_reuse_it_and_the_filter_is_its_own_structure():
    model = _proper((0.5, 0.1, 0.3))
    for T in (40, 25):
        y = _series(T, missing=(2,))
        ds = dlm.kalman_smoother(model, y, sigma_obs=0.8)
        _check_proper(ds, model, 0.8, y)
    assert fixed_filter.cache_info().misses == 1
    dlm.kalman_filter(model, y, sigma_obs=0.8)
    dlm.kalman_filter(_proper((1.0, 0.2, 0.1)), y, sigma_obs=0.3)
    assert fixed_filter.cache_info() == fixed_filter.CacheInfo(hits=2, misses=2, size=2)


def test_exact_diffuse_start_at_two_parameter_values():
    y = _series(30, missing=(1, 12))
    for level, season, sd in ((0.5, 0.3, 0.8), (0.1, 1.2, 0.25)):
        model = dlm.LocalLevel(level) + dlm.Seasonal(4, season)
        ds = dlm.kalman_smoother(model, y, sigma_obs=sd)
        F, G, W, _, _ = _matrices(model)
        ref = O.statsmodels_diffuse(F, G, W, np.array([[sd**2]]), y)
        assert ds.loglik.item() == pytest.approx(ref["loglik"], rel=1e-10)
        for name in ("predicted_mean", "filtered_mean", "smoothed_mean"):
            np.testing.assert_allclose(ds[name].values, ref[name], rtol=1e-8, atol=1e-8)
        for name in ("predicted_cov", "filtered_cov", "smoothed_cov"):
            np.testing.assert_allclose(ds[name].values, ref[name], rtol=1e-8, atol=1e-8)
    assert fixed_filter.cache_info() == fixed_filter.CacheInfo(hits=1, misses=1, size=1)


def test_shared_data_are_read_at_each_call():
    """A model holding shared data (``pm.Data``) is evaluated anew: no value is cached."""
    X = pytensor.shared(np.linspace(0.0, 1.0, 30)[:, None, None], name="X")
    model = dlm.LocalLevel(0.3, C0=10.0) + dlm.StateSpace(
        X, np.eye(1), np.array([[0.01]]), C0=4.0, time_varying="F"
    )
    y = _series(30, missing=(5,))
    results = []
    for scale in (1.0, -2.0):
        X.set_value(scale * np.linspace(0.0, 1.0, 30)[:, None, None])
        results.append(dlm.kalman_smoother(model, y, sigma_obs=0.5))
        F, G, W, m0, C0 = _matrices(model)
        ref = O.statsmodels_filter(F, G, W, np.array([[0.25]]), m0, C0, y[:, None])
        assert results[-1].loglik.item() == pytest.approx(ref.loglik, rel=1e-10)
        np.testing.assert_allclose(results[-1].smoothed_mean, ref.smoothed_mean, rtol=1e-8)
    assert results[0].loglik.item() != results[1].loglik.item()
    assert fixed_filter.cache_info().misses == 1


def test_least_recently_used_structure_is_dropped(monkeypatch):
    monkeypatch.setattr(fixed_filter, "CACHE_SIZE", 1)
    y = _series(20)
    dlm.kalman_filter(dlm.LocalLevel(0.3, C0=10.0), y, sigma_obs=0.5)
    dlm.kalman_filter(_proper((0.5, 0.1, 0.3)), y, sigma_obs=0.5)
    assert fixed_filter.cache_info() == fixed_filter.CacheInfo(hits=0, misses=2, size=1)


def _scans_compiled():
    """Per cached structure: whether its scans (the fallback) had to be compiled."""
    return [entry._scan is not None for entry in fixed_filter._CACHE.values()]


def test_the_kernels_serve_diffuse_and_correlated_models_and_match_statsmodels():
    """The kernels serve diffuse starts, correlated noises and several series.

    Exact diffuse start; non-diagonal W (the backward pass's augmented branch); two series
    with a full observation covariance (decorrelated); missing values. No scan is compiled.
    """
    y = _series(30, missing=(1, 12))
    model = dlm.LocalLevel(0.5) + dlm.Seasonal(4, 0.3)
    ds = dlm.kalman_smoother(model, y, sigma_obs=0.8)
    F, G, W, _, _ = _matrices(model)
    ref = O.statsmodels_diffuse(F, G, W, np.array([[0.64]]), y)
    assert ds.loglik.item() == pytest.approx(ref["loglik"], rel=1e-10)
    np.testing.assert_allclose(ds.smoothed_cov.values, ref["smoothed_cov"], rtol=1e-8, atol=1e-8)

    rng = np.random.default_rng(SEED)
    A = rng.normal(size=(2, 2))
    W2 = A @ A.T + 0.1 * np.eye(2)
    V = np.array([[1.0, 0.6], [0.6, 2.0]])
    F2, G2 = np.array([[1.0, 0.0], [0.5, 1.0]]), np.array([[1.0, 1.0], [0.0, 1.0]])
    m0, C0 = np.array([1.0, -1.0]), np.diag([3.0, 2.0])
    correlated = dlm.StateSpace(F2, G2, W2, m0=m0, C0=C0)
    Y = np.column_stack([_series(35, missing=(4,)), _series(35, missing=(9, 20))[::-1]])
    ds2 = dlm.kalman_smoother(correlated, Y, obs_cov=V)
    ref2 = O.statsmodels_filter(F2, G2, W2, V, m0, C0, Y)
    assert ds2.loglik.item() == pytest.approx(ref2.loglik, rel=1e-10)
    O.assert_moments_close(
        O.moments_from_dataset(ds2), ref2, mean_scale=1.0, rtol=1e-8, atol_factor=1e-9
    )
    assert _scans_compiled() == [False, False]


def test_a_vague_prior_against_small_noise_stays_with_the_kernels():
    """A vague prior against small noise: the kernels' square-root steps, no scan compiled.

    C0 = 1e7 against a noise variance of 1e-6 would cancel ~13 digits in the covariance form.
    Witness: the 60-digit mpmath filter and smoother.
    """
    y = _series(25, missing=(6,))
    model = dlm.LocalLinearTrend(0.05, 0.01, C0=1e7)
    ds = dlm.kalman_smoother(model, y, sigma_obs=1e-3)
    assert _scans_compiled() == [False]
    F, G, W, m0, C0 = _matrices(model)
    ref = O.mpmath_filter(F, G, W, np.array([[1e-6]]), m0, C0, y[:, None], smooth=True)
    assert ds.loglik.item() == pytest.approx(ref.loglik, rel=1e-10)
    O.assert_moments_close(
        O.moments_from_dataset(ds), ref, mean_scale=1.0, rtol=1e-9, atol_factor=1e-10
    )
