"""The components' system matrices against R ``dlm``'s definitions.

Witness (STYLE.md §8): ``tests/support/oracles.py``'s ``mod_*`` (``dlmModPoly``, ``dlmModSeas``,
``dlmModTrig``, ``dlmModReg``, ``dlmModARMA``, the damped cycle and ``+``), written as plain
numpy from Petris, Petrone & Campagnoli (2009, §3.2). Their prior is R ``dlm``'s default,
m0 = 0 and C0 = 1e7 I, so every component below is given ``C0=1e7`` (the components' own
defaults are ``"diffuse"`` or ``"stationary"``). Nothing is stored.
"""

import numpy as np
import pytest

from tests.support import oracles as O


def _matrix_cases():
    T = 12
    X = np.linspace(-1.0, 1.0, 2 * T).reshape(T, 2) ** np.array([1, 2])
    return {
        "LocalLevel": (lambda dlm: dlm.LocalLevel(0.7, C0=1e7), O.mod_poly(1, 0.7)),
        "LocalLinearTrend": (
            lambda dlm: dlm.LocalLinearTrend(0.7, 0.2, C0=1e7),
            O.mod_poly(2, [0.7, 0.2]),
        ),
        "Polynomial3": (
            lambda dlm: dlm.Polynomial(3, [0.5, 0.4, 0.3], C0=1e7),
            O.mod_poly(3, [0.5, 0.4, 0.3]),
        ),
        "Polynomial4": (
            lambda dlm: dlm.Polynomial(4, [0.5, 0.0, 0.0, 0.3], C0=1e7),
            O.mod_poly(4, [0.5, 0.0, 0.0, 0.3]),
        ),
        "Seasonal4": (lambda dlm: dlm.Seasonal(4, 0.3, C0=1e7), O.mod_seas(4, 0.3)),
        "Seasonal12": (lambda dlm: dlm.Seasonal(12, 0.3, C0=1e7), O.mod_seas(12, 0.3)),
        "Seasonal2": (lambda dlm: dlm.Seasonal(2, 0.3, C0=1e7), O.mod_seas(2, 0.3)),
        "Fourier12_2": (lambda dlm: dlm.Fourier(12, 2, 0.1, C0=1e7), O.mod_trig(12, 2, 0.1)),
        "Fourier4_2_nyquist": (lambda dlm: dlm.Fourier(4, 2, 0.1, C0=1e7), O.mod_trig(4, 2, 0.1)),
        "Fourier12_6_nyquist": (
            lambda dlm: dlm.Fourier(12, 6, 0.1, C0=1e7),
            O.mod_trig(12, 6, 0.1),
        ),
        "Fourier7_3": (lambda dlm: dlm.Fourier(7, 3, 0.1, C0=1e7), O.mod_trig(7, 3, 0.1)),
        "Regression_static": (lambda dlm: dlm.Regression(X, C0=1e7), O.mod_reg(X, 0.0)),
        "Regression_rw": (
            lambda dlm: dlm.Regression(X, [0.1, 0.2], C0=1e7),
            O.mod_reg(X, [0.1, 0.2]),
        ),
        "Regression_1d": (
            lambda dlm: dlm.Regression(X[:, 0], 0.1, C0=1e7),
            O.mod_reg(X[:, 0], 0.1),
        ),
        "AR1": (lambda dlm: dlm.AR(0.7, 0.5, C0=1e7), O.mod_arma([0.7], [], 0.25)),
        "AR2": (lambda dlm: dlm.AR([0.5, 0.3], 0.5, C0=1e7), O.mod_arma([0.5, 0.3], [], 0.25)),
        "ARMA21": (
            lambda dlm: dlm.ARMA([0.5, -0.2], [0.3], 0.8, C0=1e7),
            O.mod_arma([0.5, -0.2], [0.3], 0.64),
        ),
        "ARMA12": (
            lambda dlm: dlm.ARMA([0.5], [0.3, 0.1], 0.8, C0=1e7),
            O.mod_arma([0.5], [0.3, 0.1], 0.64),
        ),
        "Cycle": (lambda dlm: dlm.Cycle(20, 0.9, 0.5, C0=1e7), O.mod_cycle(20, 0.9, 0.5)),
        "sum_trend_seas_reg": (
            lambda dlm: (
                dlm.LocalLinearTrend(0.7, 0.2, m0=[1.0, 2.0], C0=5.0)
                + dlm.Seasonal(4, 0.3, C0=1e7)
                + dlm.Regression(X, 0.1, C0=1e7)
            ),
            O.mod_sum(
                O.mod_poly(2, [0.7, 0.2], m0=[1.0, 2.0], C0=5.0),
                O.mod_seas(4, 0.3),
                O.mod_reg(X, 0.1),
            ),
        ),
        "sum_level_cycle_arma": (
            lambda dlm: (
                dlm.LocalLevel(0.1, C0=1e7)
                + dlm.Cycle(20, 0.9, 0.5, C0=1e7)
                + dlm.ARMA([0.5, -0.2], [0.3], 0.8, C0=1e7)
            ),
            O.mod_sum(
                O.mod_poly(1, 0.1), O.mod_cycle(20, 0.9, 0.5), O.mod_arma([0.5, -0.2], [0.3], 0.64)
            ),
        ),
    }


MATRIX_CASES = _matrix_cases()


@pytest.mark.parametrize("name", list(MATRIX_CASES))
def test_component_matrices_match_dlm_definitions(name):
    dlm = pytest.importorskip("pymc_dlm")
    build, ref = MATRIX_CASES[name]
    ss = build(dlm).statespace
    for letter in ("F", "G", "W", "m0", "C0"):
        got = np.asarray(getattr(ss, letter).eval(), float)
        want = getattr(ref, letter)
        assert got.shape == want.shape, f"{name}.{letter}: shape {got.shape} != dlm's {want.shape}"
        np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15, err_msg=f"{name}.{letter}")
    assert ss.n_state == ref.G.shape[-1]
    assert ss.n_series == 1
