"""Forward simulation of a DLM refuses what it would get silently wrong.

PyMC's ``sample_prior_predictive``, ``sample_posterior_predictive`` and ``pm.draw`` simulate
a DLM from its initial state. Two cases would give wrong draws without any error, so the
simulator raises instead, with a message naming what to use: diffuse initial states (a flat
prior has no draws) and time-varying matrices whose length changed (``pm.set_data`` with
future values, PyMC's forecasting idiom). The checks sit in the simulator's graph only,
never in the log-likelihood.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.raise_op import CheckAndRaise

__all__ = ["simulation_checks"]


_DIFFUSE_SIMULATION = (
    "a DLM with diffuse initial states (C0='diffuse', the default for levels, trends, "
    "seasonals and regressions) cannot be simulated: their flat prior has no draws, and "
    "starting them at m0 would give replicates that ignore the data. For posterior predictive "
    "checks use pymc_dlm.posterior_predictive(idata, model), which conditions on the data; "
    "for prior predictive simulation give those components a proper prior (for example "
    "LocalLevel(sigma, m0=<a typical value of the data>, C0=<its spread>**2)); for forecasts "
    "use pymc_dlm.forecast."
)
_LENGTH_CHANGED = (
    "a time-varying matrix of this DLM no longer has the number of time steps the model was "
    "built with, as after pm.set_data with future values. pm.sample_posterior_predictive "
    "cannot forecast a DLM (it would simulate from the initial state theta_0, not from the end "
    "of the data): use pymc_dlm.forecast(idata, model, steps=H, new_data={name: future "
    "values}), which conditions on the data."
)


def simulation_checks(y, system, steps, diffuse):
    """Refuse simulations that would silently be wrong (checked when the draw is made).

    The checks live in the simulator only, never in the log-likelihood.
    """
    if diffuse is not None and any(diffuse):
        y = CheckAndRaise(ValueError, _DIFFUSE_SIMULATION)(y, pt.as_tensor_variable(np.False_))
    same = [
        pt.eq(
            getattr(system, attr).shape[-3 if attr != "obs" or not system.obs_diag else -2], steps
        )
        for attr, key in (("F", "F"), ("G", "G"), ("W_sqrt", "W"), ("obs", "obs"))
        if key in system.time_varying
    ]
    if same:
        y = CheckAndRaise(ValueError, _LENGTH_CHANGED)(y, *same)
    return y
