r"""What a forecast past the end of the data needs of the future: time labels and inputs.

* :func:`future_coords` continues the time coordinate of the data for ``steps`` labels, and
  :func:`given_coords` checks labels given by the user;
* :func:`future_params` replaces the model's ``pm.Data`` by their future values
  (``new_data``) in the DLM variable's parameters, and refuses a time-varying input (a
  matrix, or a count family's offset or trials) whose future values are not given.
"""

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors

from pymc_dlm.distribution_family import FamilyDLMRV
from pymc_dlm.postprocess.posterior import dlm_parameters

__all__ = ["future_coords", "future_params", "given_coords"]

_NAMES = ("F", "G", "W", "obs")


def future_coords(coord, steps):
    """Continue a time coordinate by ``steps`` values.

    A DatetimeIndex continues with its (inferred) frequency, a PeriodIndex with its frequency;
    integers and floats continue with their last spacing (1 for a single value). Other labels
    (strings) cannot be continued: give them with ``coords=``.
    """
    index = pd.Index(np.asarray(coord)) if not isinstance(coord, pd.Index) else coord
    if isinstance(index, pd.PeriodIndex):
        return pd.period_range(index[-1] + 1, periods=steps, freq=index.freq)
    if isinstance(index, pd.DatetimeIndex):
        freq = index.freq
        if freq is None and len(index) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas 3 announces an API change here
                inferred = pd.infer_freq(index)
            freq = None if inferred is None else pd.tseries.frequencies.to_offset(inferred)
        if freq is None:
            raise ValueError(
                "cannot continue the datetime coordinate: it has no regular frequency; give "
                "the future labels with coords={<time dim>: labels}"
            )
        return pd.date_range(index[-1], periods=steps + 1, freq=freq)[1:]
    if pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
        step = index[-1] - index[-2] if len(index) >= 2 else 1
        return np.asarray(index[-1] + step * np.arange(1, steps + 1))
    raise ValueError(
        f"cannot continue time labels of dtype {index.dtype} (last label {index[-1]!r}): give "
        f"the {steps} future labels with coords={{<time dim>: labels}}"
    )


def given_coords(coords, time_dim, steps):
    """The future labels the user gave in ``coords``, checked, or ``None``."""
    if coords is None:
        return None
    if not isinstance(coords, Mapping):
        raise TypeError(
            f"coords must be a dict mapping the time dim {time_dim!r} to {steps} future labels, "
            f"got {type(coords).__name__}"
        )
    if time_dim not in coords:
        raise ValueError(
            f"coords must give the future labels of the time dim {time_dim!r}, got keys "
            f"{sorted(map(str, coords))}"
        )
    labels = pd.Index(coords[time_dim])
    if len(labels) != steps:
        raise ValueError(
            f"coords[{time_dim!r}] must have {steps} labels (steps), got {len(labels)}"
        )
    return labels


def future_params(model, target, new_data, steps):
    """The target's matrices with pm.Data replaced by their future values."""
    params = dlm_parameters(target.rv)
    if new_data is not None and not isinstance(new_data, Mapping):
        raise TypeError(
            "new_data must be a dict mapping pm.Data names to future values, "
            f"got {type(new_data).__name__}"
        )
    replace = {}
    shared = {v.name: v for v in ancestors(params) if isinstance(v, SharedVariable) and v.name}
    for key, value in (new_data or {}).items():
        if key not in model.named_vars or not isinstance(model[key], SharedVariable):
            raise ValueError(f"new_data: {key!r} is not a pm.Data variable of the model")
        if key not in shared:
            continue
        old = shared[key].get_value()
        try:
            value = np.asarray(value, dtype=old.dtype)
        except (TypeError, ValueError) as err:
            raise TypeError(
                f"new_data[{key!r}] must be a numeric array, got {type(value).__name__}"
            ) from err
        if value.ndim != old.ndim or value.shape[1:] != old.shape[1:]:
            raise ValueError(
                f"new_data[{key!r}] must have shape "
                f"({steps}, {', '.join(map(str, old.shape[1:]))}) "
                f"like the pm.Data it replaces (time first), got {value.shape}"
            )
        if value.shape[0] != steps:
            raise ValueError(
                f"new_data[{key!r}] must have {steps} rows (steps), got {value.shape[0]}"
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"new_data[{key!r}] must be finite")
        replace[shared[key]] = pt.as_tensor_variable(value)
    op = target.op
    for i, name in _time_varying_inputs(target, params):
        used = {v for v in ancestors([params[i]]) if v in replace}
        if not used:
            names = sorted(k for k in shared)
            raise ValueError(
                f"the model's {name} is time-varying: give its {steps} future values "
                f"through new_data (pm.Data of this model: {names}; a time-varying input "
                "given as an array has no future values: build it from pm.Data)"
            )
        # Every time-indexed pm.Data feeding it needs future values, not just one of them.
        T = target.data.shape[-1 if op.univariate else -2]
        missing = sorted(
            v.name
            for v in ancestors([params[i]])
            if v.name in shared
            and v not in replace
            and np.ndim(v.get_value()) >= 1
            and np.shape(v.get_value())[0] == T
        )
        if missing:
            raise ValueError(
                f"new_data must give {steps} future values for every pm.Data that the "
                f"time-varying {name} uses: missing {missing}"
            )
    return graph_replace(params, replace, strict=False) if replace else params


def _time_varying_inputs(target, params):
    """``(index, label)`` of the parameters that vary over time (their future values needed).

    The declared time-varying matrices, and for a non-Gaussian family an offset or a
    family parameter (trials, dispersion) with more than one value along time.
    """
    op = target.op
    out = [(i, name) for i, name in enumerate(_NAMES) if name in op.time_varying]
    if isinstance(op, FamilyDLMRV):
        labels = {5: "offset", 6: f"parameter of the {op.family_name} family"}
        for i, label in labels.items():
            if params[i].type.shape[-1] == 1:
                continue
            if params[i].type.ndim > 1:
                raise NotImplementedError(
                    f"forecast of {target.name!r}: a {label} that varies over time and over "
                    "series; forecast takes future values of one series' offset or trials"
                )
            out.append((i, label))
    return out
