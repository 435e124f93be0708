"""Bad input to the components and ``StateSpace``: an immediate ValueError or TypeError naming it.

Complements ``tests/model/test_validation.py`` (shapes, fixed sigmas, covariances, structure of
the components, observed data of ``DLM``) with more component and ``StateSpace`` cases.

Every message must name the argument and show what was received (the word "got" followed by
the value, shape, type or names found). Nothing here compiles a graph: every check fires before
any computation.

The other public entry points are checked beside their layers, each in a
``test_validation_entrypoints.py``: ``tests/model/`` (components, ``StateSpace``),
``tests/distribution/`` (``DLM``, ``DLM.dist``), ``tests/kalman/`` (``kalman_filter``,
``kalman_smoother``) and ``tests/postprocess/`` (``sample_states``, ``forecast``, the plots).
"""

import re

import numpy as np
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from tests.support.errors import expect

I2 = np.eye(2)
ROW = np.ones((1, 2))


def build(obj):
    """Force the construction of a component's StateSpace (components build lazily)."""
    return dlm.as_statespace(obj)


# --------------------------------------------------------------------------------------------
# Components and StateSpace
# --------------------------------------------------------------------------------------------

COMPONENT_CASES = {
    "LocalLevel sigma a string": ("sigma", TypeError, lambda: dlm.LocalLevel("a")),
    "LocalLevel m0 inf": ("m0", ValueError, lambda: build(dlm.LocalLevel(1.0, m0=np.inf, C0=1.0))),
    "LocalLevel C0 nan": ("C0", ValueError, lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0=np.nan))),
    "LocalLevel C0 unknown keyword": (
        "C0",
        ValueError,
        lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0="flat")),
    ),
    "LocalLinearTrend sigma_level a string": (
        "sigma_level",
        TypeError,
        lambda: dlm.LocalLinearTrend("x", 1.0),
    ),
    "Polynomial order a string": ("order", TypeError, lambda: dlm.Polynomial("2", 1.0)),
    "Seasonal period a float": ("period", ValueError, lambda: dlm.Seasonal(12.5, 1.0)),
    "Seasonal sigma negative in a batch": (
        "sigma",
        ValueError,
        lambda: dlm.Seasonal(4, np.array([1.0, -1.0])),
    ),
    "Fourier harmonics not an integer": ("harmonics", ValueError, lambda: dlm.Fourier(12, 1.5, 1)),
    "Fourier harmonics a string": ("harmonics", TypeError, lambda: dlm.Fourier(12, "2", 1.0)),
    "Fourier harmonics above period/2 (period 2.5)": (
        "harmonics",
        ValueError,
        lambda: dlm.Fourier(2.5, 2, 1.0),
    ),
    "Regression X with inf": (
        "X",
        ValueError,
        lambda: dlm.Regression(np.array([[1.0], [np.inf]])),
    ),
    "Regression X without columns": ("X", ValueError, lambda: dlm.Regression(np.ones((4, 0)))),
    "Regression X a string": ("X", TypeError, lambda: dlm.Regression("abc")),
    "ARMA ma nan": ("ma", ValueError, lambda: build(dlm.ARMA([0.5], [np.nan], 1.0))),
    "ARMA ma a string": ("ma", TypeError, lambda: dlm.ARMA([0.5], "a", 1.0)),
    "AR rho inf": ("rho|ar", ValueError, lambda: build(dlm.AR(np.inf, 1.0))),
    "Cycle period nan": ("period", ValueError, lambda: dlm.Cycle(np.nan, 0.5, 1.0)),
    "Cycle period a string": ("period", TypeError, lambda: dlm.Cycle("10", 0.5, 1.0)),
    "Cycle damping nan": ("damping", ValueError, lambda: dlm.Cycle(10.0, np.nan, 1.0)),
    "Cycle sigma negative": ("sigma", ValueError, lambda: dlm.Cycle(10.0, 0.5, -1.0)),
}


@pytest.mark.parametrize("case", list(COMPONENT_CASES))
def test_components_reject_bad_parameters(case):
    argname, exc, make = COMPONENT_CASES[case]
    expect(make, argname, exc)


STATIONARY_CASES = {
    "AR unit root": lambda: build(dlm.AR(1.0, 1.0, m0=0.0, C0="stationary")),
    "AR explosive": lambda: build(dlm.AR(-1.2, 1.0, m0=0.0, C0="stationary")),
    "ARMA unit root": lambda: build(dlm.ARMA([0.5, 0.5], [0.3], 1.0, m0=0.0, C0="stationary")),
    "Cycle damping 1": lambda: build(dlm.Cycle(10.0, 1.0, 1.0, m0=0.0, C0="stationary")),
    "LocalLevel": lambda: build(dlm.LocalLevel(1.0, m0=0.0, C0="stationary")),
}


@pytest.mark.parametrize("case", list(STATIONARY_CASES))
def test_stationary_prior_of_a_nonstationary_block_is_rejected(case):
    with pytest.raises(ValueError, match="stationary") as err:
        STATIONARY_CASES[case]()
    assert "eigenvalues of G" in str(err.value)


STATESPACE_CASES = {
    "G complex": ("G", TypeError, lambda: dlm.StateSpace(ROW, I2 * 1j, I2)),
    "F complex tensor": (
        "F",
        TypeError,
        lambda: dlm.StateSpace(pt.as_tensor(ROW.astype(complex)), I2, I2),
    ),
    "F a string": ("F", TypeError, lambda: dlm.StateSpace("F", I2, I2)),
    "W a string": ("W", TypeError, lambda: dlm.StateSpace(ROW, I2, "W")),
    "W inf": ("W", ValueError, lambda: dlm.StateSpace(ROW, I2, np.diag([np.inf, 1.0]))),
    "C0 batch with one indefinite matrix": (
        "C0",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, C0=np.stack([I2, -I2])),
    ),
    "time-varying W with one indefinite step": (
        "W",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, np.stack([I2, -I2]), time_varying="W"),
    ),
    "time-varying W shorter than F": (
        r"(?=.*'F': 5)(?=.*'W': 4)",
        ValueError,
        lambda: dlm.StateSpace(
            np.ones((5, 1, 2)), I2, np.broadcast_to(I2, (4, 2, 2)), time_varying=("F", "W")
        ),
    ),
    "time-varying G without its time axis": (
        "G",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying=("G",)),
    ),
    "time_varying an unknown name": (
        "time_varying",
        ValueError,
        lambda: dlm.StateSpace(ROW, I2, I2, time_varying="FG"),
    ),
    "m0 a string": ("m0", TypeError, lambda: dlm.StateSpace(ROW, I2, I2, m0="0")),
}


@pytest.mark.parametrize("case", list(STATESPACE_CASES))
def test_statespace_rejects_bad_matrices(case):
    argname, exc, make = STATESPACE_CASES[case]
    with pytest.raises(exc) as err:
        make()
    assert re.search(argname, str(err.value)), str(err.value)


def test_sum_of_a_component_and_a_non_model_names_the_operand():
    expect(lambda: dlm.LocalLevel(1.0) + "x", "operand", TypeError)
