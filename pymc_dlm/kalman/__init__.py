"""Pure pytensor Kalman recursions: filter, smoother, backward sampler, simulator.

Testable with a bare ``pytensor.function``; never imports PyMC.
"""

from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.prepare import FilterResult

__all__ = ["FilterResult", "filter_scan"]
