"""Components and their sums: labels, sizes, block structure, priors, symbolic parameters.

The system matrices themselves are checked against R ``dlm``'s definitions in
``tests/components/test_dlm_definitions.py``; here the witnesses are numpy's ``hstack`` and
``scipy.linalg.block_diag`` of the parts, and (for pm.Data regressors) a local level plus
static regression written out as a dense Gaussian.

Matrices are evaluated with ``mode="FAST_COMPILE"`` (no numba compilation): these tests are
about graph construction, not about a backend.
"""

import subprocess
import sys
import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.linalg
import scipy.stats

import pymc_dlm as dlm

T = 6
X = np.column_stack([np.linspace(-1.0, 1.0, T), np.cos(np.arange(T))])


def evaluate(*tensors, givens=None):
    """Values of tensors without numba compilation."""
    fn = pytensor.function([], list(tensors), givens=givens, mode="FAST_COMPILE")
    out = fn()
    return out if len(tensors) > 1 else out[0]


def matrices(model):
    ss = dlm.as_statespace(model)
    return dict(zip(("F", "G", "W", "m0", "C0"), evaluate(ss.F, ss.G, ss.W, ss.m0, ss.C0)))


# --------------------------------------------------------------------------------------------
# Labels and sizes
# --------------------------------------------------------------------------------------------

LABEL_CASES = {
    "LocalLevel": (lambda: dlm.LocalLevel(1.0), ("level",)),
    "LocalLinearTrend": (lambda: dlm.LocalLinearTrend(1.0, 0.1), ("level", "slope")),
    "Polynomial(3)": (lambda: dlm.Polynomial(3, 1.0), ("level", "slope", "curvature")),
    "Seasonal(4)": (lambda: dlm.Seasonal(4, 1.0), ("seasonal_1", "seasonal_2", "seasonal_3")),
    "Seasonal(3, name)": (lambda: dlm.Seasonal(3, 1.0, name="week"), ("week_1", "week_2")),
    "Fourier(12, 2)": (
        lambda: dlm.Fourier(12, 2, 1.0),
        ("fourier_1_cos", "fourier_1_sin", "fourier_2_cos", "fourier_2_sin"),
    ),
    "Fourier(4, 2)": (
        lambda: dlm.Fourier(4, 2, 1.0),
        ("fourier_1_cos", "fourier_1_sin", "fourier_2"),
    ),
    "Regression": (lambda: dlm.Regression(X), ("regression_1", "regression_2")),
    "Regression(labels)": (lambda: dlm.Regression(X, labels=["price", "temp"]), ("price", "temp")),
    "Regression(1-d X)": (lambda: dlm.Regression(X[:, 0]), ("regression_1",)),
    "AR(1)": (lambda: dlm.AR(0.5, 1.0), ("ar_1",)),
    "AR(2)": (lambda: dlm.AR([0.5, 0.2], 1.0), ("ar_1", "ar_2")),
    "ARMA(2, 1)": (lambda: dlm.ARMA([0.5, -0.2], [0.3], 1.0), ("arma_1", "arma_2")),
    "ARMA(1, 2)": (lambda: dlm.ARMA([0.5], [0.3, 0.1], 1.0), ("arma_1", "arma_2", "arma_3")),
    "MA(1)": (lambda: dlm.ARMA([], [0.3], 1.0), ("arma_1", "arma_2")),
    "Cycle": (lambda: dlm.Cycle(20.0, 0.9, 1.0), ("cycle", "cycle_aux")),
    "StateSpace": (
        lambda: dlm.StateSpace(np.ones((1, 2)), np.eye(2), np.eye(2)),
        ("state_1", "state_2"),
    ),
    "StateSpace(labels)": (
        lambda: dlm.StateSpace(np.ones((1, 2)), np.eye(2), np.eye(2), state_labels=["a", "b"]),
        ("a", "b"),
    ),
}


@pytest.mark.parametrize("case", list(LABEL_CASES))
def test_state_labels_and_sizes(case):
    make, labels = LABEL_CASES[case]
    comp = make()
    ss = dlm.as_statespace(comp)
    assert ss.state_labels == labels
    assert comp.state_labels == labels
    assert ss.n_state == len(labels) == comp.n_state
    assert ss.n_series == 1
    m = matrices(comp)
    n = len(labels)
    assert m["G"].shape == m["W"].shape == m["C0"].shape == (n, n)
    assert m["m0"].shape == (n,)
    assert m["F"].shape[-2:] == (1, n)


@pytest.mark.parametrize(
    "period, harmonics, n_state",
    [(12, 6, 11), (4, 2, 3), (12, 2, 4), (2, 1, 1), (7, 3, 6), (12, 1, 2), (365.25, 2, 4)],
)
def test_fourier_state_count_and_nyquist_harmonic(period, harmonics, n_state):
    comp = dlm.Fourier(period, harmonics, 0.5)
    assert comp.n_state == n_state
    m = matrices(comp)
    nyquist = 2 * harmonics == period
    if nyquist:
        # The last harmonic (frequency pi) is one state: G = -1, observed with weight 1.
        assert m["G"][-1, -1] == -1.0 and m["F"][0, -1] == 1.0
        assert np.all(m["G"][-1, :-1] == 0) and np.all(m["G"][:-1, -1] == 0)
    # Every harmonic's block is a rotation: G'G = I; the observed entries sum to `harmonics`.
    np.testing.assert_allclose(m["G"].T @ m["G"], np.eye(n_state), atol=1e-14)
    assert m["F"].sum() == harmonics
    np.testing.assert_allclose(m["W"], 0.25 * np.eye(n_state))


# --------------------------------------------------------------------------------------------
# a + b
# --------------------------------------------------------------------------------------------


def _trend():
    return dlm.LocalLinearTrend(1.0, 0.5, m0=[1.0, 2.0], C0=[[2.0, 0.5], [0.5, 1.0]])


def _seasonal():
    return dlm.Seasonal(4, 0.3, m0=0.5, C0=3.0)


def _cycle():
    return dlm.Cycle(10.0, 0.8, 0.2, m0=[-1.0, 1.0], C0=[4.0, 5.0])


def test_sum_is_block_structured():
    parts = [_trend(), _seasonal(), _cycle()]
    total = parts[0] + parts[1] + parts[2]
    got = matrices(total)
    each = [matrices(p) for p in parts]
    np.testing.assert_array_equal(got["F"], np.hstack([m["F"] for m in each]))
    for name in ("G", "W", "C0"):
        np.testing.assert_allclose(
            got[name], scipy.linalg.block_diag(*[m[name] for m in each]), rtol=1e-14, atol=0
        )
    np.testing.assert_array_equal(got["m0"], np.concatenate([m["m0"] for m in each]))
    np.testing.assert_array_equal(got["m0"], [1.0, 2.0, 0.5, 0.5, 0.5, -1.0, 1.0])
    np.testing.assert_array_equal(np.diag(got["C0"])[-2:], [4.0, 5.0])
    ss = dlm.as_statespace(total)
    assert ss.n_state == 7
    assert ss.state_labels == (
        "level",
        "slope",
        "seasonal_1",
        "seasonal_2",
        "seasonal_3",
        "cycle",
        "cycle_aux",
    )
    assert ss.components == (("trend", 0, 2), ("seasonal", 2, 5), ("cycle", 5, 7))
    # The factors of the sum still factor its covariances.
    W_sqrt, C0_sqrt = evaluate(ss.W_sqrt, ss.C0_sqrt)
    np.testing.assert_allclose(W_sqrt @ W_sqrt.T, got["W"], atol=1e-14)
    np.testing.assert_allclose(C0_sqrt @ C0_sqrt.T, got["C0"], rtol=1e-12, atol=1e-14)


def test_sum_is_associative_and_sum_builtin_works():
    a = matrices((_trend() + _seasonal()) + _cycle())
    b = matrices(_trend() + (_seasonal() + _cycle()))
    c = matrices(sum([_trend(), _seasonal(), _cycle()]))
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
        np.testing.assert_array_equal(a[name], c[name])


def test_sum_deduplicates_labels_and_component_names():
    total = dlm.LocalLevel(1.0) + dlm.LocalLevel(2.0) + dlm.LocalLevel(3.0)
    ss = dlm.as_statespace(total)
    assert ss.state_labels == ("level", "level_2", "level_3")
    assert len(set(ss.state_labels)) == 3
    assert [c[0] for c in ss.components] == ["level", "level_2", "level_3"]
    assert [c[1:] for c in ss.components] == [(0, 1), (1, 2), (2, 3)]
    np.testing.assert_allclose(matrices(total)["W"], np.diag([1.0, 4.0, 9.0]))


def test_statespace_plus_component():
    ss = dlm.StateSpace([[1.0]], [[0.5]], [[2.0]], m0=3.0, C0=4.0, name="custom")
    total = ss + dlm.Seasonal(3, 1.0, C0=1.0)
    got = matrices(total)
    np.testing.assert_array_equal(got["F"], [[1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(got["G"], [[0.5, 0, 0], [0, -1, -1], [0, 1, 0]])
    np.testing.assert_array_equal(got["m0"], [3.0, 0.0, 0.0])
    np.testing.assert_array_equal(np.diag(got["C0"]), [4.0, 1.0, 1.0])
    assert dlm.as_statespace(total).components == (("custom", 0, 1), ("seasonal", 1, 3))


def test_multivariate_sum_keeps_series():
    a = dlm.StateSpace(np.eye(2), np.eye(2), np.eye(2))
    b = dlm.StateSpace(np.ones((2, 1)), [[0.9]], [[0.1]], state_labels=["common"])
    total = a + b
    assert total.n_series == 2 and total.n_state == 3
    np.testing.assert_array_equal(matrices(total)["F"], [[1.0, 0, 1], [0, 1, 1]])


@pytest.mark.parametrize("order", ["level first", "regression first"])
def test_sum_with_time_varying_regression(order):
    level, reg = dlm.LocalLevel(1.0), dlm.Regression(X, sigma=0.1)
    total = level + reg if order == "level first" else reg + level
    ss = dlm.as_statespace(total)
    assert ss.time_varying == frozenset({"F"})
    assert ss.n_time == T
    F = evaluate(ss.F)
    expected = (
        np.column_stack([np.ones(T), X])
        if order == "level first"
        else np.column_stack([X, np.ones(T)])
    )
    np.testing.assert_array_equal(F, expected[:, None, :])


# --------------------------------------------------------------------------------------------
# Priors: m0 and C0 in every accepted form
# --------------------------------------------------------------------------------------------

C0_FORMS = {
    "scalar": (2.5, 2.5 * np.eye(3)),
    "vector": ([1.0, 2.0, 3.0], np.diag([1.0, 2.0, 3.0])),
    "matrix": (
        [[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]],
        np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.2], [0.0, 0.2, 3.0]]),
    ),
    "singular matrix": (np.ones((3, 3)), np.ones((3, 3))),
    "zero": (0.0, np.zeros((3, 3))),
}


@pytest.mark.parametrize("form", list(C0_FORMS))
def test_C0_forms(form):
    C0, expected = C0_FORMS[form]
    for model in (
        dlm.Polynomial(3, 1.0, C0=C0),
        dlm.StateSpace(np.ones((1, 3)), np.eye(3), np.eye(3), C0=C0),
    ):
        ss = dlm.as_statespace(model)
        got, factor = evaluate(ss.C0, ss.C0_sqrt)
        np.testing.assert_allclose(got, expected, rtol=1e-15)
        np.testing.assert_allclose(factor @ factor.T, expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    "m0, expected", [(1.5, [1.5, 1.5, 1.5]), ([1.0, -2.0, 3.0], [1.0, -2.0, 3.0])]
)
def test_m0_forms(m0, expected):
    for model in (
        dlm.Seasonal(4, 1.0, m0=m0),
        dlm.StateSpace(np.ones((1, 3)), np.eye(3), np.eye(3), m0=m0),
    ):
        np.testing.assert_array_equal(evaluate(dlm.as_statespace(model).m0), expected)


def test_default_priors_diffuse_or_stationary():
    """Nonstationary components default to C0="diffuse", stationary ones to "stationary".

    R dlm's vague prior C0 = 1e7 is one explicit argument away.
    """
    for comp in (
        dlm.LocalLinearTrend(1.0, 1.0),
        dlm.Seasonal(4, 1.0),
        dlm.Fourier(12, 2, 1.0),
        dlm.Regression(np.ones((5, 2))),
    ):
        ss = dlm.as_statespace(comp)
        assert ss.diffuse.all() and ss.n_diffuse == ss.n_state
        np.testing.assert_array_equal(matrices(comp)["C0"], 0.0)  # the finite part
    ar = dlm.as_statespace(dlm.AR(0.5, 1.0))
    assert not ar.diffuse.any()
    np.testing.assert_allclose(evaluate(ar.C0), [[1.0 / (1 - 0.25)]], rtol=1e-12)
    m = matrices(dlm.LocalLinearTrend(1.0, 1.0, C0=1e7))
    np.testing.assert_array_equal(m["m0"], [0.0, 0.0])
    np.testing.assert_array_equal(m["C0"], 1e7 * np.eye(2))
    assert not dlm.as_statespace(dlm.LocalLinearTrend(1.0, 1.0, C0=1e7)).diffuse.any()


# --------------------------------------------------------------------------------------------
# Symbolic parameters: pm.Data regressors, random variables, expressions
# --------------------------------------------------------------------------------------------


def level_plus_static_regression_logpdf(
    y, x, sigma, sigma_obs, m0_level, C0_level, m0_beta, C0_beta
):
    """Dense witness: y_t = level_0 + sum_{j<=t} w_j + x_t' beta + v_t, beta static."""
    t = np.arange(1, len(y) + 1)
    cov = (
        C0_level
        + sigma**2 * np.minimum.outer(t, t)
        + x @ (C0_beta * np.eye(x.shape[1])) @ x.T
        + sigma_obs**2 * np.eye(len(y))
    )
    mean = m0_level + x @ np.broadcast_to(m0_beta, (x.shape[1],))
    return scipy.stats.multivariate_normal(mean, cov).logpdf(y)


def test_regression_on_pm_data_follows_set_data():
    rng = np.random.default_rng(7)
    y = rng.normal(size=T).cumsum()
    X2 = rng.normal(size=(T, 2))
    with pm.Model() as model:
        Xd = pm.Data("X", X)
        reg = dlm.Regression(Xd, C0=2.0)
        ss = dlm.as_statespace(reg)
        dlm.DLM("y", reg, sigma_obs=0.5, observed=y)
    logp = model.compile_logp()
    for x in (X, X2):
        with model:
            pm.set_data({"X": x})
        np.testing.assert_array_equal(evaluate(ss.F)[:, 0, :], x)
        expected = level_plus_static_regression_logpdf(y, x, 0.0, 0.5, 0.0, 0.0, 0.0, 2.0)
        np.testing.assert_allclose(logp({}), expected, rtol=1e-10)


def test_level_plus_regression_on_pm_data_follows_set_data():
    rng = np.random.default_rng(8)
    y = rng.normal(size=T).cumsum()
    X2 = rng.normal(size=(T, 2))
    with pm.Model() as model:
        Xd = pm.Data("X", X)
        s = pm.HalfNormal("s", 1.0)
        dlm.DLM(
            "y", dlm.LocalLevel(s, C0=3.0) + dlm.Regression(Xd, C0=2.0), sigma_obs=0.5, observed=y
        )
    logp = model.compile_logp(vars=model.observed_RVs)
    for x in (X, X2):
        with model:
            pm.set_data({"X": x})
        expected = level_plus_static_regression_logpdf(y, x, 0.7, 0.5, 0.0, 3.0, 0.0, 2.0)
        np.testing.assert_allclose(logp({"s_log__": np.log(0.7)}), expected, rtol=1e-10)


def test_components_take_random_variables_and_expressions():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pm.Model() as model:
            W = pm.HalfNormal("W", 1.0)
            s_ar = pm.HalfNormal("s_ar", 1.0)
            rho = pm.Uniform("rho", -1.0, 1.0)
            period = pm.Uniform("period", 4.0, 20.0)
            damping = pm.Uniform("damping", 0.0, 1.0)
            sigma_obs = pm.HalfNormal("sigma_obs", 1.0)
            total = (
                dlm.LocalLevel(pm.math.sqrt(W), C0=1.0)
                + dlm.AR(rho, 2 * s_ar, C0=1.0)
                + dlm.Cycle(period, damping, 0.1, C0=1.0)
            )
            obs = dlm.DLM("y", total, sigma_obs=sigma_obs, observed=np.sin(np.arange(T)))
            seasonal = dlm.Seasonal(4, s_ar, C0=1.0)
    ss = dlm.as_statespace(total)
    assert ss.n_state == 1 + 1 + 2
    values = {W: 2.0, s_ar: 0.5, rho: 0.3, period: 8.0, damping: 0.9}
    givens = {k: pt.constant(np.float64(v)) for k, v in values.items()}
    Wv, Gv, W_seas = evaluate(ss.W, ss.G, seasonal.statespace.W, givens=givens)
    np.testing.assert_allclose(np.diag(Wv), [2.0, 1.0, 0.01, 0.01], rtol=1e-14)
    np.testing.assert_allclose(W_seas, np.diag([0.25, 0.0, 0.0]), rtol=1e-14)
    assert Gv[1, 1] == 0.3
    lam = 2 * np.pi / 8.0
    np.testing.assert_allclose(
        Gv[2:, 2:], 0.9 * np.array([[np.cos(lam), np.sin(lam)], [-np.sin(lam), np.cos(lam)]])
    )
    assert model.observed_RVs == [obs]
    # FAST_COMPILE: that the model builds is the point here, not numba compilation.
    point = model.initial_point()
    assert np.isfinite(model.compile_logp(mode="FAST_COMPILE")(point))
    grad = model.compile_dlogp(mode="FAST_COMPILE")(point)
    assert np.all(np.isfinite(grad)) and np.any(grad != 0)


FIVE_COMPONENT_MODEL = """
import numpy as np, pymc as pm, pymc_dlm as dlm
with pm.Model() as model:
    s = pm.HalfNormal("s", 1.0)
    total = (
        dlm.LocalLevel(s, C0=1.0) + dlm.Seasonal(4, s, C0=1.0) + dlm.AR(0.5, s, C0=1.0)
        + dlm.Cycle(10.0, 0.9, s, C0=1.0) + dlm.LocalLinearTrend(s, s, C0=1.0)
    )
    dlm.DLM("y", total, sigma_obs=s, observed=np.sin(np.arange(6)))
model.logp()
"""


@pytest.mark.slow
def test_model_logp_of_five_component_sum_builds_quickly():
    # In a subprocess: pytensor's rewriter swallows exceptions, so an alarm cannot stop it.
    subprocess.run([sys.executable, "-c", FIVE_COMPONENT_MODEL], check=True, timeout=120)
