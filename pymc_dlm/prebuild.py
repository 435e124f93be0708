r"""Build a store of kernels compiled ahead of time: ``python -m pymc_dlm prebuild DIRECTORY``.

The store (:mod:`pymc_dlm.kalman.fused.prebuilt`) lets a new machine skip numba's first
compile of the kernels. :func:`build` runs this module in a new process with
``NUMBA_CPU_NAME=generic`` and an empty numba cache; that process compiles the
log-likelihood's entry, draws states, forecasts and smooths on a small local linear trend
model with a missing value (no sampling: two fixed posterior draws), and every compile result of
:data:`~pymc_dlm.kalman.fused.prebuilt.COMPILED` is written to the store.

Use it when building a wheel or a container image::

    python -m pymc_dlm prebuild pymc_dlm/_prebuilt     # shipped inside the package
    python -m pymc_dlm prebuild /opt/pymc_dlm_kernels  # elsewhere: set PYMC_DLM_PREBUILT
"""

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pymc as pm
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.kalman.fused import native, prebuilt

__all__ = ["build"]


def build(directory, timeout=1800):
    """Build a store in ``directory`` (replacing its content); return its key.

    Takes two to three minutes (one compile of each kernel, for the generic CPU).

    Parameters
    ----------
    directory : path-like
        Where to write the store.
    timeout : float
        Seconds after which the building process is stopped.

    Returns
    -------
    str
        The store's key (:func:`pymc_dlm.kalman.fused.prebuilt.store_key`).

    Raises
    ------
    RuntimeError
        If the building process fails (its output is in the message) or leaves out a
        compiled function.
    """
    directory = Path(directory).resolve()
    if directory.exists():
        shutil.rmtree(directory)
    with tempfile.TemporaryDirectory(prefix="pymc_dlm_prebuild_") as cache:
        env = dict(os.environ)
        env.pop("NUMBA_CPU_FEATURES", None)  # the generic CPU has no optional features
        env.update(NUMBA_CPU_NAME="generic", NUMBA_CACHE_DIR=cache)
        env.update({prebuilt.DIRECTORY_ENV: str(directory), prebuilt.RECORD_ENV: "1"})
        run = subprocess.run(
            [sys.executable, "-m", "pymc_dlm.prebuild"],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    if run.returncode != 0:
        raise RuntimeError(f"building the store failed:\n{run.stdout}\n{run.stderr}")
    missing = [n for n in prebuilt.COMPILED if not (directory / f"{n}.pkl").is_file()]
    if missing:
        raise RuntimeError(f"building the store left out {missing}:\n{run.stderr}")
    return prebuilt.store_key()


def _post_process():
    """State draws, a forecast and the smoother of a small model: the post-processing kernels."""
    rng = np.random.default_rng(0)
    y = np.cumsum(rng.normal(size=24))
    y[5] = np.nan
    with pm.Model() as model:
        sigma = pm.HalfNormal("sigma", 1.0)
        sigma_obs = pm.HalfNormal("sigma_obs", 1.0)
        dlm.DLM("y", dlm.LocalLinearTrend(sigma, sigma), sigma_obs=sigma_obs, observed=y)
    values = {"sigma": [[0.5, 0.7]], "sigma_obs": [[1.0, 1.1]]}
    posterior = xr.Dataset({k: (("chain", "draw"), np.asarray(v)) for k, v in values.items()})
    idata = xr.DataTree.from_dict({"posterior": posterior})
    dlm.sample_states(idata, model, random_seed=0, progressbar=False)
    dlm.forecast(idata, model, steps=3, random_seed=0, progressbar=False)
    dlm.kalman_smoother(dlm.LocalLinearTrend(0.5, 0.5), y, sigma_obs=1.0)


def _record():
    """Compile everything of :data:`~pymc_dlm.kalman.fused.prebuilt.COMPILED` into the store."""
    if not prebuilt.STORE.recording:
        raise RuntimeError("use pymc_dlm.prebuild.build(directory), not this module")
    native.register()
    _post_process()


if __name__ == "__main__":
    _record()
