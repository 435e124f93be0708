"""pymc_dlm's filter and smoother against statsmodels.

Witness (STYLE.md §8): statsmodels' Kalman filter/smoother (an independent,
covariance-form implementation, mapped with a_1 = G m0, P_1 = G C0 G' + W) for
every component and for sums, several series, a non-diagonal V, time-varying
matrices and missing values. The cases' matrices come from ``tests/support/oracles.py``'s
``mod_*``, every prior is given explicitly, and the components' own matrices are checked
against those definitions in ``tests/components/test_dlm_definitions.py``.
Nothing is stored: every reference is computed at test time.
"""

import numpy as np
import pytest

from tests.support import oracles as O

SEED = 20261124


def _rng(name):
    # one reproducible stream per case, independent of the order tests run in
    return np.random.default_rng([SEED, sum(map(ord, name))])


def _spd(rng, n, scale=1.0, ridge=0.5):
    A = rng.standard_normal((n, n))
    return scale * (A @ A.T / n + ridge * np.eye(n))


def _sim(system, V, T, rng, theta0):
    """Simulate from the oracle system starting near theta0 (not from the vague prior)."""
    n = system.G.shape[-1]
    _, y = O.simulate(
        system.F, system.G, system.W, V, np.asarray(theta0, float) * np.ones(n), 0.0, T, rng
    )
    return y[:, 0] if y.shape[1] == 1 else y


# ---------------------------------------------------------------------------
# Cases. Each builder returns a dict with
#   ref: oracles.System (textbook matrices), V: observation covariance,
#   y: data, build(dlm) -> (model, kwargs for kalman_filter / kalman_smoother).
# The builders never import pymc_dlm, so the oracles can be checked on their own.
# ---------------------------------------------------------------------------


def case_nile_local_level():
    y = O.load_nile()
    s_obs, s_lev = np.sqrt(15099.0), np.sqrt(1469.1)  # MLEs (Durbin & Koopman §2.10)
    return dict(
        ref=O.mod_poly(1, s_lev),
        V=s_obs**2,
        y=y,
        build=lambda dlm: (dlm.LocalLevel(s_lev, C0=1e7), dict(sigma_obs=s_obs)),
    )


def case_nile_missing():
    y = O.load_nile().copy()
    y[20:40] = np.nan  # Durbin & Koopman fig. 2.5's gaps
    y[60:80] = np.nan
    s_obs, s_lev = np.sqrt(15099.0), np.sqrt(1469.1)
    return dict(
        ref=O.mod_poly(1, s_lev, m0=1000.0, C0=1e5),
        V=s_obs**2,
        y=y,
        build=lambda dlm: (dlm.LocalLevel(s_lev, m0=1000.0, C0=1e5), dict(sigma_obs=s_obs)),
    )


def case_local_linear_trend():
    rng = _rng("llt")
    m0 = np.array([10.0, 0.3])
    C0 = np.array([[4.0, 0.5], [0.5, 0.25]])
    ref = O.mod_poly(2, [0.5, 0.1], m0=m0, C0=C0)
    y = _sim(ref, 1.0, 80, rng, [10.0, 0.3])
    return dict(
        ref=ref,
        V=1.0,
        y=y,
        build=lambda dlm: (dlm.LocalLinearTrend(0.5, 0.1, m0=m0, C0=C0), dict(sigma_obs=1.0)),
    )


def case_polynomial3():
    rng = _rng("poly3")
    m0 = np.array([5.0, -0.2, 0.01])
    C0 = np.array([100.0, 10.0, 1.0])
    sig = np.array([0.3, 0.1, 0.02])
    ref = O.mod_poly(3, sig, m0=m0, C0=C0)
    y = _sim(ref, 0.8**2, 60, rng, [5.0, -0.2, 0.01])
    return dict(
        ref=ref,
        V=0.8**2,
        y=y,
        build=lambda dlm: (dlm.Polynomial(3, sig, m0=m0, C0=C0), dict(sigma_obs=0.8)),
    )


def case_seasonal4():
    rng = _rng("seas4")
    ref = O.mod_seas(4, 0.3, m0=[1.0, -1.0, 0.0], C0=1e4)
    y = _sim(ref, 0.5**2, 48, rng, [2.0, -1.0, 0.5])
    return dict(
        ref=ref,
        V=0.5**2,
        y=y,
        build=lambda dlm: (dlm.Seasonal(4, 0.3, m0=[1.0, -1.0, 0.0], C0=1e4), dict(sigma_obs=0.5)),
    )


def case_seasonal12():
    rng = _rng("seas12")
    ref = O.mod_seas(12, 0.2, C0=1e3)
    theta0 = np.sin(2 * np.pi * np.arange(11) / 12) * 3
    y = _sim(ref, 0.4**2, 72, rng, theta0)
    return dict(
        ref=ref,
        V=0.4**2,
        y=y,
        build=lambda dlm: (dlm.Seasonal(12, 0.2, C0=1e3), dict(sigma_obs=0.4)),
    )


def _fourier_case(period, q, name, sigma=0.1, s_obs=0.5, T=72, C0=1e7):
    def make():
        rng = _rng(name)
        ref = O.mod_trig(period, q, sigma, C0=C0)
        y = _sim(ref, s_obs**2, T, rng, 1.0)
        return dict(
            ref=ref,
            V=s_obs**2,
            y=y,
            build=lambda dlm: (dlm.Fourier(period, q, sigma, C0=C0), dict(sigma_obs=s_obs)),
        )

    return make


def _regression_case(sigma, name):
    def make():
        rng = _rng(name)
        T = 60
        X = np.column_stack(
            [rng.normal(2.0, 1.0, T), np.cos(np.arange(T) / 5.0) + 0.2 * rng.standard_normal(T)]
        )
        ref = O.mod_reg(X, sigma, m0=[0.5, 0.0], C0=[100.0, 25.0])
        y = _sim(ref, 0.3**2, T, rng, [1.5, -2.0])
        return dict(
            ref=ref,
            V=0.3**2,
            y=y,
            build=lambda dlm: (
                dlm.Regression(X, sigma, m0=[0.5, 0.0], C0=[100.0, 25.0]),
                dict(sigma_obs=0.3),
            ),
        )

    return make


def case_ar1():
    rng = _rng("ar1")
    ref = O.mod_arma([0.7], [], 0.5**2, C0=10.0)
    y = _sim(ref, 0.2**2, 60, rng, 1.0)
    return dict(
        ref=ref,
        V=0.2**2,
        y=y,
        build=lambda dlm: (dlm.AR(0.7, 0.5, C0=10.0), dict(sigma_obs=0.2)),
    )


def case_arma21():
    rng = _rng("arma21")
    ref = O.mod_arma([0.5, -0.2], [0.3], 0.8**2, C0=10.0)
    y = _sim(ref, 0.3**2, 60, rng, 0.5)
    return dict(
        ref=ref,
        V=0.3**2,
        y=y,
        build=lambda dlm: (dlm.ARMA([0.5, -0.2], [0.3], 0.8, C0=10.0), dict(sigma_obs=0.3)),
    )


def case_cycle():
    rng = _rng("cycle")
    ref = O.mod_cycle(20, 0.9, 0.5, C0=100.0)
    y = _sim(ref, 0.3**2, 80, rng, [3.0, 0.0])
    return dict(
        ref=ref,
        V=0.3**2,
        y=y,
        build=lambda dlm: (dlm.Cycle(20, 0.9, 0.5, C0=100.0), dict(sigma_obs=0.3)),
    )


def case_trend_seas_reg_missing():
    """LocalLinearTrend + Seasonal(4) + Regression (2 regressors, random walk), NaNs in y."""
    rng = _rng("sum1")
    T = 64
    X = np.column_stack([rng.standard_normal(T), rng.uniform(0, 2, T)])
    m0_t = np.array([20.0, 0.1])
    C0_t = np.array([[50.0, 1.0], [1.0, 1.0]])
    ref = O.mod_sum(
        O.mod_poly(2, [0.4, 0.05], m0=m0_t, C0=C0_t),
        O.mod_seas(4, 0.2, C0=1e3),
        O.mod_reg(X, [0.05, 0.02], m0=0.0, C0=100.0),
    )
    y = _sim(ref, 0.5**2, T, rng, [20.0, 0.1, 2.0, -1.5, 0.5, 1.0, -0.5])
    y[[3, 17, 18, 40, 63]] = np.nan
    return dict(
        ref=ref,
        V=0.5**2,
        y=y,
        build=lambda dlm: (
            dlm.LocalLinearTrend(0.4, 0.05, m0=m0_t, C0=C0_t)
            + dlm.Seasonal(4, 0.2, C0=1e3)
            + dlm.Regression(X, [0.05, 0.02], C0=100.0),
            dict(sigma_obs=0.5),
        ),
    )


def case_level_ar_cycle():
    rng = _rng("sum2")
    ref = O.mod_sum(
        O.mod_poly(1, 0.2, m0=5.0, C0=100.0),
        O.mod_arma([0.6], [], 0.3**2, C0=1.0),
        O.mod_cycle(12, 0.95, 0.2, C0=4.0),
    )
    y = _sim(ref, 0.25**2, 72, rng, [5.0, 0.5, 1.0, 0.0])
    return dict(
        ref=ref,
        V=0.25**2,
        y=y,
        build=lambda dlm: (
            dlm.LocalLevel(0.2, m0=5.0, C0=100.0)
            + dlm.AR(0.6, 0.3, C0=1.0)
            + dlm.Cycle(12, 0.95, 0.2, C0=4.0),
            dict(sigma_obs=0.25),
        ),
    )


def case_trend_fourier_arma():
    rng = _rng("sum3")
    ref = O.mod_sum(
        O.mod_poly(2, [0.1, 0.01], m0=[50.0, 0.0], C0=[1e3, 1.0]),
        O.mod_trig(12, 2, 0.05, C0=100.0),
        O.mod_arma([0.5, -0.2], [0.3], 0.3**2, C0=10.0),
    )
    y = _sim(ref, 0.2**2, 96, rng, [50.0, 0.2, 2.0, 1.0, 0.5, 0.5, 0.0, 0.0])
    y[50] = np.nan
    return dict(
        ref=ref,
        V=0.2**2,
        y=y,
        build=lambda dlm: (
            dlm.LocalLinearTrend(0.1, 0.01, m0=[50.0, 0.0], C0=[1e3, 1.0])
            + dlm.Fourier(12, 2, 0.05, C0=100.0)
            + dlm.ARMA([0.5, -0.2], [0.3], 0.3, C0=10.0),
            dict(sigma_obs=0.2),
        ),
    )


def case_mv_statespace_missing():
    """Generic StateSpace, p = 3 series, n = 4 states.

    Non-diagonal obs_cov, full C0, partially and fully missing rows.
    """
    rng = _rng("mv3")
    n, p, T = 4, 3, 50
    G = np.array(
        [[1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.8, 0.3], [0.0, 0.0, -0.3, 0.8]]
    )
    F = rng.normal(0.0, 1.0, (p, n))
    W = _spd(rng, n, 0.05, ridge=0.1)
    V = _spd(rng, p, 0.5, ridge=0.3)  # non-diagonal
    m0 = np.array([1.0, 0.1, -0.5, 0.5])
    C0 = _spd(rng, n, 10.0)
    ref = O.System(F, G, W, m0, C0)
    _, y = O.simulate(F, G, W, V, m0, C0, T, rng)
    y[5, 1] = np.nan
    y[6, [0, 2]] = np.nan
    y[10, :] = np.nan
    y[11, :] = np.nan
    y[30, 2] = np.nan
    y[49, 0] = np.nan
    return dict(
        ref=ref,
        V=V,
        y=y,
        build=lambda dlm: (dlm.StateSpace(F, G, W, m0, C0), dict(obs_cov=V)),
    )


def case_mv_time_varying_F():
    """P = 2, n = 3, time-varying F (declared), non-diagonal obs_cov, missing entries."""
    rng = _rng("mvtvF")
    n, p, T = 3, 2, 40
    G = np.array([[1.0, 0.0, 0.0], [0.0, 0.9, 0.1], [0.0, 0.0, 1.0]])
    F = rng.normal(0.0, 1.0, (T, p, n))
    W = np.diag([0.1, 0.2, 0.0])  # singular W (static third state)
    V = np.array([[0.5, 0.2], [0.2, 0.3]])
    m0 = np.array([0.0, 1.0, 2.0])
    C0 = np.diag([100.0, 100.0, 100.0])
    ref = O.System(F, G, W, m0, C0)
    _, y = O.simulate(F, G, W, V, np.array([0.5, 1.0, 2.0]), 0.0, T, rng)
    y[4, 0] = np.nan
    y[12, :] = np.nan
    y[25, 1] = np.nan
    return dict(
        ref=ref,
        V=V,
        y=y,
        build=lambda dlm: (dlm.StateSpace(F, G, W, m0, C0, time_varying=("F",)), dict(obs_cov=V)),
    )


def case_uni_time_varying_GW():
    """Univariate, n = 2, time-varying G and W (declared), scalar C0."""
    rng = _rng("tvGW")
    T = 50
    t = np.arange(T)
    rho = 0.5 + 0.4 * np.sin(t / 7.0)
    G = np.zeros((T, 2, 2))
    G[:, 0, 0] = 1.0
    G[:, 1, 1] = rho
    W = np.zeros((T, 2, 2))
    W[:, 0, 0] = 0.05 * (1 + t / T)
    W[:, 1, 1] = 0.3
    W[:, 0, 1] = W[:, 1, 0] = 0.02
    F = np.array([[1.0, 1.0]])
    ref = O.System(F, G, W, np.array([3.0, 0.0]), 50.0 * np.eye(2))
    _, y = O.simulate(F, G, W, 0.2**2, np.array([3.0, 0.0]), 0.0, T, rng)
    y = y[:, 0]
    y[[0, 22]] = np.nan
    return dict(
        ref=ref,
        V=0.2**2,
        y=y,
        build=lambda dlm: (
            dlm.StateSpace(F, G, W, np.array([3.0, 0.0]), 50.0, time_varying=("G", "W")),
            dict(sigma_obs=0.2),
        ),
    )


CASES = {
    "nile_local_level": case_nile_local_level,
    "nile_missing": case_nile_missing,
    "local_linear_trend": case_local_linear_trend,
    "polynomial3": case_polynomial3,
    "seasonal4": case_seasonal4,
    "seasonal12": case_seasonal12,
    "fourier12_2": _fourier_case(12, 2, "fourier12_2", C0=100.0),
    "fourier4_2_nyquist": _fourier_case(4, 2, "fourier4_2", sigma=0.2, T=40, C0=1e3),
    "fourier12_6": _fourier_case(12, 6, "fourier12_6", C0=100.0),
    "regression_static": _regression_case(0.0, "reg_static"),
    "regression_random_walk": _regression_case([0.1, 0.05], "reg_rw"),
    "ar1": case_ar1,
    "arma21": case_arma21,
    "cycle": case_cycle,
    "trend_seas_reg_missing": case_trend_seas_reg_missing,
    "level_ar_cycle": case_level_ar_cycle,
    "trend_fourier_arma": case_trend_fourier_arma,
    "mv3_statespace_missing": case_mv_statespace_missing,
    "mv2_time_varying_F": case_mv_time_varying_F,
    "uni_time_varying_GW": case_uni_time_varying_GW,
}

# the cases on which kalman_filter (not only kalman_smoother) is also run
FILTER_ALSO = {"nile_local_level", "mv3_statespace_missing", "trend_seas_reg_missing"}


def reference(case):
    r = case["ref"]
    return O.statsmodels_filter(r.F, r.G, r.W, case["V"], r.m0, r.C0, case["y"], smooth=True)


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CASES))
def test_filter_and_smoother_match_statsmodels(name):
    dlm = pytest.importorskip("pymc_dlm")
    case = CASES[name]()
    ref = reference(case)
    model, kw = case["build"](dlm)
    y = case["y"]
    scale = float(np.nanmax(np.abs(y)))

    ds = dlm.kalman_smoother(model, y, **kw)
    ours = O.moments_from_dataset(ds)
    np.testing.assert_array_equal(ds["time"].values, np.arange(1, len(y) + 1))
    np.testing.assert_allclose(ours.loglik, ref.loglik, rtol=1e-9, err_msg=f"{name}: loglik")
    O.assert_moments_close(ours, ref, mean_scale=scale, rtol=1e-7, atol_factor=1e-8, label=name)

    if name in FILTER_ALSO:
        ours_f = O.moments_from_dataset(dlm.kalman_filter(model, y, **kw))
        np.testing.assert_allclose(
            ours_f.loglik, ref.loglik, rtol=1e-9, err_msg=f"{name}: filter loglik"
        )
        O.assert_moments_close(
            ours_f,
            ref,
            mean_scale=scale,
            rtol=1e-7,
            atol_factor=1e-8,
            label=f"{name} (kalman_filter)",
            smoothed=False,
        )
