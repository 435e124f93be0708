"""Validation of user input: clear errors that name the argument, raised at build time."""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.traversal import graph_inputs
from pytensor.tensor.type import TensorType

__all__ = [
    "all_valid",
    "as_constraints",
    "as_float_tensor",
    "check_psd",
    "check_sigma",
    "constraint",
    "finite_where_invalid",
    "fixed_value",
    "fixed_values",
    "known_value",
    "state_labels",
    "static_dim",
]


#: One-shot evaluation of constant expressions: Python backend, no rewrites.
EVAL_MODE = Mode(linker="py", optimizer=None)


def known_value(x):
    """Return the numeric value of ``x`` when it is fixed now, else ``None``.

    Constants and numpy input are fixed; shared variables (``pm.Data``) report their current
    value; any other symbolic expression is unknown until sampling.
    """
    if isinstance(x, Constant):
        return np.asarray(x.data)
    if isinstance(x, SharedVariable):
        return np.asarray(x.get_value(borrow=True))
    if isinstance(x, Variable):
        return None
    return np.asarray(x)


def fixed_value(x):
    """Like :func:`known_value`, but also evaluates expressions of constants only.

    Evaluated with the Python backend (no compilation); ``None`` when anything is symbolic.
    """
    value = known_value(x)
    if value is not None or not isinstance(x, Variable):
        return value
    if not _fixed_graph(x):
        return None
    return np.asarray(pytensor.function([], x, mode="FAST_COMPILE")())


def fixed_values(tensors):
    """The values of expressions of constants and shared data, float64, in one evaluation.

    The caller has checked that nothing in ``tensors`` is symbolic (numbers, arrays or
    tensors whose graphs end in constants and shared data); shared data at their current
    values. One graph for all, run on the Python backend without rewrites.
    """
    outputs = [pt.as_tensor(x) for x in tensors]
    values = pytensor.function([], outputs, mode=EVAL_MODE)()
    return [np.asarray(v, dtype="float64") for v in values]


def _fixed_graph(x):
    """Whether ``x`` depends on constants and shared data only.

    A random variable (a PyMC prior) has only constant and shared roots too, among them its
    random generator: a graph with a generator among its roots is random, never fixed.
    """
    for v in graph_inputs([x]):
        if v.owner is not None:
            continue
        if isinstance(v, SharedVariable) and not isinstance(v.type, TensorType):
            return False  # a random generator
        if not isinstance(v, (Constant, SharedVariable)):
            return False
    return True


def as_float_tensor(x, name, *, min_ndim=0, max_ndim=None):
    """Convert ``x`` to a float64 tensor, rejecting non-numeric or ill-ranked input.

    Parameters
    ----------
    x : float, array_like or TensorVariable
        The user's value.
    name : str
        The argument's name, used in error messages.
    min_ndim, max_ndim : int
        Allowed range of the number of dimensions.
    """
    if isinstance(x, str) or x is None:
        raise TypeError(f"{name} must be a number, an array or a tensor, got {x!r}")
    if isinstance(x, Variable):
        if not hasattr(x.type, "dtype"):
            raise TypeError(f"{name} must be a tensor, got {type(x).__name__}")
        if x.type.dtype.startswith("complex"):
            raise TypeError(f"{name} must be real, got dtype {x.type.dtype}")
        t = x if x.type.dtype == "float64" else pt.cast(x, "float64")
    else:
        if np.iscomplexobj(x):
            raise TypeError(f"{name} must be real, got complex values")
        try:
            arr = np.asarray(x, dtype="float64")
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must be numeric, got {type(x).__name__}") from err
        t = pt.as_tensor_variable(arr)
    if t.ndim < min_ndim or (max_ndim is not None and t.ndim > max_ndim):
        allowed = f"{min_ndim}" if max_ndim == min_ndim else f"{min_ndim} to {max_ndim}"
        raise ValueError(f"{name} must have {allowed} dimension(s), got shape {_shape(t)}")
    return t


def _shape(t):
    value = known_value(t)
    if value is not None:
        return tuple(value.shape)
    return tuple("?" if s is None else s for s in t.type.shape)


def static_dim(t, axis):
    """Length of ``t`` along ``axis`` when it is fixed now, else ``None``.

    Known from the static type, from a constant or shared value, or (for an expression of
    constants and shared variables only, such as a ``pm.Data`` reshaped into a time-varying
    ``F``) by evaluating the length with the Python backend.
    """
    s = t.type.shape[axis]
    if s is not None:
        return s
    value = known_value(t)
    if value is not None:
        return value.shape[axis]
    length = t.shape[axis]
    # A random variable with ``dims`` (no ``shape=``): its length comes from the model's
    # coordinates (shared variables), evaluated now; nothing else free may be involved.
    if not all(isinstance(v, (Constant, SharedVariable)) for v in graph_inputs([length])):
        return None
    return int(pytensor.function([], length, mode="FAST_COMPILE")())


def check_sigma(x, name):
    """Standard deviations: a tensor; fixed values must be finite and non-negative."""
    t = as_float_tensor(x, name)
    value = known_value(t)
    if value is not None and (not np.all(np.isfinite(value)) or np.any(value < 0)):
        raise ValueError(
            f"{name} must be finite and non-negative standard deviation(s), got {value}"
        )
    return t


def constraint(t, *, low=None, high=None, core_ndim=0):
    """The validity condition ``low <= t <= high`` of a symbolic parameter, or ``None``.

    ``None`` when ``t`` is built from constants only (fixed values are checked when the model
    is built). Otherwise a boolean tensor over the batch axes of ``t``: the condition holds
    for every entry of the last ``core_ndim`` axes. NaN fails it.
    """
    if all(isinstance(v, Constant) for v in graph_inputs([t])):
        return None
    ok = pt.as_tensor_variable(np.True_)
    if low is not None:
        ok = ok & pt.ge(t, low)
    if high is not None:
        ok = ok & pt.le(t, high)
    if core_ndim:
        ok = pt.all(ok, axis=tuple(range(-core_ndim, 0)))
    return ok


def check_psd(value, name, *, tol=1e-10):
    """Fixed covariance matrices (..., n, n) must be symmetric positive semi-definite."""
    if value is None:
        return
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{name} must be finite, got non-finite entries")
    scale = max(float(np.max(np.abs(value), initial=0.0)), 1.0)
    if not np.allclose(value, np.swapaxes(value, -1, -2), rtol=1e-10, atol=1e-12 * scale):
        raise ValueError(f"{name} must be a symmetric matrix")
    low = np.linalg.eigvalsh(value).min(initial=0.0)
    if low < -tol * scale:
        raise ValueError(
            f"{name} must be positive semi-definite, its smallest eigenvalue is {low:.3g}"
        )


def all_valid(conditions):
    """The conjunction of boolean conditions over (broadcast) batch axes; True if none."""
    valid = pt.as_tensor_variable(np.True_)
    for c in conditions:
        if c is not None:
            valid = valid & c
    return valid


def as_constraints(conditions):
    """A tuple of boolean tensors from the ``constraints`` argument."""
    if conditions is None:
        return ()
    if isinstance(conditions, (str, bytes)) or not hasattr(conditions, "__iter__"):
        raise TypeError(
            f"constraints must be a sequence of boolean tensors, got {type(conditions).__name__}"
        )
    out = []
    for c in conditions:
        t = pt.as_tensor_variable(c)
        if t.type.dtype != "bool":
            raise TypeError(f"constraints must hold boolean tensors, got dtype {t.type.dtype}")
        out.append(t)
    return tuple(out)


def finite_where_invalid(valid, params, cores):
    """The filter's inputs, with non-finite entries zeroed in invalid batch members only.

    There the log-likelihood is ``-inf`` whatever the filter returns; finite inputs keep the
    filter's derivative (multiplied by zero) finite, so the gradient is zero, not NaN. Inputs
    computed from constants only are left alone: no derivative flows into them, and kept
    constant they let the fused kernels specialise on them (a constant G). ``cores``: the
    number of core axes of each parameter (:func:`pymc_dlm.model.notation.core_ndims`).
    """
    if isinstance(valid, pt.TensorConstant) and bool(valid.data):
        return params
    out = []
    for x, core in zip(params, cores, strict=True):
        if all(isinstance(v, Constant) for v in graph_inputs([x])):
            out.append(x)
            continue
        ok = pt.shape_padright(valid, core)
        out.append(pt.switch(ok, x, pt.switch(pt.isfinite(x), x, 0.0)))
    return out


def state_labels(labels, n):
    """The ``n`` state labels as strings (``state_1``, ... by default), checked unique."""
    if labels is None:
        labels = tuple(f"state_{i + 1}" for i in range(n))
    labels = tuple(str(x) for x in labels)
    if len(labels) != n:
        raise ValueError(f"state_labels must have {n} entries, got {len(labels)}")
    if len(set(labels)) != n:
        raise ValueError(f"state_labels must be unique, got {labels}")
    return labels
