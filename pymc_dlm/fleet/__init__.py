"""Fleets: many independent DLMs, one per series of a long table, fitted on Dask and stored.

:func:`fit_many` fits one model per series (Dask tasks on a cluster, or the current process)
and writes each fit to a zarr store as soon as it is done; :func:`load_fit` reads one back.
Dask is imported only when a client is used, so ``import pymc_dlm`` never imports it.
"""

from pymc_dlm.fleet.run import fit_many
from pymc_dlm.fleet.seeds import series_seeds
from pymc_dlm.fleet.store import load_fit

__all__ = ["fit_many", "load_fit", "series_seeds"]
