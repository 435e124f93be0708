"""The univariate filter with a proper prior (the gradient's definition off numba) against oracles.

Oracles: the dense joint Gaussian of the whole series (``oracles.dense_loglik``, scipy's
multivariate normal) for the value, and central finite differences of that dense
log-likelihood for the gradient. The model has a time-varying G, a singular W (one state
without noise, so the predicted covariance is singular once the prior is forgotten: the case
where the square-root filter's QR derivative is NaN), and missing values (one component, and
one whole row).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.univariate import univariate_filter_scan
from pymc_dlm.model.notation import SystemMatrices
from tests.support.oracles import dense_loglik

SEED = 20261124
T, P, N = 9, 2, 3
MODE = "FAST_COMPILE"  # the Python linker: what matters here is the graph, not its speed


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng([SEED, 41])
    F = rng.normal(size=(P, N))
    G = 0.6 * rng.normal(size=(T, N, N))
    L = np.diag([0.7, 0.4, 0.0])  # the third state has no noise: W is singular
    sd = np.array([0.5, 0.9])
    m0 = rng.normal(size=N)
    L0 = np.tril(rng.normal(size=(N, N))) + 2.0 * np.eye(N)
    y = rng.normal(size=(T, P))
    y[2, 1] = np.nan
    y[5] = np.nan
    return F, G, L, sd, m0, L0, y


def _symbolic(F, G, L, sd, m0, L0, y):
    system = SystemMatrices(F, G, L, sd, m0, L0, frozenset({"G"}), True, None)
    return univariate_filter_scan(system, y).loglik


def _oracle(F, G, L, sd, m0, L0, y):
    W = np.broadcast_to(L @ L.T, (T, N, N))
    return dense_loglik(F, G, W, np.diag(sd**2), m0, L0 @ L0.T, y)


def test_value_equals_dense_gaussian(case):
    F, G, L, sd, m0, L0, y = case
    ll = _symbolic(*(pt.constant(x) for x in case)).eval(mode=MODE)
    np.testing.assert_allclose(ll, _oracle(*case), rtol=1e-11)


def test_gradient_equals_finite_differences_of_dense_gaussian(case):
    """Gradient w.r.t. the noise factor and the standard deviations, at a singular W."""
    F, G, L, sd, m0, L0, y = case
    L_var, sd_var = pt.dmatrix("L"), pt.dvector("sd")
    ll = _symbolic(*(pt.constant(x) for x in (F, G)), L_var, sd_var, m0, L0, pt.constant(y))
    fn = pytensor.function([L_var, sd_var], pytensor.grad(ll, [L_var, sd_var]), mode=MODE)
    gL, gsd = fn(L, sd)
    assert np.all(np.isfinite(gL)) and np.all(np.isfinite(gsd))

    h = 1e-6

    def diff(k, which):
        args = [L.copy(), sd.copy()]
        up, down = [a.copy() for a in args], [a.copy() for a in args]
        up[which].flat[k] += h
        down[which].flat[k] -= h
        f_up = _oracle(F, G, up[0], up[1], m0, L0, y)
        f_down = _oracle(F, G, down[0], down[1], m0, L0, y)
        return (f_up - f_down) / (2 * h)

    num_L = np.array([diff(k, 0) for k in range(L.size)]).reshape(L.shape)
    num_sd = np.array([diff(k, 1) for k in range(sd.size)])
    np.testing.assert_allclose(gL, num_L, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(gsd, num_sd, rtol=1e-6, atol=1e-7)


def test_nonpositive_forecast_variance_gives_minus_inf_and_finite_gradient(case):
    """Every variance zero and y off the model's support: -inf, never NaN."""
    F, G, L, sd, m0, L0, y = case
    L_var, sd_var, L0_var = pt.dmatrix("L"), pt.dvector("sd"), pt.dmatrix("L0")
    ll = _symbolic(pt.constant(F), pt.constant(G), L_var, sd_var, m0, L0_var, pt.constant(y))
    fn = pytensor.function(
        [L_var, sd_var, L0_var], [ll, *pytensor.grad(ll, [L_var, sd_var])], mode=MODE
    )
    value, *grads = fn(np.zeros_like(L), np.zeros_like(sd), np.zeros_like(L0))
    assert value == -np.inf
    assert all(np.all(np.isfinite(g)) for g in grads)


@pytest.mark.parametrize("k", [1, 3])
def test_square_root_filter_takes_a_rectangular_initial_factor(k):
    """``filter_scan`` (proper start) with C0_sqrt (n, k), k < n or k > n: the dense Gaussian.

    Before the scan squared the factor, k != n failed with a shape error (2026-12-07).
    """
    rng = np.random.default_rng(k)
    F, G = np.array([[1.0, 1.0]]), np.array([[1.0, 0.0], [0.0, 0.8]])
    L, L0 = np.diag([0.4, 0.3]), rng.normal(size=(2, k))
    y = np.array([[1.3], [0.5], [np.nan], [1.2], [0.7], [0.9]])
    system = SystemMatrices(pt.as_tensor(F), pt.as_tensor(G), pt.as_tensor(L),
                            pt.as_tensor([0.5]), pt.as_tensor([1.0, 0.0]), pt.as_tensor(L0),
                            frozenset(), True, None)  # fmt: skip
    value = filter_scan(system, pt.as_tensor(y)).loglik.eval(mode="FAST_COMPILE")
    expected = dense_loglik(F, G, L @ L.T, 0.25 * np.eye(1), [1.0, 0.0], L0 @ L0.T, y[:, 0])
    np.testing.assert_allclose(value, expected, rtol=1e-10)
