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
from pymc_dlm.fleet import fit_many, load_fit
from pymc_dlm.latent import LatentStates
from pymc_dlm.model import LearnedVariance, StateSpace, as_statespace
from pymc_dlm.model.family import Binomial, NegativeBinomial
from pymc_dlm.polya_gamma import PolyaGammaFFBS
from pymc_dlm.postprocess import (
    compare_lfo,
    forecast,
    importance_correct,
    kalman_filter,
    kalman_smoother,
    lfo,
    posterior_predictive,
    posterior_residuals,
    residual_tests,
    sample_states,
    standardized_residuals,
)
from pymc_dlm.postprocess.diagnostics_plot import plot_diagnostics
from pymc_dlm.postprocess.plots import plot_components, plot_forecast, plot_states

__version__ = "0.1.0"

__all__ = [
    "AR",
    "ARMA",
    "Binomial",
    "Component",
    "Cycle",
    "DLM",
    "Fourier",
    "LatentStates",
    "LearnedVariance",
    "LocalLevel",
    "LocalLinearTrend",
    "NegativeBinomial",
    "PolyaGammaFFBS",
    "Polynomial",
    "Regression",
    "Seasonal",
    "StateSpace",
    "__version__",
    "as_statespace",
    "compare_lfo",
    "fit_many",
    "forecast",
    "importance_correct",
    "kalman_filter",
    "kalman_smoother",
    "lfo",
    "load_fit",
    "posterior_predictive",
    "posterior_residuals",
    "residual_tests",
    "sample_states",
    "standardized_residuals",
]
__all__ += ["plot_components", "plot_diagnostics", "plot_forecast", "plot_states"]
