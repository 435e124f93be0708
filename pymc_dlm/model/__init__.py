"""The system-matrix language: the StateSpace container, block sums and validation."""

from pymc_dlm.model.discount import LearnedVariance
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.statespace import StateSpace, as_statespace

__all__ = ["LearnedVariance", "StateSpace", "SystemMatrices", "as_statespace"]
