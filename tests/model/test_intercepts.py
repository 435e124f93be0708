"""State and observation intercepts: ``StateSpace(..., obs_intercept=d, state_intercept=c)``.

Witnesses: statsmodels' ``MLEModel`` with ``obs_intercept`` and ``state_intercept`` (filter
and smoother, proper prior), the dense Gaussian of the intercept-free model on the data minus
the intercepts' mean path (the log-likelihood and its gradient in c and d, by central finite
differences), and Monte Carlo moments of simulated data, state draws and forecasts against
the analytic mean path.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from tests.support import oracles as O
from tests.support.fixed_posterior import fixed_posterior

SEED = 20261205
T, N = 24, 2
F = np.array([[1.0, 0.0]])
G = np.array([[1.0, 1.0], [0.0, 0.9]])
W = np.array([[0.3, 0.05], [0.05, 0.1]])
V = np.array([[0.5]])
M0, C0 = np.array([10.0, 0.5]), np.diag([4.0, 1.0])


def _intercepts(seed=SEED):
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.5, size=(T, N)), 3.0 + rng.normal(0.0, 1.0, size=T)


def _data(c, d, seed=SEED):
    rng = np.random.default_rng(seed + 1)
    theta, y = M0.copy(), np.empty(T)
    L = np.linalg.cholesky(W)
    for t in range(T):
        theta = G @ theta + c[t] + L @ rng.normal(size=N)
        y[t] = F[0] @ theta + d[t] + np.sqrt(V[0, 0]) * rng.normal()
    y[[5, 13]] = np.nan
    return y


def _mean_path(c, d):
    """mu_t = G mu_{t-1} + c_t from mu_0 = 0, and the observation offset F mu_t + d_t."""
    mu, out = np.zeros(N), np.empty((T, N))
    for t in range(T):
        mu = G @ mu + c[t]
        out[t] = mu
    return out, out @ F[0] + d


def _model(c, d):
    return dlm.StateSpace(
        F,
        G,
        W,
        m0=M0,
        C0=C0,
        obs_intercept=d,
        state_intercept=c,
        time_varying=("obs_intercept", "state_intercept"),
        name="trend",
    )


def _statsmodels(c, d, y):
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    mod = MLEModel(y[:, None], k_states=N, k_posdef=N)
    mod.ssm.tolerance = 0.0
    mod["design"], mod["obs_cov"], mod["transition"] = F, V, G
    mod["selection"], mod["state_cov"] = np.eye(N), W
    mod["obs_intercept"] = d[None, :]
    # statsmodels' state_intercept at index t moves alpha_t to alpha_{t+1}: our c_{t+1}.
    mod["state_intercept"] = np.concatenate([c[1:], c[-1:]]).T.copy()
    mod.initialize_known(G @ M0 + c[0], G @ C0 @ G.T + W)
    res = mod.ssm.smooth()
    return float(np.sum(res.llf_obs)), res.smoothed_state.T, res.filtered_state.T


def test_filter_and_smoother_match_statsmodels_intercepts():
    c, d = _intercepts()
    y = _data(c, d)
    ds = dlm.kalman_smoother(_model(c, d), y, sigma_obs=np.sqrt(V[0, 0]))
    loglik, smoothed, filtered = _statsmodels(c, d, y)
    assert ds.loglik.item() == pytest.approx(loglik, rel=1e-10)
    np.testing.assert_allclose(ds.smoothed_mean.values[:, :N], smoothed, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(ds.filtered_mean.values[:, :N], filtered, rtol=1e-9, atol=1e-9)
    # the constant state is exactly 1, with no variance
    np.testing.assert_array_equal(ds.smoothed_mean.values[:, N], 1.0)
    np.testing.assert_allclose(ds.smoothed_cov.values[:, N, :], 0.0, atol=1e-12)
    assert ds.state.values[-1] == "trend_intercept"


def test_loglik_and_its_gradient_in_c_and_d_against_the_dense_gaussian():
    c0, d0 = _intercepts()
    y = _data(c0, d0)
    c_var, d_var = pt.matrix("c", shape=(T, N)), pt.vector("d", shape=(T,))
    rv = dlm.DLM.dist(_model(c_var, d_var), sigma_obs=np.sqrt(V[0, 0]), steps=T)
    logp = pm.logp(rv, y)
    fn = pytensor.function([c_var, d_var], [logp, *pt.grad(logp, [c_var, d_var])])
    value, g_c, g_d = fn(c0, d0)

    def dense(c, d):
        _, offset = _mean_path(c, d)
        return O.dense_loglik(F, G, W, V, M0, C0, (y - offset)[:, None])

    assert value == pytest.approx(dense(c0, d0), rel=1e-10)
    h = 1e-5
    for t, i in [(0, 0), (7, 1), (T - 1, 0)]:
        e = np.zeros((T, N))
        e[t, i] = h
        fd = (dense(c0 + e, d0) - dense(c0 - e, d0)) / (2 * h)
        assert g_c[t, i] == pytest.approx(fd, rel=1e-6, abs=1e-8)
    for t in (0, 5, 11, T - 1):  # 5 is missing: no data term, the gradient is zero
        e = np.zeros(T)
        e[t] = h
        fd = (dense(c0, d0 + e) - dense(c0, d0 - e)) / (2 * h)
        assert g_d[t] == pytest.approx(fd, rel=1e-6, abs=1e-8)


def test_diffuse_start_equals_the_plain_model_on_shifted_data():
    """Exact diffuse start: the log-likelihood is that of y - (F mu_t + d_t) without them."""
    c, d = _intercepts()
    y = _data(c, d)
    _, offset = _mean_path(c, d)
    with_them = dlm.StateSpace(
        F,
        G,
        W,
        obs_intercept=d,
        state_intercept=c,
        time_varying=("obs_intercept", "state_intercept"),
    )
    plain = dlm.StateSpace(F, G, W)
    a = dlm.kalman_smoother(with_them, y, sigma_obs=0.7)
    b = dlm.kalman_smoother(plain, y - offset, sigma_obs=0.7)
    assert a.loglik.item() == pytest.approx(b.loglik.item(), rel=1e-11)
    mu, _ = _mean_path(c, d)
    np.testing.assert_allclose(
        a.smoothed_mean.values[:, :N], b.smoothed_mean.values + mu, atol=1e-9
    )


def _fitted(c, d, y):
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        ss = dlm.StateSpace(
            F, G, W * s**2, m0=M0, C0=C0, obs_intercept=d[0], state_intercept=c[0], name="trend"
        )
        dlm.DLM("y", ss, sigma_obs=np.sqrt(V[0, 0]), observed=y)
    post = fixed_posterior({"s": 1.0}, 2, 1000)
    import xarray as xr

    return model, xr.DataTree.from_dict({"posterior": post})


def test_states_forecasts_and_simulation_follow_the_intercepts():
    """Constant intercepts in state draws, forecasts and simulations.

    FFBS paths average to the smoother, forecast draws to the analytic forecast mean, and
    prior simulations to F mu_t + d (Monte Carlo, 5 standard errors).
    """
    c, d = _intercepts()
    c = np.broadcast_to(c[0], (T, N)).copy()
    d = np.full(T, d[0])
    y = _data(c, d)
    model, idata = _fitted(c, d, y)
    ref = dlm.kalman_smoother(_model(c, d), y, sigma_obs=np.sqrt(V[0, 0]))
    states = dlm.sample_states(idata, model, random_seed=SEED, progressbar=False)
    path = states["posterior"]["y_smoothed_state"].values.reshape(-1, T, N + 1)
    np.testing.assert_array_equal(path[..., N], 1.0)
    sd = np.sqrt(np.diagonal(ref.smoothed_cov.values, axis1=1, axis2=2)[:, :N])
    z = (path[..., :N].mean(0) - ref.smoothed_mean.values[:, :N]) / (sd / np.sqrt(len(path)))
    assert np.max(np.abs(z)) < 5

    fc = dlm.forecast(idata, model, steps=3, random_seed=SEED, progressbar=False)
    draws = fc["predictions"]["y"].values.reshape(-1, 3)
    m, P = ref.filtered_mean.values[-1, :N], ref.filtered_cov.values[-1, :N, :N]
    for h in range(3):
        m, P = G @ m + c[0], G @ P @ G.T + W
        f, q = F[0] @ m + d[0], F[0] @ P @ F[0] + V[0, 0]
        assert abs(draws[:, h].mean() - f) < 5 * np.sqrt(q / len(draws))

    sims = pm.draw(model["y"], draws=2000, random_seed=SEED, givens={model["s"]: 1.0})
    _, offset = _mean_path(c, d)
    mean_y = offset + np.array([F[0] @ np.linalg.matrix_power(G, t + 1) @ M0 for t in range(T)])
    z = (sims.mean(0) - mean_y) / (sims.std(0) / np.sqrt(len(sims)))
    assert np.max(np.abs(z)) < 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"obs_intercept": np.zeros((T, 2))}, r"obs_intercept must have shape \(1,\)"),
        ({"state_intercept": np.zeros(3)}, r"state_intercept must have shape \(2,\)"),
        (
            {"state_intercept": np.zeros(2), "time_varying": "state_intercept"},
            r"state_intercept must have shape \(T, 2\) \(declared time-varying\)",
        ),
        (
            {"time_varying": "obs_intercept"},
            r"time_varying names \['obs_intercept'\], but no intercept",
        ),
        ({"obs_intercept": [np.nan]}, "obs_intercept must be finite"),
    ],
    ids=["obs shape", "state shape", "time-varying shape", "declared not given", "nan"],
)
def test_intercepts_are_checked_when_the_model_is_built(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dlm.StateSpace(F, G, W, **kwargs)


def test_a_sum_keeps_each_parts_intercept_state():
    c, d = _intercepts()
    total = _model(c, d) + dlm.LocalLevel(0.2, C0=1.0)
    assert total.state_labels == ("state_1", "state_2", "trend_intercept", "level")
    assert [name for name, *_ in total.components] == ["trend", "trend_intercept", "level"]
    y = _data(c, d)
    ds = dlm.kalman_filter(total, y, sigma_obs=0.7)
    assert np.isfinite(ds.loglik.item())
