"""C0="stationary": the initial covariance solves C0 = G C0 G' + W (scipy as the oracle)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.linalg import solve_discrete_lyapunov

import pymc_dlm as dlm


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
