"""Leave-future-out cross-validation (``pymc_dlm.postprocess.lfo``) against independent oracles.

* Point mass: when no free variable enters the DLM, every posterior draw has the same
  one-step densities, so the LFO elpd is exactly the sum of the Kalman one-step log densities,
  whatever NUTS does. The oracle is the textbook local-level recursion written below (checked
  against ``dlm.kalman_filter``'s f_t, Q_t) with log N(y; f, Q) written out: to 1e-8.
* NUTS: the PSIS approximation against brute-force refits at every origin (``exact=True``),
  within a tolerance set by the Monte Carlo error of the refits (see the test).
"""

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.postprocess.lfo import LFODifference, LFOResult, compare_lfo, lfo

TINY_NUTS = {"draws": 200, "tune": 200, "chains": 2, "cores": 1, "nuts_sampler": "pymc"}
S_LEVEL, S_OBS, M0, C0 = 0.5, 0.8, 0.0, 4.0


def _series(T, seed, missing=()):
    rng = np.random.default_rng(seed)
    y = np.cumsum(rng.normal(0, S_LEVEL, T)) + rng.normal(0, S_OBS, T)
    y[list(missing)] = np.nan
    return y


def _one_step_oracle(y, s_level, s_obs, m0, C0):
    """One-step log densities of a local level, textbook recursion (0 where y_t is missing)."""
    m, C = m0, C0
    out, f_all, Q_all = [], [], []
    for yt in y:
        a, R = m, C + s_level**2
        f, Q = a, R + s_obs**2
        f_all.append(f)
        Q_all.append(Q)
        if np.isnan(yt):
            out.append(0.0)
            m, C = a, R
            continue
        out.append(-0.5 * (np.log(2 * np.pi * Q) + (yt - f) ** 2 / Q))
        m, C = a + R / Q * (yt - f), R - R**2 / Q
    return np.array(out), np.array(f_all), np.array(Q_all)


def _fixed_model_fn(s_level, s_obs, years):
    """Local level at fixed values; a free variable that does not enter the DLM."""

    def model_fn(y_train):
        with pm.Model(coords={"year": years}) as model:
            pm.Normal("unused", 0.0, 1.0)
            dlm.DLM(
                "y",
                dlm.LocalLevel(s_level, m0=M0, C0=C0),
                sigma_obs=s_obs,
                observed=y_train,
                dims="year",
            )
        return model

    return model_fn


def _free_model_fn(sigma_obs=None):
    """Local level, HalfNormal priors; ``sigma_obs`` fixes the observation noise."""

    def model_fn(y_train):
        with pm.Model() as model:
            s_level = pm.HalfNormal("s_level", 1.0)
            s_obs = pm.HalfNormal("s_obs", 1.0) if sigma_obs is None else sigma_obs
            dlm.DLM("y", dlm.LocalLevel(s_level, m0=M0, C0=C0), sigma_obs=s_obs, observed=y_train)
        return model

    return model_fn


def test_point_mass_equals_kalman_one_step_densities():
    T, missing = 16, (6, 11, 12)
    y = _series(T, seed=3, missing=missing)
    years = np.arange(1900, 1900 + T)
    ll, f, Q = _one_step_oracle(y, S_LEVEL, S_OBS, M0, C0)
    filt = dlm.kalman_filter(dlm.LocalLevel(S_LEVEL, m0=M0, C0=C0), y, sigma_obs=S_OBS)
    np.testing.assert_allclose(filt["forecast_mean"].values.ravel(), f, rtol=1e-12)
    np.testing.assert_allclose(filt["forecast_cov"].values.ravel(), Q, rtol=1e-12)
    model_fn = _fixed_model_fn(S_LEVEL, S_OBS, years)
    kw = {"draws": 50, "tune": 50, "chains": 1, "nuts_sampler": "pymc"}

    # One step ahead: one fit, equal ratios (k = -inf), missing targets not scored.
    res = lfo(model_fn, y, min_train=3, sample_kwargs=kw, random_seed=1)
    origins = [i for i in range(3, T) if i not in missing]
    assert isinstance(res, LFOResult)
    assert res.elpd_i.dims == ("year",)
    np.testing.assert_array_equal(res.elpd_i["year"].values, years[origins])
    np.testing.assert_allclose(res.elpd_i.values, ll[origins], rtol=0, atol=1e-8)
    assert abs(res.elpd - ll[origins].sum()) < 1e-8
    assert abs(res.se - np.sqrt(len(origins)) * np.std(ll[origins])) < 1e-8
    np.testing.assert_array_equal(res.fits, [3])
    assert np.isnan(res.pareto_k.values[0]) and np.all(res.pareto_k.values[1:] == -np.inf)
    assert res.n_draws == 50 and res.horizon == 1

    # Two steps ahead: blocks y_{i+1:i+2}, scored unless both are missing (origin 11).
    res2 = lfo(model_fn, y, min_train=3, horizon=2, sample_kwargs=kw, random_seed=1)
    blocks = {i: ll[i] + ll[i + 1] for i in range(3, T - 1) if i != 11}
    np.testing.assert_array_equal(res2.elpd_i["year"].values, years[list(blocks)])
    np.testing.assert_allclose(res2.elpd_i.values, list(blocks.values()), rtol=0, atol=1e-8)

    # Exact refits at every origin give the same numbers.
    ex = lfo(model_fn, y, min_train=10, exact=True, sample_kwargs=kw, random_seed=2)
    np.testing.assert_array_equal(ex.fits, [10, 13, 14, 15])  # y[11], y[12] are missing
    np.testing.assert_allclose(ex.elpd_i.values, ll[[10, 13, 14, 15]], rtol=0, atol=1e-8)
    assert np.all(np.isnan(ex.pareto_k.values)) and np.isnan(ex.k_threshold)

    # compare_lfo on two point masses: the exact paired difference and its SE.
    wrong = lfo(_fixed_model_fn(S_LEVEL, 3.0, years), y, min_train=3, sample_kwargs=kw)
    ll_wrong = _one_step_oracle(y, S_LEVEL, 3.0, M0, C0)[0][origins]
    d = ll[origins] - ll_wrong
    diff = compare_lfo(res, wrong)
    assert isinstance(diff, LFODifference)
    assert abs(diff.elpd_diff - d.sum()) < 1e-8
    assert abs(diff.se - np.sqrt(d.size) * np.std(d)) < 1e-8
    assert diff.elpd_diff > 0
    back = compare_lfo(wrong, res)
    assert back.elpd_diff == pytest.approx(-diff.elpd_diff) and back.se == pytest.approx(diff.se)


def test_psis_smoothing_matches_arviz_psislw():
    """The weights are arviz_stats' PSIS, normalised; equal ratios give uniform weights."""
    from arviz_stats.base import array_stats

    from pymc_dlm.postprocess.lfo import _psis

    r = np.random.default_rng(0).normal(size=400)
    log_w, k = _psis(r)
    ref_w, ref_k = array_stats.psislw(-r, r_eff=1.0)
    assert k == pytest.approx(float(ref_k))
    np.testing.assert_allclose(np.exp(log_w).sum(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(log_w - log_w[0], ref_w - ref_w[0], atol=1e-12)
    log_w, k = _psis(np.full(10, -2.0))
    assert k == -np.inf
    np.testing.assert_allclose(log_w, np.log(0.1))
    assert _psis(np.array([0.0, np.nan, 1.0]))[1] == np.inf


@pytest.mark.slow
def test_approximate_matches_exact_refits():
    T, L = 24, 12
    y = _series(T, seed=1)
    model_fn = _free_model_fn()
    kw = {**TINY_NUTS, "draws": 500, "tune": 300}  # 1000 draws per fit
    exact = lfo(model_fn, y, min_train=L, exact=True, sample_kwargs=kw, random_seed=1)
    approx = lfo(model_fn, y, min_train=L, sample_kwargs=kw, random_seed=2)
    forced = lfo(model_fn, y, min_train=L, k_threshold=0.2, sample_kwargs=kw, random_seed=3)
    np.testing.assert_array_equal(exact.fits, np.arange(L, T))
    assert approx.fits[0] == L and forced.fits[0] == L
    # A low threshold forces refits; the weights used always have k <= the threshold.
    assert forced.fits.size > approx.fits.size and forced.fits.size > 1
    used = forced.pareto_k.values[~np.isnan(forced.pareto_k.values)]
    assert np.all(used <= 0.2)
    refit_at = np.isin(np.arange(L, T), forced.fits)
    assert np.all(np.isnan(forced.pareto_k.values[refit_at]))
    # Monte Carlo error, measured on this series with these settings: exact LFO with three
    # seeds spreads with SD 0.02 (12 independent fits); the approximation without refits
    # deviates from their mean by up to 0.12 over three seeds (SD ~0.08: the one fit's error is
    # shared by every origin), pointwise by at most 0.035. |elpd| ~ 15.2, so 2% (0.30) is
    # about 3.5 of those SD, and 0.1 pointwise about 3 times the largest deviation seen.
    for res in (approx, forced):
        assert abs(res.elpd - exact.elpd) < 0.02 * abs(exact.elpd)
        assert np.max(np.abs(res.elpd_i.values - exact.elpd_i.values)) < 0.1
        assert res.se == pytest.approx(exact.se, rel=0.1)


@pytest.mark.slow
def test_compare_lfo_prefers_the_correct_noise():
    T, L = 30, 8
    y = _series(T, seed=5)
    kw = dict(min_train=L, sample_kwargs=TINY_NUTS)
    right = lfo(_free_model_fn(), y, random_seed=1, **kw)
    wrong = lfo(_free_model_fn(sigma_obs=3.0), y, random_seed=1, **kw)  # true sd 0.8
    diff = compare_lfo(right, wrong)
    # 10.5 +- 4.4 here: the SE is the data's (a few surprising points favour the wide noise);
    # Monte Carlo noise in the pointwise differences is ~0.05.
    assert diff.elpd_diff > 2 * diff.se > 0
    assert diff.elpd_diff == pytest.approx(right.elpd - wrong.elpd)


def test_argument_errors():
    y = _series(12, seed=0)
    good = _free_model_fn()
    with pytest.raises(TypeError, match="model_fn must be callable"):
        lfo(None, y, min_train=3)
    for bad in (0, 12, 13):
        with pytest.raises(ValueError, match=r"min_train must be in \[1, 11\]"):
            lfo(good, y, min_train=bad)
    with pytest.raises(ValueError, match=r"min_train must be in \[1, 10\]"):
        lfo(good, y, min_train=11, horizon=2)
    for bad in (2.0, True, "3"):
        with pytest.raises(TypeError, match="min_train must be an integer"):
            lfo(good, y, min_train=bad)
    with pytest.raises(ValueError, match="horizon must be in"):
        lfo(good, y, min_train=3, horizon=0)
    with pytest.raises(ValueError, match="y must have time on its first axis"):
        lfo(good, 1.0, min_train=1)
    with pytest.raises(ValueError, match="y must be finite or NaN"):
        lfo(good, np.r_[y, np.inf], min_train=3)
    with pytest.raises(TypeError, match="k_threshold must be a number"):
        lfo(good, y, min_train=3, k_threshold="0.7")
    with pytest.raises(ValueError, match="k_threshold must be a number, got nan"):
        lfo(good, y, min_train=3, k_threshold=float("nan"))
    with pytest.raises(TypeError, match="exact must be True or False"):
        lfo(good, y, min_train=3, exact=1)
    with pytest.raises(ValueError, match=r"sample_kwargs must not set \['random_seed'\]"):
        lfo(good, y, min_train=3, sample_kwargs={"random_seed": 1})
    with pytest.raises(ValueError, match="y must have an observed value after min_train=9"):
        lfo(good, np.r_[y[:9], np.nan, np.nan, np.nan], min_train=9)


def test_model_fn_errors():
    y = _series(12, seed=0)
    with pytest.raises(TypeError, match="model_fn must return a pymc.Model"):
        lfo(lambda yt: yt, y, min_train=3)

    def no_dlm(y_train):
        with pm.Model() as model:
            pm.Normal("y", 0.0, 1.0, observed=np.nan_to_num(y_train))
        return model

    with pytest.raises(ValueError, match=r"exactly one observed pymc_dlm.DLM.*has \[\]"):
        lfo(no_dlm, y, min_train=3)

    def two_dlms(y_train):
        with pm.Model() as model:
            for name in ("a", "b"):
                dlm.DLM(name, dlm.LocalLevel(1.0, m0=0.0, C0=1.0), sigma_obs=1.0, observed=y_train)
        return model

    with pytest.raises(ValueError, match=r"exactly one observed pymc_dlm.DLM.*\['a', 'b'\]"):
        lfo(two_dlms, y, min_train=3)

    def ignores_argument(y_train):
        return _free_model_fn()(y)

    with pytest.raises(ValueError, match=r"model_fn must observe its argument.*training length 3"):
        lfo(ignores_argument, y, min_train=3)


def test_compare_lfo_errors():
    def result(labels):
        elpd_i = xr.DataArray(np.zeros(len(labels)), dims=("t",), coords={"t": labels})
        k = xr.full_like(elpd_i, np.nan)
        return LFOResult(0.0, 0.0, elpd_i, k, np.array([labels[0]]), labels[0], 1, 0.7, 10)

    a = result([3, 4, 5])
    assert compare_lfo(a, a) == (0.0, 0.0)
    with pytest.raises(TypeError, match="b must be an LFOResult"):
        compare_lfo(a, 1.0)
    with pytest.raises(ValueError, match="b must score the same origins as a"):
        compare_lfo(a, result([4, 5, 6]))
    with pytest.raises(ValueError, match="b must score the same origins as a"):
        compare_lfo(a, result([4, 5]))
    assert "origins=3" in repr(a)


def test_point_mass_with_a_diffuse_level():
    """Default (diffuse) level: after y_1 the level is N(y_1, s_obs^2); the rest is textbook."""
    T = 12
    y = _series(T, seed=5)
    years = np.arange(1900, 1900 + T)

    def model_fn(y_train):
        with pm.Model(coords={"year": years}) as model:
            pm.Normal("unused", 0.0, 1.0)
            dlm.DLM("y", dlm.LocalLevel(S_LEVEL), sigma_obs=S_OBS, observed=y_train, dims="year")
        return model

    kw = {"draws": 30, "tune": 30, "chains": 1, "nuts_sampler": "pymc"}
    res = lfo(model_fn, y, min_train=4, sample_kwargs=kw, random_seed=3)
    ll = _one_step_oracle(y[1:], S_LEVEL, S_OBS, y[0], S_OBS**2)[0]  # terms of t = 2..T
    np.testing.assert_allclose(res.elpd_i.values, ll[3:], rtol=0, atol=1e-8)
    np.testing.assert_array_equal(res.elpd_i["year"].values, years[4:])
