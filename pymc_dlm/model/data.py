"""Observed data: rank, length and missing-value checks."""

import numpy as np

__all__ = ["as_observations"]


def as_observations(y, n_series, name="observed", n_time=None):
    """Float array (..., T, p) from user data; NaN means missing, +-inf is an error.

    Univariate models (``n_series == 1``) take (..., T); multivariate ones (..., T, p).
    """
    index = getattr(y, "index", None)
    try:
        arr = np.asarray(y, dtype="float64")
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be numeric (NaN for missing values)") from err
    if np.any(np.isinf(arr)):
        raise ValueError(f"{name} contains +-inf; use NaN for missing values")
    if n_series == 1:
        if arr.ndim < 1:
            raise ValueError(f"{name} must have a time axis, got a scalar")
        arr = arr[..., None]
    elif arr.ndim < 2 or arr.shape[-1] != n_series:
        raise ValueError(
            f"{name} must have shape (..., T, {n_series}) for a model with {n_series} series, "
            f"got shape {arr.shape}"
        )
    if arr.shape[-2] == 0:
        raise ValueError(f"{name} must have at least one time step")
    if n_time is not None and arr.shape[-2] != n_time:
        raise ValueError(
            f"{name} has {arr.shape[-2]} time steps but the model's time-varying "
            f"matrices have {n_time}"
        )
    return arr, index
