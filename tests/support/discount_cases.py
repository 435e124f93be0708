"""The models, series and comparison shared by the discount tests (``tests/discount/``).

Each :class:`Case` is one model written twice: for the package (``pymc_dlm``, built only when
called) and for the oracles of ``tests.support.discount_oracles``. ``series`` simulates the
inputs (trend + period-4 seasonal + noise, fixed seeds built from ``SEED``), ``package_logp``
compiles the package's log-likelihood as a function of the value, and ``assert_loglik``
compares two log-likelihoods.
"""

from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

import pymc_dlm as dlm
from tests.support.discount_oracles import (
    T,
    combine,
    general_block,
    poly_block,
    regression_block,
    seasonal_block,
)

SEED = 20261205

X_REG = np.column_stack([np.cos(np.arange(T)), np.linspace(-1.0, 1.0, T)])
M0_SEAS = [1.0, -0.5, 0.2]
M0_REG = [0.5, -0.3]
F_SS = np.array([1.0, 0.5])  # a two-state StateSpace block with a rotation-like G
G_SS = np.array([[0.9, 0.2], [-0.1, 0.8]])
C0_SS = np.array([[2.0, 0.3], [0.3, 1.0]])
MISSING = (3, 7)


def series(seed, missing=()):
    """A trend + period-4 seasonal + noise series of length T (fixed seed), NaN at ``missing``."""
    rng = np.random.default_rng([SEED, seed])
    t = np.arange(T)
    y = 10.0 + 0.3 * t + 2.0 * np.sin(np.pi * t / 2.0) + np.cumsum(rng.normal(0.0, 0.5, T))
    y = y + rng.normal(0.0, 0.8, T)
    y[list(missing)] = np.nan
    return y


class Case(NamedTuple):
    """The same model for the package (built only when called) and for the oracles."""

    package: object  # () -> pymc_dlm model
    oracle: object  # () -> System


LEVEL = Case(
    lambda: dlm.LocalLevel(discount=0.9, m0=10.0, C0=4.0),
    lambda: combine(poly_block(1, delta=0.9, m0=10.0, C0=4.0)),
)
TREND_SEASONAL_SIGMA = Case(
    lambda: (
        dlm.LocalLinearTrend(discount=0.95, m0=[10.0, 0.2], C0=[4.0, 1.0])
        + dlm.Seasonal(4, 0.3, m0=M0_SEAS, C0=2.0)
    ),
    lambda: combine(
        poly_block(2, delta=0.95, m0=[10.0, 0.2], C0=[4.0, 1.0]),
        seasonal_block(4, sigma=0.3, m0=M0_SEAS, C0=2.0),
    ),
)
# two discounted blocks (trend, seasonal) and a sigma block (random-walk regression)
TREND_SEASONAL_REGRESSION = Case(
    lambda: (
        dlm.LocalLinearTrend(discount=0.95, m0=[10.0, 0.2], C0=[4.0, 1.0])
        + dlm.Seasonal(4, discount=0.85, m0=M0_SEAS, C0=2.0)
        + dlm.Regression(X_REG, sigma=[0.1, 0.05], m0=M0_REG, C0=[1.0, 0.5])
    ),
    lambda: combine(
        poly_block(2, delta=0.95, m0=[10.0, 0.2], C0=[4.0, 1.0]),
        seasonal_block(4, delta=0.85, m0=M0_SEAS, C0=2.0),
        regression_block(X_REG, sigma=[0.1, 0.05], m0=M0_REG, C0=[1.0, 0.5]),
    ),
)
LEVEL_SIGMA_REGRESSION_DISCOUNT = Case(
    lambda: (
        dlm.LocalLevel(0.4, m0=10.0, C0=4.0)
        + dlm.Regression(X_REG, discount=0.97, m0=M0_REG, C0=[1.0, 0.5])
    ),
    lambda: combine(
        poly_block(1, sigma=0.4, m0=10.0, C0=4.0),
        regression_block(X_REG, delta=0.97, m0=M0_REG, C0=[1.0, 0.5]),
    ),
)
POLYNOMIAL3_STATESPACE = Case(
    lambda: (
        dlm.Polynomial(3, discount=0.9, m0=[10.0, 0.2, 0.0], C0=[4.0, 1.0, 0.1])
        + dlm.StateSpace(F_SS[None, :], G_SS, discount=0.8, m0=[1.0, 0.0], C0=C0_SS)
    ),
    lambda: combine(
        poly_block(3, delta=0.9, m0=[10.0, 0.2, 0.0], C0=[4.0, 1.0, 0.1]),
        general_block(F_SS, G_SS, delta=0.8, m0=[1.0, 0.0], C0=C0_SS),
    ),
)
KNOWN_V_CASES = {
    "level": LEVEL,
    "trend(discount)+seasonal(sigma)": TREND_SEASONAL_SIGMA,
    "trend(discount)+seasonal(discount)+regression(sigma)": TREND_SEASONAL_REGRESSION,
    "level(sigma)+regression(discount)": LEVEL_SIGMA_REGRESSION_DISCOUNT,
    "polynomial3(discount)+statespace(discount)": POLYNOMIAL3_STATESPACE,
}


def package_logp(model, ys, **obs):
    """pymc_dlm's log-likelihood of each series in ``ys``, one compiled function of the value."""
    value = pt.vector("y")
    rv = dlm.DLM.dist(model, steps=T, **obs)
    f = pytensor.function([value], pm.logp(rv, value))
    return [float(f(y)) for y in ys]


def assert_loglik(got, expected, tol=1e-9, label=""):
    """|got - expected| <= tol · max(1, |expected|): absolute near 0, relative otherwise."""
    assert np.isfinite(got), f"{label}: {got!r}"
    err = abs(got - expected)
    assert err <= tol * max(1.0, abs(expected)), (
        f"{label}: got {got!r}, expected {expected!r} (difference {err:.3g})"
    )
