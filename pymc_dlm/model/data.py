r"""Observed data: axes declared, never guessed; length and missing-value checks.

The one rule for the axes of the data, the same for :class:`pymc_dlm.DLM`,
:func:`pymc_dlm.kalman_filter` and :func:`pymc_dlm.kalman_smoother`:

* the **core axes** are time, then series: (T,) or (T, 1) for a model with one series,
  (T, p) for a model with p series;
* **batch axes** (independent series sharing the model's structure) come before the core axes
  and exist only when they are *declared*: by batched parameters (a parameter with axes in front
  of its core axes declares them), or by ``dims`` naming every axis of the data (and, for
  :class:`~pymc_dlm.DLM`, by ``shape``). Data with more leading axes than declared is an error,
  never a batch read into it.
"""

import numpy as np
import pandas as pd

from pymc_dlm.model.notation import PARAMETERS, core_ndims

__all__ = ["as_observations", "declared_batch_ndim", "time_index"]


def declared_batch_ndim(ss, obs, obs_diag, *, obs_time_varying=False, dims=None, extra=()):
    """Batch axes the user declared: ``(number, what declared them)``.

    ``dims`` (a name per axis of the data, batch axes first) wins when given; otherwise the
    largest number of leading axes of any parameter (the system matrices and the observation
    noise) in front of its core axes (:func:`~pymc_dlm.model.notation.core_ndims`). ``extra``
    holds more ``(name, tensor, core ndim)`` (the discount factors, a learned variance's
    parameters: :func:`pymc_dlm.model.discount.batch_parameters`).
    """
    core = 1 if ss.n_series == 1 else 2
    if dims is not None:
        dims = (dims,) if isinstance(dims, str) else tuple(dims)
        if Ellipsis not in dims:
            return max(len(dims) - core, 0), "dims"
    tv = set(ss.time_varying) | ({"obs"} if obs_time_varying else set())
    cores = dict(zip(PARAMETERS, core_ndims(tv, obs_diag)))
    tensors = {"F": ss.F, "G": ss.G, "W_sqrt": ss.W_sqrt, "obs": obs, "m0": ss.m0}
    tensors["C0_sqrt"] = ss.C0_sqrt
    names = {
        "obs": "sigma_obs" if obs_diag else "obs_cov",
        "W_sqrt": "a component's sigma (the model's W)",
        "F": "the model's F",
        "G": "the model's G",
        "m0": "m0",
        "C0_sqrt": "C0",
    }
    order = ("obs", "W_sqrt", "F", "G", "m0", "C0_sqrt")  # first named wins a tie
    declared = [(tensors[k].ndim - cores[k], names[k]) for k in order]
    declared += [(t.ndim - core_ndim, name) for name, t, core_ndim in extra]
    ndim, source = max(declared, key=lambda pair: pair[0])
    return (ndim, source) if ndim > 0 else (0, None)


def time_index(y, axis):
    """The time labels carried by ``y`` (pandas index, xarray coordinate), or ``None``."""
    index = getattr(y, "index", None)
    if isinstance(index, pd.Index):
        return index
    dims = getattr(y, "dims", None)
    if isinstance(dims, tuple) and dims and hasattr(y, "coords"):
        name = dims[axis]
        if name in y.coords:
            return pd.Index(np.asarray(y.coords[name].values))
    return None


def _how_to_batch(n_series):
    shape = "(B, T)" if n_series == 1 else f"(B, T, {n_series})"
    return (
        f"put them on a leading axis, shape {shape}, and declare it by "
        "dims naming every axis (for example dims=('series_id', 'time')) or by parameters "
        "with a leading batch axis"
    )


def as_observations(y, n_series, name="observed", n_time=None, batch=(0, None)):
    """Float array (*batch, T, p) from user data; NaN means missing, +-inf is an error.

    Parameters
    ----------
    y : array_like
        numpy array, list, pandas Series or DataFrame, or xarray DataArray.
    n_series : int
        The model's number of series p.
    name : str
        The argument's name, used in error messages.
    n_time : int, optional
        The time length of the model's time-varying matrices, which the data must match.
    batch : (int, str or None)
        Number of declared batch axes and what declared them (:func:`declared_batch_ndim`).

    Returns
    -------
    (numpy.ndarray, pandas.Index or None)
        The data with shape (*batch, T, p), p = 1 included, and its time labels.
    """
    try:
        arr = np.asarray(y, dtype="float64")
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"{name} must be numeric (NaN for missing values), got {type(y).__name__}"
        ) from err
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} contains +-inf; use NaN for missing values")
    shape = arr.shape
    batch_ndim, source = batch
    declared = "no batch axes" if batch_ndim == 0 else f"{batch_ndim} batch axis(es) (by {source})"
    if n_series == 1 and arr.ndim == batch_ndim + 1:
        arr = arr[..., None]
    elif n_series == 1 and arr.ndim == batch_ndim + 2 and shape[-1] == 1:
        pass  # one series given as a column
    elif n_series > 1 and arr.ndim == batch_ndim + 2 and shape[-1] == n_series:
        pass
    else:
        core = "(T,) or (T, 1)" if n_series == 1 else f"(T, {n_series})"
        raise ValueError(
            f"{name} must have shape {core} after its batch axes, got shape {shape}: the "
            f"model has {n_series} series and declares {declared}. To fit several "
            f"independent series, {_how_to_batch(n_series)}."
        )
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one time step")
    if n_time is not None and arr.shape[-2] != n_time:
        raise ValueError(
            f"{name} has {arr.shape[-2]} time steps but the model's time-varying "
            f"matrices have {n_time}"
        )
    return arr, time_index(y, batch_ndim)
