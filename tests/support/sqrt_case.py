"""The square-root steps' test case: every branch of the update and of the prediction.

Three states, two series with one component and one whole row missing, a proper prior with
a full (not diagonal) factor L0, and a rank-deficient noise factor LW with a full W = LW LW'.
Shared by ``tests/kernels/test_fused.py`` (the square-root value) and
``tests/kernels/test_sqrt_moments.py`` (its moments, smoothed moments and draws). Numbers
only: nothing from pymc_dlm.
"""

from typing import NamedTuple

import numpy as np

T, P, N = 12, 2, 3


class SqrtCase(NamedTuple):
    F: np.ndarray  #: (p, n)
    G: np.ndarray  #: (n, n)
    LW: np.ndarray  #: (n, 2): the noise factor
    sd: np.ndarray  #: (p,): observation standard deviations
    m0: np.ndarray  #: (n,)
    L0: np.ndarray  #: (n, n): the prior's factor
    y: np.ndarray  #: (T, p), NaN where missing


def sqrt_case():
    """The case, with its series (seed 11, cumulated normals)."""
    y = np.random.default_rng(11).normal(size=(T, P)).cumsum(axis=0)
    y[3, 1] = np.nan
    y[7] = np.nan
    return SqrtCase(
        F=np.array([[1.0, 0.0, 0.5], [0.3, 1.0, 0.0]]),
        G=np.array([[1.0, 1.0, 0.0], [0.0, 0.9, 0.0], [0.0, 0.2, 0.7]]),
        LW=np.array([[0.5, 0.0], [0.1, 0.3], [0.0, 0.2]]),
        sd=np.array([0.4, 0.7]),
        m0=np.array([0.5, -0.2, 1.0]),
        L0=np.array([[2.0, 0.0, 0.0], [0.5, 1.5, 0.0], [0.2, -0.3, 1.0]]),
        y=y,
    )
