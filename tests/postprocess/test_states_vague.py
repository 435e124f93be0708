"""``sample_states`` and ``forecast`` under a vague proper prior keep every digit.

The vague-prior case of ``tests/support/vague_prior.py`` (C0 = 1e7 against an observation
variance of 1e-3) would make a covariance-form filter lose about 7 digits. The kernels'
forward pass takes square-root steps there (the accuracy guard of the log-likelihood) and
their backward pass conditions on the next state in square-root form over those steps, so
the draws stay with the kernels. Witness: the 60-digit mpmath filter and smoother of
``tests/support/oracles.py``, per draw. The posterior has two draws: the vague case and the
same model with a larger observation noise (no square-root step); both must match the
witness.
"""

import numpy as np
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.kalman.constants import CANCELLATION_LIMIT, OK
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.fused.states import ffbs_kernel
from tests.support import oracles as O
from tests.support.vague_prior import C0_VAGUE, S_LEVEL, S_OBS, S_SEAS, S_SLOPE, vague_case

#: Observation standard deviation of the second draw: a ratio of the prior to the noise
#: (about 2e5) below the guard's limit (1e6).
S_OBS_WIDE = 10.0


def _model(y):
    with pm.Model() as model:
        s_level = pm.HalfNormal("s_level", 1.0)
        s_slope = pm.HalfNormal("s_slope", 1.0)
        s_seas = pm.HalfNormal("s_seas", 1.0)
        s_obs = pm.HalfNormal("s_obs", 1.0)
        comp = dlm.LocalLinearTrend(s_level, s_slope, m0=0.0, C0=C0_VAGUE)
        comp = comp + dlm.Seasonal(4, s_seas, m0=0.0, C0=C0_VAGUE)
        dlm.DLM("y", comp, sigma_obs=s_obs, observed=y)
    return model


def _factor(W):
    """The factor of the diagonal W (its zeros kept), in the kernels' layout."""
    assert np.array_equal(W, np.diag(np.diag(W)))
    return np.diag(np.sqrt(np.diag(W)))[None, None]


@pytest.fixture(scope="module")
def vague():
    ref, y = vague_case()
    values = {
        "s_level": [S_LEVEL, S_LEVEL],
        "s_slope": [S_SLOPE, S_SLOPE],
        "s_seas": [S_SEAS, S_SEAS],
        "s_obs": [S_OBS, S_OBS_WIDE],
    }
    post = xr.Dataset({k: (("chain", "draw"), np.array([v])) for k, v in values.items()})
    idata = xr.DataTree.from_dict({"posterior": post})
    model = _model(y)
    states = dlm.sample_states(idata, model, random_seed=3, progressbar=False, log_likelihood=True)
    return ref, y, states


def test_the_kernels_draw_the_vague_case_to_the_exact_moments(vague):
    """With zero noise the FFBS draws are the filtered and the smoothed means.

    The premise, from the oracle's numbers: the first prediction's variance is far beyond the
    guard's limit against the noise in the vague case, and below it in the wider one.
    """
    ref, y, _ = vague
    n = ref.G.shape[0]
    L0 = np.linalg.cholesky(ref.C0)
    R1 = ref.G @ ref.C0 @ ref.G.T + ref.W
    ratios = [(ref.F @ R1 @ ref.F.T).item() / s**2 for s in (S_OBS, S_OBS_WIDE)]
    assert ratios[0] > CANCELLATION_LIMIT > ratios[1]
    for s_obs in (S_OBS, S_OBS_WIDE):
        inputs = (
            y[None, :, None],
            ref.F[None, None],
            ref.G[None, None],
            _factor(ref.W),
            np.full((1, 1, 1), s_obs),
            ref.m0[None],
            L0[None],
            np.zeros((1, n, 0)),
        )
        eps = np.zeros((1, len(y), n))
        filt, path, ll_t, status = ffbs_kernel(Inputs(*inputs), eps, eps)
        exact = O.mpmath_filter(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, y, smooth=True)
        assert int(status[0]) == OK
        scale = np.abs(exact.smoothed_mean).max()
        np.testing.assert_allclose(filt[0], exact.filtered_mean, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(path[0], exact.smoothed_mean, rtol=0, atol=1e-11 * scale)
        np.testing.assert_allclose(ll_t[0].sum(), exact.loglik, rtol=1e-11)


def test_terms_of_every_draw_match_the_exact_log_likelihood(vague):
    ref, y, states = vague
    terms = states["log_likelihood"]["y"]
    got = terms.sum(dim=[d for d in terms.dims if d not in ("chain", "draw")])
    for k, s_obs in enumerate((S_OBS, S_OBS_WIDE)):
        exact = float(O.mpmath_loglik(ref.F, ref.G, ref.W, s_obs**2, ref.m0, ref.C0, y))
        assert abs(float(got[0, k]) - exact) <= 1e-8 * abs(exact), (k, float(got[0, k]), exact)


def test_redrawn_paths_are_finite_and_sum_to_the_signal(vague):
    _, _, states = vague
    post = states["posterior"]
    path = post["y_smoothed_state"].values
    assert np.isfinite(path).all()
    np.testing.assert_allclose(
        post["y_components"].sum("y_component").values,
        path[..., 0] + path[..., 2],
        rtol=1e-12,
        atol=1e-12,
    )


def test_forecast_keeps_the_vague_draws_on_the_kernel(monkeypatch):
    """One-step forecasts: every draw stays with the kernel, the scans are never compiled.

    Draws alternate between the vague case and the wider noise. Witness: the exact one-step
    forecast moments F G m_T and F (G C_T G' + W) F' + V of the mpmath filter, per kind of
    draw, against the Monte Carlo mean and variance (5 standard errors).
    """
    import importlib

    forecast_module = importlib.import_module("pymc_dlm.postprocess.forecast")

    ref, y = vague_case()
    n_draw = 400
    s_obs = np.where(np.arange(n_draw) % 2 == 0, S_OBS, S_OBS_WIDE)
    values = {"s_level": S_LEVEL, "s_slope": S_SLOPE, "s_seas": S_SEAS}
    post = {k: (("chain", "draw"), np.full((1, n_draw), v)) for k, v in values.items()}
    post["s_obs"] = (("chain", "draw"), s_obs[None])
    idata = xr.DataTree.from_dict({"posterior": xr.Dataset(post)})
    calls = []
    graph = forecast_module._forecast_graph

    def recording(*args, **kwargs):
        calls.append(args)
        return graph(*args, **kwargs)

    monkeypatch.setattr(forecast_module, "_forecast_graph", recording)
    fc = dlm.forecast(idata, _model(y), steps=1, random_seed=5, progressbar=False)
    assert calls == []  # no draw needed the scans
    draws = fc["predictions"]["y"].values.reshape(n_draw)
    for s, picked in ((S_OBS, draws[0::2]), (S_OBS_WIDE, draws[1::2])):
        mom = O.mpmath_filter(ref.F, ref.G, ref.W, s**2, ref.m0, ref.C0, y)
        m, C = mom.filtered_mean[-1], mom.filtered_cov[-1]
        mean = (ref.F @ ref.G @ m).item()
        var = (ref.F @ (ref.G @ C @ ref.G.T + ref.W) @ ref.F.T).item() + s**2
        se = np.sqrt(var / len(picked))
        assert abs(picked.mean() - mean) < 5 * se, (s, picked.mean(), mean)
        assert abs(picked.var() / var - 1) < 5 * np.sqrt(2 / len(picked)), (s, picked.var(), var)
