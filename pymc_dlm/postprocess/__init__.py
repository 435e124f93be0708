"""Results on top of the model: numerical filtering/smoothing, state draws, forecasts, checks."""

from pymc_dlm.postprocess.diagnostics import residual_tests, standardized_residuals
from pymc_dlm.postprocess.diagnostics_plot import plot_diagnostics
from pymc_dlm.postprocess.diagnostics_posterior import posterior_residuals
from pymc_dlm.postprocess.filtering import kalman_filter, kalman_smoother
from pymc_dlm.postprocess.forecast import forecast
from pymc_dlm.postprocess.importance import importance_correct
from pymc_dlm.postprocess.lfo import compare_lfo, lfo
from pymc_dlm.postprocess.plots import plot_components, plot_forecast, plot_states
from pymc_dlm.postprocess.predictive import posterior_predictive
from pymc_dlm.postprocess.states import sample_states

__all__ = [
    "compare_lfo",
    "forecast",
    "importance_correct",
    "kalman_filter",
    "kalman_smoother",
    "lfo",
    "posterior_predictive",
    "posterior_residuals",
    "residual_tests",
    "sample_states",
    "standardized_residuals",
]
__all__ += ["plot_components", "plot_diagnostics", "plot_forecast", "plot_states"]
