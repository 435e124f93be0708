"""C0="stationary": the initial covariance solves C0 = G C0 G' + W (scipy as the oracle).

For the components' stationary blocks, and (hypothesis, bounded and derandomized examples) for
``pymc_dlm.model.stationary.stationary_cov`` on random stable G and W of random rank.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.linalg import solve_discrete_lyapunov

import pymc_dlm as dlm
from pymc_dlm.model.stationary import stationary_cov

SETTINGS = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@pytest.mark.parametrize(
    "component",
    [
        dlm.AR([0.5, 0.3], 0.7, C0="stationary"),
        dlm.ARMA([0.6], [0.4], 1.3, C0="stationary"),
        dlm.Cycle(12.0, 0.9, 0.5, C0="stationary"),
    ],
    ids=["ar2", "arma11", "cycle"],
)
def test_stationary_covariance_matches_scipy(component):
    ss = component.statespace
    G, W = ss.G.eval(), ss.W.eval()
    expected = solve_discrete_lyapunov(G, W)
    np.testing.assert_allclose(ss.C0.eval(), expected, rtol=1e-10, atol=1e-12)
    L = ss.C0_sqrt.eval()
    np.testing.assert_allclose(L @ L.T, expected, rtol=1e-10, atol=1e-12)


def test_stationary_follows_a_symbolic_parameter():
    rho = pt.dscalar("rho")
    ss = dlm.AR(rho, 2.0, C0="stationary").statespace
    f = pytensor.function([rho], ss.C0)
    for value in (0.1, -0.8, 0.95):
        np.testing.assert_allclose(f(value), [[4.0 / (1 - value**2)]], rtol=1e-12)


def test_nonstationary_fixed_block_is_an_error():
    with pytest.raises(ValueError, match="C0='stationary'"):
        dlm.AR(1.01, 1.0, C0="stationary").statespace
    with pytest.raises(ValueError, match="C0='stationary'"):
        dlm.LocalLevel(1.0, C0="stationary").statespace
    assert dlm.LocalLevel(1.0, C0="diffuse").statespace.n_diffuse == 1  # implemented (issue 7)
    with pytest.raises(ValueError, match="C0"):
        dlm.LocalLevel(1.0, C0="vague").statespace


# --------------------------------------------------------------------------------------------
# C0="stationary": the semi-definite factor and the Lyapunov solve, against numpy and scipy
# --------------------------------------------------------------------------------------------

_STATIONARY_FNS = {}


def _stationary_fn(n):
    """Compiled (C0, factor, stable) of stationary_cov for (n, n) inputs (Python backend)."""
    if n not in _STATIONARY_FNS:
        G = pt.tensor("G", shape=(n, n))
        W = pt.tensor("W", shape=(n, n))
        outs = stationary_cov(G, W)
        _STATIONARY_FNS[n] = pytensor.function([G, W], list(outs), mode="FAST_COMPILE")
    return _STATIONARY_FNS[n]


@SETTINGS
@given(
    n=st.integers(1, 4),
    rank=st.integers(0, 4),
    radius=st.floats(0.0, 0.999),
    seed=st.integers(0, 2**32 - 1),
)
def test_stationary_covariance_and_its_factor(n, rank, radius, seed):
    """Random stable G, W of random rank: C0 solves C0 = G C0 G' + W (scipy's solution).

    Its factor is lower triangular with L L' = C0 (singular C0 included), and equals numpy's
    Cholesky factor when C0 is positive definite.
    """
    rng = np.random.default_rng(seed)
    G = rng.standard_normal((n, n))
    rho = np.max(np.abs(np.linalg.eigvals(G)))
    G = G * (radius / rho) if rho > 0 else G
    if rng.random() < 0.3:  # companion form with a zero last coefficient: singular C0
        G = np.eye(n, k=1)
        G[:, 0] = np.r_[rng.uniform(-0.5, 0.5, n - 1), 0.0] if n > 1 else [0.5]
    B = rng.standard_normal((n, min(rank, n)))
    W = B @ B.T
    C0, L, stable = _stationary_fn(n)(G, W)
    assert bool(stable)
    ref = solve_discrete_lyapunov(G, W)
    scale = max(np.abs(ref).max(), 1e-300)
    np.testing.assert_allclose(C0, ref, atol=1e-10 * scale)
    np.testing.assert_array_equal(np.triu(L, 1), 0.0)
    np.testing.assert_allclose(L @ L.T, C0, atol=1e-10 * scale)
    if np.linalg.eigvalsh(ref).min() > 1e-8 * scale:
        np.testing.assert_allclose(L, np.linalg.cholesky(C0), rtol=1e-10, atol=1e-12 * scale)


def test_stationary_flag_and_finite_stand_in_outside_the_stationary_region():
    """|eigenvalue| >= 1 (unit root, rotation, explosive): not stable, finite values."""
    rot = np.array([[np.cos(0.7), np.sin(0.7)], [-np.sin(0.7), np.cos(0.7)]])
    for G in (
        rot,
        1.5 * rot,
        np.array([[1.0, 1.0], [0.0, 1.0]]),
        np.array([[0.5, 1.0], [0.5, 0.0]]),
    ):
        C0, L, stable = _stationary_fn(2)(G, np.eye(2))
        assert not bool(stable)
        assert np.all(np.isfinite(C0)) and np.all(np.isfinite(L))
