r"""``kalman_filter`` on discounted models, and the refusals of the rest of post-processing.

Every moment of the Dataset (a_t, R_t, f_t, Q_t, m_t, C_t and, with a learned variance, n_t,
S_t and δ_V n_{t-1}) against ``wh_moments`` of ``tests.support.discount_oracles``: West &
Harrison's recursion written in numpy, with a known V (§6.3) or a learned one at the current
estimate (Table 4.3 form, §4.6 and §10.8). That oracle is tied to the checked ones: its
log-likelihood equals the dense Gaussian (oracle 1) or ``wh_loglik`` (oracle 3), and its W_t
equals ``covariance_recursion``'s. A diffuse learned-variance level is checked through the
exact κ → ∞ limit of its first observation: θ_1 | y_1 ~ N(y_1, V), after which the filter is
W&H's recursion with a proper prior. After NUTS, ``forecast(origin=)``,
``posterior_predictive`` and ``posterior_residuals`` run on these models (their values are
tested in ``test_discount_predictive.py``);
``lfo`` scores them, checked against the recursion's one-step Student-t terms.
"""

import math

import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm
from tests.support.discount_cases import (
    MISSING,
    POLYNOMIAL3_STATESPACE,
    TREND_SEASONAL_REGRESSION,
    T,
    assert_loglik,
    series,
)
from tests.support.discount_oracles import (
    combine,
    covariance_recursion,
    known_v_loglik,
    poly_block,
    wh_loglik,
    wh_moments,
)

MOMENTS = (
    "predicted_mean",
    "predicted_cov",
    "forecast_mean",
    "forecast_cov",
    "filtered_mean",
    "filtered_cov",
)
LEARNED = ("dof", "scale", "forecast_dof")
DIMS = {
    "predicted_mean": ("time", "state"),
    "predicted_cov": ("time", "state", "state2"),
    "forecast_mean": ("time",),
    "forecast_cov": ("time",),
    "filtered_mean": ("time", "state"),
    "filtered_cov": ("time", "state", "state2"),
    "dof": ("time",),
    "scale": ("time",),
    "forecast_dof": ("time",),
}


def assert_moments(ds, expected, names, start=0, tol=1e-9):
    """Each variable from time index ``start`` within tol·max(1, max |expected|), its dims."""
    assert np.array_equal(ds["time"].values, np.arange(1, T + 1))
    for name in names:
        got, ref = ds[name].values[start:], expected[name]
        assert ds[name].dims == DIMS[name], name
        err = np.max(np.abs(got - ref))
        assert err <= tol * max(1.0, np.max(np.abs(ref))), f"{name}: off by {err:.3g}"


KNOWN_V_CASES = {
    "trend(δ)+seasonal(δ)+regression(sigma)": TREND_SEASONAL_REGRESSION,
    "polynomial3(δ)+statespace(δ)": POLYNOMIAL3_STATESPACE,
}


@pytest.mark.parametrize("case", list(KNOWN_V_CASES))
def test_known_v_moments_equal_the_recursion(case):
    """Known V, proper prior, two missing values: every moment and the dense loglik."""
    y = series(40, MISSING)
    ref = KNOWN_V_CASES[case].oracle()
    expected = wh_moments(ref, y, V=1.3**2)
    # the oracle's own ties: dense Gaussian loglik and the data-free W_t
    assert_loglik(expected["loglik"], known_v_loglik(ref, 1.3**2, y), 1e-12)
    P = ref.G @ np.vstack([ref.C0[None], expected["filtered_cov"][:-1]]) @ ref.G.T
    Ws = covariance_recursion(ref, 1.3**2, ~np.isnan(y))
    np.testing.assert_allclose(expected["predicted_cov"] - P, Ws, atol=1e-13)

    ds = dlm.kalman_filter(KNOWN_V_CASES[case].package(), y, sigma_obs=1.3)
    assert set(ds.data_vars) == {*MOMENTS, "loglik", "observed"}
    assert_moments(ds, expected, MOMENTS)
    assert_loglik(float(ds["loglik"]), known_v_loglik(ref, 1.3**2, y), label=case)


@pytest.mark.parametrize("delta_v", [0.9, 1.0])
def test_learned_variance_moments_equal_west_harrison(delta_v):
    """LearnedVariance(5, 2, δ_V), two discounted blocks and a sigma block, two gaps.

    R_t, Q_t at S_{t-1}; C_t at S_t; n_t, S_t and the forecast's δ_V n_{t-1}: W&H's recursion.
    """
    y = series(41, MISSING)
    ref = TREND_SEASONAL_REGRESSION.oracle()
    expected = wh_moments(ref, y, n0=5.0, S0=2.0, delta_v=delta_v)
    assert_loglik(expected["loglik"], wh_loglik(ref, y, 5.0, 2.0, delta_v), 1e-12)
    # the gaps: n_t = δ_V n_{t-1} and S_t = S_{t-1} there
    for t in MISSING:
        assert expected["dof"][t] == pytest.approx(delta_v * expected["dof"][t - 1], rel=1e-15)
        assert expected["scale"][t] == pytest.approx(expected["scale"][t - 1], rel=1e-15)

    obs_var = dlm.LearnedVariance(5.0, 2.0, discount=delta_v)
    ds = dlm.kalman_filter(TREND_SEASONAL_REGRESSION.package(), y, obs_var=obs_var)
    assert set(ds.data_vars) == {*MOMENTS, *LEARNED, "loglik", "observed"}
    assert_moments(ds, expected, MOMENTS + LEARNED)
    assert_loglik(float(ds["loglik"]), wh_loglik(ref, y, 5.0, 2.0, delta_v))


@pytest.mark.parametrize("delta_v", [1.0, 0.9])
def test_diffuse_learned_level_counts_dof_after_the_diffuse_period(delta_v):
    """Diffuse level, y_1 missing, y_2 fixes the level: dof and scale wait for y_3.

    n_t = δ_V n_{t-1}, S_t = S0 while the diffuse state is unresolved and at the observation
    that resolves it (W&H §4.10: it is not counted); then n_t grows by 1 per observed value.
    In the κ → ∞ limit θ_2 | y_{1:2} ~ N(y_2, V) with n, d untouched (C_2 = S0 at scale S_2 =
    S0), so from t = 3 on the filter is W&H's recursion with the proper prior m0 = y_2,
    C0 = S0, n0' = δ_V² n0; its loglik adds the resolving step's -½ log 2π (F P∞ F' = 1).
    """
    n0, S0, y = 4.0, 1.5, series(42, (0, 5))
    obs_var = dlm.LearnedVariance(n0, S0, discount=delta_v)
    ds = dlm.kalman_filter(dlm.LocalLevel(discount=0.9), y, obs_var=obs_var)

    ordinary = ~np.isnan(y) & (np.arange(T) >= 2)
    n, dof = n0, []
    for counted in ordinary:
        n = delta_v * n + counted
        dof.append(n)
    np.testing.assert_allclose(ds["dof"].values, dof, rtol=1e-12)
    np.testing.assert_allclose(ds["scale"].values[:2], S0, rtol=1e-12)
    assert abs(ds["scale"].values[2] - S0) > 1e-2
    np.testing.assert_allclose(ds["filtered_diffuse_cov"].values[:, 0, 0], [1.0] + [0.0] * (T - 1))
    np.testing.assert_allclose(ds["filtered_cov"].values[:2, 0, 0], [0.0, S0], atol=1e-12)
    np.testing.assert_allclose(ds["filtered_mean"].values[1, 0], y[1], rtol=1e-12)

    rest = combine(poly_block(1, delta=0.9, m0=y[1], C0=S0, n_time=T - 2))
    expected = wh_moments(rest, y[2:], n0=delta_v**2 * n0, S0=S0, delta_v=delta_v)
    assert_moments(ds, expected, MOMENTS + LEARNED, start=2)
    assert_loglik(float(ds["loglik"]), expected["loglik"] - 0.5 * math.log(2.0 * math.pi))


# --------------------------------------------------------------------------------------------
# What kalman_filter refuses, and the post-processing that refuses discounted models
# --------------------------------------------------------------------------------------------


LEVEL_MODEL = (lambda: dlm.LocalLevel(discount=0.9, m0=10.0, C0=4.0), series(43))
TWO_SERIES = (
    lambda: dlm.StateSpace(np.ones((2, 1)), np.eye(1), discount=0.9, m0=0.0, C0=1.0),
    np.column_stack([series(43), series(43)]),
)
LEARNED_V = dlm.LearnedVariance(5.0, 2.0)
INPUT_CHECKS = {
    "obs_var and sigma_obs": (
        LEVEL_MODEL,
        {"obs_var": LEARNED_V, "sigma_obs": 1},
        TypeError,
        "obs_var",
    ),
    "obs_var on two series": (TWO_SERIES, {"obs_var": LEARNED_V}, ValueError, "one series"),
    "obs_var a float": (LEVEL_MODEL, {"obs_var": 2.0}, TypeError, "LearnedVariance"),
    "obs_var a tuple (n0, S0)": (
        LEVEL_MODEL,
        {"obs_var": (5.0, 2.0)},
        TypeError,
        "LearnedVariance",
    ),
}


@pytest.mark.parametrize("case", list(INPUT_CHECKS))
def test_kalman_filter_input_checks(case):
    (make, y), kwargs, error, match = INPUT_CHECKS[case]
    with pytest.raises(error, match=match):
        dlm.kalman_filter(make(), y, **kwargs)


def _sales_model(y):
    with pm.Model() as model:
        s = pm.HalfNormal("s", 2.0)
        dlm.DLM("sales", dlm.LocalLevel(discount=0.9, m0=10.0, C0=4.0), sigma_obs=s, observed=y)
    return model


@pytest.fixture(scope="module")
def fitted():
    """A discounted local level, 20 + 20 NUTS draws of its sigma_obs."""
    model = _sales_model(series(45))
    with model:
        idata = pm.sample(
            draws=20, tune=20, chains=1, nuts_sampler="pymc", progressbar=False, random_seed=1
        )
    return idata, model


def test_postprocessing_of_a_nuts_fit_names_the_variable_and_keeps_the_draws(fitted):
    """A discounted model after NUTS: in-sample forecasts, replicates and residuals run."""
    idata, model = fitted
    fc = dlm.forecast(idata, model, steps=3, origin=T - 4, progressbar=False, random_seed=2)
    assert fc["predictions"]["sales"].shape == (1, 20, 3)
    assert np.all(np.isfinite(fc["predictions"]["sales"].values))
    for kind in ("smoothed", "one_step"):
        pp = dlm.posterior_predictive(idata, model, kind=kind, progressbar=False, random_seed=3)
        assert pp["posterior_predictive"]["sales"].shape == (1, 20, T)
    z = dlm.posterior_residuals(idata, model, progressbar=False)["sales"]
    assert z.shape == (1, 20, T) and np.all(np.isfinite(z.values))


def test_lfo_scores_a_discounted_model_by_the_west_harrison_one_step_terms():
    """Fixed parameters (a free variable outside the DLM): every LFO term is W&H's t density.

    The level's discount and the learned variance (with a variance discount, which the
    one-step terms handle) are fixed, so each refit's posterior is a point and elpd_i is
    log t_{δ_V n_{t-1}}(y_t | f_t, Q_t) of the recursion on the data so far.
    """
    y = series(47, (T - 3,))

    def model_fn(y_train):
        with pm.Model() as model:
            pm.Normal("unused", 0.0, 1.0)
            level = dlm.LocalLevel(discount=0.9, m0=10.0, C0=4.0)
            obs_var = dlm.LearnedVariance(5.0, 2.0, discount=0.9)
            dlm.DLM("sales", level, obs_var=obs_var, observed=y_train)
        return model

    kw = {"draws": 20, "tune": 20, "chains": 1, "nuts_sampler": "pymc"}
    res = dlm.lfo(model_fn, y, min_train=T - 5, sample_kwargs=kw, random_seed=1)
    ref = poly_block(1, delta=0.9, m0=[10.0], C0=[[4.0]])
    ref = combine(ref)
    mom = wh_moments(ref, y, n0=5.0, S0=2.0, delta_v=0.9)
    f, Q, nu = mom["forecast_mean"], mom["forecast_cov"], mom["forecast_dof"]
    f, Q = np.reshape(f, -1), np.reshape(Q, -1)
    scored = [t for t in range(T - 5, T) if not np.isnan(y[t])]
    expected = [
        math.lgamma((nu[t] + 1) / 2)
        - math.lgamma(nu[t] / 2)
        - 0.5 * math.log(nu[t] * math.pi * Q[t])
        - (nu[t] + 1) / 2 * math.log1p((y[t] - f[t]) ** 2 / (nu[t] * Q[t]))
        for t in scored
    ]
    np.testing.assert_allclose(res.elpd_i.values, expected, rtol=0, atol=1e-8)


def test_standardized_residuals_of_a_learned_variance_are_normal_quantiles():
    """e_t/sqrt(Q_t) is Student-t with delta_V n_{t-1} dof: mapped to Phi^-1(T(e/sqrt(Q)))."""
    from scipy import stats

    y = series(48, MISSING)
    ref = TREND_SEASONAL_REGRESSION.oracle()
    mom = wh_moments(ref, y, n0=5.0, S0=2.0, delta_v=0.9)
    f, Q = np.reshape(mom["forecast_mean"], -1), np.reshape(mom["forecast_cov"], -1)
    t_stat = (y - f) / np.sqrt(Q)
    expected = stats.norm.ppf(stats.t.cdf(t_stat, df=mom["forecast_dof"]))
    ds = dlm.kalman_filter(
        TREND_SEASONAL_REGRESSION.package(), y, obs_var=dlm.LearnedVariance(5.0, 2.0, 0.9)
    )
    got = dlm.standardized_residuals(ds).values
    np.testing.assert_array_equal(np.isnan(got), np.isnan(y))
    np.testing.assert_allclose(got[~np.isnan(y)], expected[~np.isnan(y)], rtol=0, atol=1e-9)
    # not the plain ratio: the Student-t tails are pulled in
    assert np.max(np.abs(got - t_stat)[~np.isnan(y)]) > 1e-3


def test_batch_axes_declared_by_the_discount_and_the_learned_variance():
    """A discount and an n0 with a leading axis of 2: two series, each its own filter."""
    y = np.stack([series(49), series(50)])
    level = dlm.LocalLevel(discount=np.array([0.7, 0.95]), m0=10.0, C0=4.0)
    ds = dlm.kalman_filter(level, y, obs_var=dlm.LearnedVariance(np.array([3.0, 6.0]), 2.0))
    assert ds["loglik"].shape == (2,)
    for i, (delta, n0) in enumerate([(0.7, 3.0), (0.95, 6.0)]):
        ref = combine(poly_block(1, delta=delta, m0=[10.0], C0=[[4.0]]))
        assert_loglik(float(ds["loglik"][i]), wh_loglik(ref, y[i], n0, 2.0, 1.0), label=i)
    with pm.Model() as model:
        dlm.DLM("y", level, sigma_obs=1.3, observed=y)
    logp = model.compile_logp(sum=False)({})[0]
    for i, delta in enumerate([0.7, 0.95]):
        ref = combine(poly_block(1, delta=delta, m0=[10.0], C0=[[4.0]]))
        assert_loglik(float(logp[i]), known_v_loglik(ref, 1.3**2, y[i]), label=i)
