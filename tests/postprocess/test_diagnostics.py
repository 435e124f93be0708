"""Residual diagnostics against statsmodels (STYLE.md §8: independent witnesses).

Witnesses: statsmodels' ``standardized_forecasts_error`` (``UnobservedComponents`` with exact
diffuse initialisation; ``MLEModel`` with ``initialize_known``/``initialize('diffuse')``), its
``test_serial_correlation``/``test_normality``/``test_heteroskedasticity`` on the same
residuals, its ``acf(missing="conservative")``, ``jarque_bera`` and
``breakvar_heteroskedasticity_test`` functions where residuals are missing, and
``kalman_filter`` at the same values for the per-draw residuals. The rule for the diffuse
period is checked against F P_inf F' computed here from F and ``predicted_diffuse_cov``.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pymc as pm  # noqa: E402
import pytensor.tensor as pt  # noqa: E402
import pytest  # noqa: E402
import xarray as xr  # noqa: E402
from scipy import stats  # noqa: E402

import pymc_dlm as dlm  # noqa: E402
from pymc_dlm.postprocess.diagnostics import residual_tests, standardized_residuals  # noqa: E402
from pymc_dlm.postprocess.diagnostics_plot import plot_diagnostics  # noqa: E402
from pymc_dlm.postprocess.diagnostics_posterior import posterior_residuals  # noqa: E402
from tests.support.fixed_posterior import fixed_posterior  # noqa: E402

sm = pytest.importorskip("statsmodels.api")

S_LEVEL, S_OBS = 38.33, 122.88
NILE_MISSING = [0, 20, 21, 60]


def _nile_sm(flow):
    mod = sm.tsa.UnobservedComponents(flow, level="llevel", use_exact_diffuse=True)
    return mod.smooth([S_OBS**2, S_LEVEL**2])


def _nile_ours(flow, smooth=False):
    run = dlm.kalman_smoother if smooth else dlm.kalman_filter
    return standardized_residuals(run(dlm.LocalLevel(S_LEVEL), flow, sigma_obs=S_OBS))


def _close(ours, ref, d, y):
    """Equal after the first d time steps, NaN where y is missing.

    statsmodels stores 0 for a missing value of a single series and NaN for several.
    """
    ours, ref = np.asarray(ours)[d:], np.where(np.isnan(y), np.nan, ref)[d:]
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(ref))
    np.testing.assert_allclose(ours, ref, rtol=1e-10, atol=1e-10)


def test_nile_matches_statsmodels(nile):
    years, flow = nile
    r = _nile_ours(flow)
    res = _nile_sm(flow)
    assert res.nobs_diffuse == 1
    assert r.dims == ("time",) and r.name == "standardized_residual"
    assert np.isnan(r.values[0])  # the diffuse period
    _close(r.values, res.filter_results.standardized_forecasts_error[0], 1, flow)


def test_nile_missing_values_match_statsmodels(nile):
    _, flow = nile
    flow = flow.copy()
    flow[NILE_MISSING] = np.nan
    r = _nile_ours(flow).values
    np.testing.assert_array_equal(_nile_ours(flow, smooth=True).values, r)
    res = _nile_sm(flow)
    assert res.nobs_diffuse == 2  # y_1 missing: the level meets data at t = 2
    assert np.isnan(r[:2]).all() and np.isnan(r[NILE_MISSING]).all()
    assert np.isfinite(np.delete(r, [0, 1, *NILE_MISSING])).all()
    _close(r, res.filter_results.standardized_forecasts_error[0], 2, flow)


# Two series, two states, non-diagonal V, a proper prior (statsmodels: initialize_known).
MV_F = np.array([[1.0, 0.5], [0.3, 1.0]])
MV_G = np.array([[0.95, 0.1], [0.0, 0.8]])
MV_W = np.array([[0.32, 0.128], [0.128, 0.256]])
MV_M0 = np.array([1.0, -0.5])
MV_C0 = np.array([[4.0, 1.0], [1.0, 3.0]])
MV_S1, MV_S2, MV_RHO = 0.6, 1.1, 0.7
MV_V = np.array([[MV_S1**2, MV_RHO * MV_S1 * MV_S2], [MV_RHO * MV_S1 * MV_S2, MV_S2**2]])


def _mv_data(T=16, seed=4):
    rng = np.random.default_rng(seed)
    theta, y = rng.multivariate_normal(MV_M0, MV_C0), np.empty((T, 2))
    for t in range(T):
        theta = MV_G @ theta + rng.multivariate_normal(np.zeros(2), MV_W)
        y[t] = MV_F @ theta + rng.multivariate_normal(np.zeros(2), MV_V)
    y[4] = np.nan
    y[9, 1] = np.nan
    y[12, 0] = np.nan
    return y


def _mlemodel(F, G, W, V, y):
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    mod = MLEModel(y, k_states=G.shape[0], k_posdef=G.shape[0])
    mod.ssm.tolerance = 0.0
    mod["design"], mod["obs_cov"], mod["transition"] = F, V, G
    mod["selection"], mod["state_cov"] = np.eye(G.shape[0]), W
    return mod


def test_multivariate_proper_prior_matches_statsmodels():
    y = _mv_data()
    ds = dlm.kalman_filter(dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, MV_C0), y, obs_cov=MV_V)
    r = standardized_residuals(ds)
    assert r.dims == ("time", "series")
    mod = _mlemodel(MV_F, MV_G, MV_W, MV_V, y)
    P1 = MV_G @ MV_C0 @ MV_G.T + MV_W  # README's translation: a1 = G m0, P1 = G C0 G' + W
    mod.ssm.initialize_known(MV_G @ MV_M0, P1)
    ref = mod.ssm.filter().standardized_forecasts_error.T
    assert np.isnan(r.values[4]).all() and np.isnan(r.values[9, 1]) and np.isfinite(r.values[9, 0])
    _close(r.values, ref, 0, y)


def test_multivariate_diffuse_matches_statsmodels_and_the_rule():
    """Two series observing one trend, partly missing rows in the diffuse period."""
    F = np.array([[1.0, 0.0], [1.0, 0.0]])
    G = np.array([[1.0, 1.0], [0.0, 1.0]])
    W, V = np.diag([0.2, 0.01]), np.array([[0.5, 0.2], [0.2, 0.4]])
    rng = np.random.default_rng(7)
    y = np.cumsum(rng.normal(size=(25, 1)), axis=0) + rng.normal(size=(25, 2))
    y[0, 1] = y[1, 0] = np.nan
    y[6] = np.nan
    model = dlm.StateSpace(F, G, W, C0="diffuse")
    ds = dlm.kalman_filter(model, y, obs_cov=V)
    r = standardized_residuals(ds).values
    mod = _mlemodel(F, G, W, V, y)
    mod.ssm.initialize("diffuse")
    res = mod.ssm.filter()
    _close(r, res.standardized_forecasts_error.T, res.nobs_diffuse, y)
    # The documented rule: NaN where F P_inf F' over the observed components is nonzero.
    F_model = dlm.as_statespace(model).F.eval()
    observed = ~np.isnan(y)
    P_inf = ds["predicted_diffuse_cov"].values
    FPF = np.einsum("ij,tjk,lk->til", F_model, P_inf, F_model)
    rule = [np.any(np.abs(FPF[t][np.ix_(o, o)]) > 1e-12) for t, o in enumerate(observed)]
    assert sum(rule) == 2
    np.testing.assert_array_equal(np.isnan(r).all(axis=1), np.array(rule) | ~observed.any(1))


def test_uninformative_step_in_the_diffuse_period_keeps_its_residual():
    """A regressor row parallel to the first leaves the forecast variance at t = 2 finite.

    statsmodels leaves out all three steps with P_inf != 0 from its tests; its standardized
    error at t = 2 is the same finite-variance one.
    """
    X = np.array([[1.0, 0.5], [2.0, 1.0]] + [[1.0, (-1.0) ** t] for t in range(2, 20)])
    rng = np.random.default_rng(11)
    y = X @ np.array([1.0, -2.0]) + rng.normal(0, 0.5, 20)
    model = dlm.Regression(X[:, :2], sigma=[0.1, 0.2])
    ds = dlm.kalman_filter(model, y, sigma_obs=0.5)
    r = standardized_residuals(ds).values
    F = np.ascontiguousarray(X[:, None, :].transpose(1, 2, 0))
    mod = _mlemodel(F, np.eye(2), np.diag([0.01, 0.04]), np.array([[0.25]]), y)
    mod.ssm.initialize("diffuse")
    res = mod.ssm.filter()
    assert res.nobs_diffuse == 3
    ref = res.standardized_forecasts_error[0]
    np.testing.assert_array_equal(np.isnan(r), [True, False, True] + [False] * 17)
    np.testing.assert_allclose(r[1], ref[1], rtol=1e-10)
    _close(r, ref, 3, y)


def test_residual_tests_match_statsmodels(nile):
    _, flow = nile
    res = _nile_sm(flow)
    out = residual_tests(_nile_ours(flow))
    lb = out.loc["ljung_box"]
    ref_lb = res.test_serial_correlation("ljungbox")[0]  # (2, lags), default lags = 10
    np.testing.assert_array_equal(lb["lag"].to_numpy(), np.arange(1, 11))
    np.testing.assert_allclose(lb["statistic"], ref_lb[0], rtol=1e-9)
    np.testing.assert_allclose(lb["p_value"], ref_lb[1], rtol=1e-9)
    jb, pv, skew, kurt = res.test_normality("jarquebera")[0]
    np.testing.assert_allclose(out.loc["jarque_bera", ["statistic", "p_value"]], [jb, pv], 1e-9)
    np.testing.assert_allclose(out.loc[["skew", "kurtosis"], "statistic"], [skew, kurt], 1e-9)
    H, pH = res.test_heteroskedasticity("breakvar")[0]
    np.testing.assert_allclose(out.loc["heteroskedasticity", ["statistic", "p_value"]], [H, pH])


def test_residual_tests_with_missing_values(nile):
    from statsmodels.stats.stattools import jarque_bera
    from statsmodels.tsa.stattools import acf, breakvar_heteroskedasticity_test

    _, flow = nile
    flow = flow.copy()
    flow[NILE_MISSING] = np.nan
    x = _nile_ours(flow).values
    present = x[~np.isnan(x)]
    n = present.size
    out = residual_tests(x, lags=[1, 4, 12])
    r = acf(x, nlags=12, missing="conservative", fft=False)[1:]
    q = n * (n + 2) * np.cumsum(r**2 / (n - np.arange(1, 13)))  # Ljung & Box (1978)
    lb = out.loc["ljung_box"]
    np.testing.assert_allclose(lb["statistic"], q[[0, 3, 11]], rtol=1e-10)
    np.testing.assert_allclose(lb["p_value"], stats.chi2.sf(q[[0, 3, 11]], [1, 4, 12]))
    ref = jarque_bera(present)
    np.testing.assert_allclose(out.loc["jarque_bera", ["statistic", "p_value"]], ref[:2])
    het = breakvar_heteroskedasticity_test(present, subset_length=round(n / 3))
    np.testing.assert_allclose(
        out.loc["heteroskedasticity", ["statistic", "p_value"]], [het.statistic, het.pvalue]
    )


def test_residual_tests_several_series():
    y = _mv_data(T=60, seed=5)
    ds = dlm.kalman_filter(dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, MV_C0), y, obs_cov=MV_V)
    r = standardized_residuals(ds)
    out = residual_tests(r, lags=3)
    assert out.index.names == ["series", "test"]
    for i in range(2):
        one = residual_tests(r.values[:, i], lags=3)
        pd.testing.assert_frame_equal(out.loc[i], one)


def test_residual_tests_bad_arguments(nile):
    _, flow = nile
    r = _nile_ours(flow)
    with pytest.raises(ValueError, match="lags"):
        residual_tests(r, lags=0)
    with pytest.raises(ValueError, match="lags"):
        residual_tests(r, lags=99)
    with pytest.raises(TypeError, match="lags"):
        residual_tests(r, lags=2.5)
    with pytest.raises(ValueError, match="resid"):
        residual_tests(np.zeros((2, 3, 4)))
    with pytest.raises(TypeError, match="filtered"):
        standardized_residuals(r)
    with pytest.raises(ValueError, match="filtered"):
        standardized_residuals(xr.Dataset({"observed": r}))


def test_plot_diagnostics(nile):
    _, flow = nile
    r = _nile_ours(flow)
    fig = plot_diagnostics(r)
    try:
        assert isinstance(fig, matplotlib.figure.Figure)
        assert len(fig.axes) == 4
        assert fig.axes[0].get_xlabel() == "time"
    finally:
        plt.close(fig)
    fig = plt.figure()
    try:
        assert plot_diagnostics(r.values, lags=5, fig=fig) is fig and len(fig.axes) == 4
    finally:
        plt.close(fig)
    with pytest.raises(ValueError, match="resid"):
        plot_diagnostics(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="lags"):
        plot_diagnostics(r, lags=0)


def test_no_matplotlib_at_import():
    import subprocess
    import sys

    code = (
        "import sys, pymc_dlm.postprocess.diagnostics, pymc_dlm.postprocess.diagnostics_plot, "
        "pymc_dlm.postprocess.diagnostics_posterior; assert 'matplotlib' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------------
# Per posterior draw: a posterior whose draws all hold one value
# --------------------------------------------------------------------------------------------


def test_posterior_residuals_nile(nile):
    years, flow = nile
    flow = flow.copy()
    flow[NILE_MISSING] = np.nan
    with pm.Model(coords={"year": years}) as model:
        s_level = pm.HalfNormal("sigma_level", 100.0)
        s_obs = pm.HalfNormal("sigma_obs", 200.0)
        dlm.DLM("flow", dlm.LocalLevel(s_level), sigma_obs=s_obs, observed=flow, dims="year")
    post = fixed_posterior({"sigma_level": S_LEVEL, "sigma_obs": S_OBS}, 2, 7)
    idata = xr.DataTree.from_dict({"posterior": post})
    out = posterior_residuals(idata, model, thin=2, chunk_size=3, progressbar=False)
    da = out["flow"]
    assert da.dims == ("chain", "draw", "year") and da.shape == (2, 4, 100)
    np.testing.assert_array_equal(da["draw"].values, [0, 2, 4, 6])
    np.testing.assert_array_equal(da["year"].values, years)
    ref = _nile_ours(flow).values
    np.testing.assert_allclose(da.values, np.broadcast_to(ref, da.shape), rtol=1e-12, atol=1e-12)
    assert "flow" not in idata["posterior"]
    with pytest.raises(ValueError, match="thin"):
        posterior_residuals(idata, model, thin=0)


def test_posterior_residuals_multivariate():
    y = _mv_data()
    with pm.Model(coords={"time": np.arange(101, 117), "series": ["a", "b"]}) as model:
        s1, s2 = pm.HalfNormal("s1", 1.0), pm.HalfNormal("s2", 1.0)
        rho = pm.Uniform("rho", -1.0, 1.0)
        V = pt.stack([pt.stack([s1**2, rho * s1 * s2]), pt.stack([rho * s1 * s2, s2**2])])
        ss = dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, MV_C0)
        dlm.DLM("z", ss, obs_cov=V, observed=y, dims=("time", "series"))
    values = {"s1": MV_S1, "s2": MV_S2, "rho": MV_RHO}
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior(values, 1, 3)})
    da = posterior_residuals(idata, model, progressbar=False)["z"]
    assert da.dims == ("chain", "draw", "time", "series") and da.shape == (1, 3, 16, 2)
    ds = dlm.kalman_filter(dlm.StateSpace(MV_F, MV_G, MV_W, MV_M0, MV_C0), y, obs_cov=MV_V)
    ref = standardized_residuals(ds).values
    np.testing.assert_allclose(da.values, np.broadcast_to(ref, da.shape), rtol=1e-10, atol=1e-12)


def test_posterior_residuals_batched():
    """Three independent series with their own variances: batch axes behind the draw axis."""
    rng = np.random.default_rng(3)
    s_level, s_obs = np.array([0.3, 1.0, 2.5]), np.array([0.5, 0.4, 3.0])
    y = np.cumsum(rng.normal(size=(3, 15)) * s_level[:, None], axis=1)
    y = y + rng.normal(size=(3, 15)) * s_obs[:, None]
    y[0, 3] = np.nan
    regions = ["e", "w", "s"]
    with pm.Model(coords={"region": regions, "t": np.arange(15)}) as model:
        sl = pm.HalfNormal("sl", 1.0, dims="region")
        so = pm.HalfNormal("so", 1.0, dims="region")
        dlm.DLM("y", dlm.LocalLevel(sl), sigma_obs=so, observed=y, dims=("region", "t"))
    dims = {"sl": ("region",), "so": ("region",)}
    post = fixed_posterior({"sl": s_level, "so": s_obs}, 2, 2, dims=dims)
    idata = xr.DataTree.from_dict({"posterior": post.assign_coords(region=regions)})
    da = posterior_residuals(idata, model, progressbar=False)["y"]
    assert da.dims == ("chain", "draw", "region", "t") and da.shape == (2, 2, 3, 15)
    for i in range(3):
        ds = dlm.kalman_filter(dlm.LocalLevel(s_level[i]), y[i], sigma_obs=s_obs[i])
        ref = standardized_residuals(ds).values
        got = da.values[:, :, i]
        np.testing.assert_allclose(got, np.broadcast_to(ref, got.shape), rtol=1e-10, atol=1e-12)


def test_posterior_residuals_time_varying_F_and_V():
    """A regression (F varies over time) and a time-varying observation noise."""
    rng = np.random.default_rng(2)
    T = 25
    X = rng.normal(size=(T, 2))
    y = X @ [1.0, -1.0] + np.cumsum(rng.normal(size=T)) + 0.5 * rng.normal(size=T)
    y[5] = np.nan
    scale = np.linspace(0.5, 2.0, T)
    with pm.Model() as model:
        so, sl = pm.HalfNormal("so", 1.0), pm.HalfNormal("sl", 1.0)
        ss = dlm.LocalLevel(sl) + dlm.Regression(X)
        dlm.DLM("y", ss, sigma_obs=so * scale, obs_time_varying=True, observed=y)
    idata = xr.DataTree.from_dict({"posterior": fixed_posterior({"so": 0.5, "sl": 1.0}, 1, 2)})
    da = posterior_residuals(idata, model, progressbar=False)["y"]
    assert da.dims == ("chain", "draw", "y_dim_0")
    # Witness: the fixed-value filter with V_t folded into the data and F (y_t / s_t).
    Xs = X / scale[:, None]
    ref_model = dlm.StateSpace(
        np.concatenate([1 / scale[:, None, None], Xs[:, None, :]], axis=-1),
        np.eye(3),
        np.diag([1.0, 0.0, 0.0]),
        C0="diffuse",
        time_varying=["F"],
    )
    ds = dlm.kalman_filter(ref_model, y / scale, sigma_obs=0.5)
    ref = standardized_residuals(ds).values
    np.testing.assert_allclose(da.values, np.broadcast_to(ref, da.shape), rtol=1e-10, atol=1e-12)
    assert np.isnan(ref[[0, 1, 2, 5]]).all() and np.isfinite(np.delete(ref, [0, 1, 2, 5])).all()
