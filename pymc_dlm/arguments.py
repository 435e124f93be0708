"""The arguments of :class:`pymc_dlm.DLM`: declared batch axes, ``dims``, time steps.

Checked when the variable is built, with errors that name the argument the user wrote
(the axis rule itself is :mod:`pymc_dlm.model.data`'s).
"""

import numpy as np
import pymc as pm
import pytensor.tensor as pt

from pymc_dlm.model.data import declared_batch_ndim
from pymc_dlm.model.discount import batch_parameters
from pymc_dlm.model.notation import PARAMETERS, core_ndims
from pymc_dlm.model.observation import observation_noise

__all__ = [
    "check_batch",
    "check_dims",
    "dim_lengths",
    "declared_batch",
    "resolve_steps",
    "steps_from_dims",
]


def declared_batch(ss, kwargs):
    """Batch axes declared by ``dims``, ``shape`` or the parameters (never by the data)."""
    tv = bool(kwargs.get("obs_time_varying", False))
    try:
        obs, obs_diag = observation_noise(
            kwargs.get("sigma_obs"), kwargs.get("obs_cov"), ss.n_series, time_varying=tv
        )
    except (TypeError, ValueError):
        obs, obs_diag = pt.zeros((ss.n_series,)), True  # dist() raises the precise error
    core = 1 if ss.n_series == 1 else 2
    shape = kwargs.get("shape")
    if kwargs.get("dims") is None and shape is not None:
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        if Ellipsis not in shape:
            return max(len(shape) - core, 0), "shape"
    extra = batch_parameters(ss, kwargs.get("obs_var"))
    return declared_batch_ndim(
        ss, obs, obs_diag, obs_time_varying=tv, dims=kwargs.get("dims"), extra=extra
    )


def check_dims(dims, shape):
    """``dims`` must name every axis of ``observed``, with lengths matching the model's coords.

    PyMC would otherwise fail later (or, for a coordinate of the wrong length, only when the
    results are assembled after sampling).
    """
    if dims is None:
        return
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    if Ellipsis in dims:
        return
    if len(dims) != len(shape):
        raise ValueError(
            f"dims must name each of the {len(shape)} axes of observed (batch axes, then time, "
            f"then series for a multivariate model), got {len(dims)} name(s): {dims}"
        )
    coords = pm.modelcontext(None).coords
    for axis, (dim, length) in enumerate(zip(dims, shape)):
        values = coords.get(dim)
        if values is not None and len(values) != length:
            raise ValueError(
                f"observed has length {length} on axis {axis}, which dims names {dim!r}, but "
                f"the model's coords give {dim!r} {len(values)} values"
            )


def check_batch(ss, batch, kwargs, source="observed"):
    """The batch shapes of the parameters must broadcast to that of ``observed``."""
    tv = bool(kwargs.get("obs_time_varying", False))
    try:
        obs, obs_diag = observation_noise(
            kwargs.get("sigma_obs"), kwargs.get("obs_cov"), ss.n_series, time_varying=tv
        )
    except (TypeError, ValueError):
        if kwargs.get("obs_var") is None:
            return  # dist() raises the precise error
        obs, obs_diag = None, True  # a learned variance in place of sigma_obs/obs_cov
    name = "sigma_obs" if obs_diag else "obs_cov"
    ranks = dict(
        zip(PARAMETERS, core_ndims(ss.time_varying | ({"obs"} if tv else set()), obs_diag))
    )
    params = {} if obs is None else {name: (obs, ranks["obs"])}
    for attr in ("F", "G", "W_sqrt", "m0", "C0_sqrt"):
        params[f"the model's {attr}"] = (getattr(ss, attr), ranks[attr])
    for label, t, core_ndim in batch_parameters(ss, kwargs.get("obs_var")):
        params[label] = (t, core_ndim)
    for label, (t, core_ndim) in params.items():
        shape = tuple(t.type.shape[: t.ndim - core_ndim])
        if any(s is None for s in shape):
            continue
        try:
            ok = np.broadcast_shapes(shape, batch) == tuple(batch)
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(
                f"{label} must have a batch shape that broadcasts to {tuple(batch)}, the batch "
                f"shape of {source} (its axes before time and series), got {shape}"
            )


def dim_lengths(dims):
    """Lengths of ``dims`` from the model's coordinates, or ``None`` if one is unknown."""
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    coords = pm.modelcontext(None).coords
    if Ellipsis in dims or any(coords.get(d) is None for d in dims):
        return None
    return tuple(len(coords[d]) for d in dims)


def steps_from_dims(ss, dims):
    """Number of time steps from the model's coordinates of the time dim."""
    dims = (dims,) if isinstance(dims, str) else tuple(dims)
    axis = -1 if ss.n_series == 1 else -2
    if len(dims) < -axis:
        return None
    coords = pm.modelcontext(None).coords.get(dims[axis])
    return None if coords is None else len(coords)


def resolve_steps(ss, steps, shape, obs_time, steps_label="steps"):
    """The number of time steps, from every source that gives one; they must agree."""
    candidates = {}
    if steps is not None:
        if isinstance(steps, bool) or int(steps) != steps or steps < 1:
            raise ValueError(f"steps must be a positive integer, got {steps}")
        candidates[steps_label] = int(steps)
    if shape is not None:
        shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)
        axis = -1 if ss.n_series == 1 else -2
        if len(shape) >= -axis and isinstance(shape[axis], (int, np.integer)):
            candidates["shape"] = int(shape[axis])
    if ss.n_time is not None:
        candidates["time-varying matrices"] = ss.n_time
    if obs_time is not None:
        candidates["the time axis of sigma_obs/obs_cov"] = obs_time
    if len(set(candidates.values())) > 1:
        raise ValueError(f"inconsistent numbers of time steps: got {candidates}")
    if not candidates:
        raise ValueError("DLM needs the number of time steps: give observed, steps, shape or dims")
    return next(iter(candidates.values()))
