"""Components: the building blocks of a DLM, each building a StateSpace."""

from pymc_dlm.components.arma import AR, ARMA, Cycle
from pymc_dlm.components.base import Component
from pymc_dlm.components.polynomial import LocalLevel, LocalLinearTrend, Polynomial
from pymc_dlm.components.regression import Regression
from pymc_dlm.components.seasonal import Fourier, Seasonal

__all__ = [
    "AR",
    "ARMA",
    "Component",
    "Cycle",
    "Fourier",
    "LocalLevel",
    "LocalLinearTrend",
    "Polynomial",
    "Regression",
    "Seasonal",
]
