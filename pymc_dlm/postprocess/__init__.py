"""Results on top of the model: numerical filtering/smoothing, state draws, forecasts, plots."""

from pymc_dlm.postprocess.filtering import kalman_filter, kalman_smoother
from pymc_dlm.postprocess.forecast import forecast
from pymc_dlm.postprocess.plots import plot_components, plot_forecast, plot_states
from pymc_dlm.postprocess.states import sample_states

__all__ = ["forecast", "kalman_filter", "kalman_smoother", "sample_states"]
__all__ += ["plot_components", "plot_forecast", "plot_states"]
