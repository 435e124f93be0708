"""pymc_dlm: Bayesian dynamic linear models as first-class citizens of PyMC."""

from pymc_dlm.components import (
    AR,
    ARMA,
    Component,
    Cycle,
    Fourier,
    LocalLevel,
    LocalLinearTrend,
    Polynomial,
    Regression,
    Seasonal,
)
from pymc_dlm.distribution import DLM
from pymc_dlm.model import StateSpace, as_statespace
from pymc_dlm.postprocess import forecast, kalman_filter, kalman_smoother, sample_states
from pymc_dlm.postprocess.plots import plot_components, plot_forecast, plot_states

__version__ = "0.1.0"

__all__ = [
    "AR",
    "ARMA",
    "Component",
    "Cycle",
    "DLM",
    "Fourier",
    "LocalLevel",
    "LocalLinearTrend",
    "Polynomial",
    "Regression",
    "Seasonal",
    "StateSpace",
    "__version__",
    "as_statespace",
    "forecast",
    "kalman_filter",
    "kalman_smoother",
    "sample_states",
]
__all__ += ["plot_components", "plot_forecast", "plot_states"]
