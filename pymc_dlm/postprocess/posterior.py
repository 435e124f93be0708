"""Shared plumbing: find DLM variables, evaluate their matrices at every posterior draw."""

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import pymc as pm
import pytensor
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.tensor.type import TensorType

from pymc_dlm.distribution import DLMRV
from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.distribution_family import FamilyDLMRV

#: Shape look-ups of pm.Data: the Python linker, nothing to compile.
_SHAPE_MODE = pytensor.compile.mode.Mode(linker="py", optimizer="fast_compile")

__all__ = [
    "DLMTarget",
    "Run",
    "start_run",
    "check_run_options",
    "dlm_targets",
    "posterior_dataset",
    "stack_draws",
    "system_at",
]


def posterior_dataset(idata, name="posterior"):
    """The ``posterior`` group of a DataTree as a Dataset, with a clear error if missing."""
    if not isinstance(idata, xr.DataTree):
        raise TypeError(
            f"idata must be an xarray.DataTree (pm.sample's result), got {type(idata).__name__}"
        )
    if name not in idata.children:
        raise ValueError(
            f"idata must have a '{name}' group (run pm.sample first), "
            f"got groups {sorted(idata.children)}"
        )
    ds = idata[name].to_dataset()
    missing = [d for d in ("chain", "draw") if d not in ds.dims]
    if missing:
        raise ValueError(
            f"idata['{name}'] must have dimensions ('chain', 'draw') like pm.sample's result, "
            f"got dimensions {tuple(ds.dims)}"
        )
    return ds


def check_run_options(random_seed, chunk_size):
    """Validate the options shared by :func:`sample_states` and :func:`forecast`."""
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)):
        raise TypeError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    kinds = (np.random.Generator, np.random.SeedSequence, np.integer, int)
    ok = random_seed is None or isinstance(random_seed, kinds)
    if not ok or isinstance(random_seed, bool) or (ok and _negative(random_seed)):
        raise TypeError(
            "random_seed must be None, a non-negative integer or a numpy Generator, "
            f"got {random_seed!r}"
        )


class Run(NamedTuple):
    """What every post-processing function starts from (:func:`start_run`)."""

    model: object
    post: object  # the posterior Dataset (thinned when asked)
    targets: list  # DLMTarget per selected DLM variable
    draws: dict  # target name -> its variables' draws, stacked on a leading axis
    rng: object  # numpy Generator
    n_chain: int
    n_draw: int


def start_run(
    idata,
    model,
    var_names,
    random_seed,
    chunk_size,
    *,
    thin=1,
    flags=None,
    allow_discounted=False,
    allow_family=False,
):
    """Validate the shared options and read the posterior draws of the selected DLMs.

    Everything is checked before anything is compiled. ``flags`` maps the names of boolean
    options to their values (checked to be booleans); ``thin`` keeps every k-th draw.
    """
    check_run_options(random_seed, chunk_size)
    for name, value in (flags or {}).items():
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    if isinstance(thin, bool) or not isinstance(thin, (int, np.integer)):
        raise TypeError(f"thin must be a positive integer, got {thin!r}")
    if thin < 1:
        raise ValueError(f"thin must be a positive integer, got {thin}")
    model = model_of(model)
    post = posterior_dataset(idata)
    if thin > 1:
        post = post.isel(draw=slice(None, None, int(thin)))
    targets = dlm_targets(
        model, idata, var_names, allow_discounted=allow_discounted, allow_family=allow_family
    )
    draws = {target.name: stack_draws(post, target) for target in targets}
    n_chain, n_draw = sample_shape(post)
    rng = np.random.default_rng(random_seed)
    return Run(model, post, targets, draws, rng, n_chain, n_draw)


def _negative(seed):
    return isinstance(seed, (int, np.integer)) and seed < 0


@dataclass
class DLMTarget:
    """A DLM variable of a model, with what post-processing needs to know about it."""

    name: str
    rv: object
    op: DLMRV
    data: object  # the observed value: numpy (..., T[, p]), NaN for missing
    inputs: list  # free random variables its matrices depend on
    dims: tuple  # dims of the observed variable (batch..., time[, series])
    coords: dict  # coordinate values of those dims, where known


def refuse_discounted(model, var_names=None):
    """A clear error for the discounted DLMs that post-processing does not handle yet."""
    names = {var_names} if isinstance(var_names, str) else var_names
    names = None if names is None else set(names)
    discounted = [
        rv.name
        for rv in model.observed_RVs
        if rv.owner is not None
        and isinstance(rv.owner.op, DiscountedDLMRV)
        and (names is None or rv.name in names)
    ]
    if discounted:
        raise NotImplementedError(
            f"{discounted}: in-sample forecasts (forecast(origin=...)) do not handle "
            "discounted components or a learned observation variance yet; the log-likelihood "
            "(NUTS), sample_states, forecast past the end, posterior_predictive, "
            "posterior_residuals, lfo, kalman_filter and kalman_smoother do"
        )


def dlm_parameters(rv):
    """The model's parameters of a DLM variable: six, ten discounted, seven with a family.

    With a non-Gaussian family: F, G, W_sqrt, m0, C0_sqrt, offset, the family's parameter.
    """
    if isinstance(rv.owner.op, DiscountedDLMRV):
        return list(rv.owner.inputs[:10])
    if isinstance(rv.owner.op, FamilyDLMRV):
        return list(rv.owner.inputs[:7])
    return DLMRV.parameters(rv)


def dlm_targets(model, idata, var_names, *, allow_discounted=False, allow_family=False):
    """The DLM variables of ``model`` selected by ``var_names`` (default: all observed ones).

    Discounted DLMs are refused unless the caller handles them (``allow_discounted``), and
    so are DLMs with a non-Gaussian family (``allow_family``).
    """
    if var_names is not None and not isinstance(var_names, str):
        if not isinstance(var_names, (list, tuple)) or not all(
            isinstance(v, str) for v in var_names
        ):
            raise TypeError(
                f"var_names must be a variable name or a list of names, got {var_names!r}"
            )
    found = {
        rv.name: rv
        for rv in model.observed_RVs
        if rv.owner is not None and isinstance(rv.owner.op, (DLMRV, DiscountedDLMRV, FamilyDLMRV))
    }
    if not allow_discounted:
        refuse_discounted(model, var_names)
    if var_names is None:
        names = list(found)
        if not names:
            observed = sorted(rv.name for rv in model.observed_RVs)
            raise ValueError(
                "model must have an observed pymc_dlm.DLM variable, got none "
                f"(observed variables: {observed})"
            )
    else:
        names = [var_names] if isinstance(var_names, str) else list(var_names)
        for nm in names:
            if nm not in found:
                raise ValueError(
                    "var_names must name observed DLM variables of the model "
                    f"{sorted(found)}, got {nm!r}"
                )
    families = [nm for nm in names if isinstance(found[nm].owner.op, FamilyDLMRV)]
    if families and not allow_family:
        raise NotImplementedError(
            f"{families}: DLMs with a non-Gaussian family are not handled here yet; "
            "sample_states, forecast, posterior_predictive (kind='smoothed'), "
            "importance_correct, kalman_filter and kalman_smoother handle them"
        )
    post = posterior_dataset(idata)
    targets = []
    for nm in names:
        rv = found[nm]
        value = model.rvs_to_values[rv]
        if isinstance(value, Constant):
            data = np.asarray(value.data)
        elif isinstance(value, SharedVariable):
            data = np.asarray(value.get_value())
        else:
            data = np.asarray(value.eval())
        params = dlm_parameters(rv)
        anc = set(ancestors(params))
        inputs = [v for v in model.free_RVs if v in anc]
        missing = [v.name for v in model.free_RVs if v in anc and v.name not in post]
        if missing:
            raise ValueError(
                f"idata['posterior'] must hold {missing} (free variables of {nm!r}), "
                f"got variables {sorted(post.data_vars)}"
            )
        dims = model.named_vars_to_dims.get(nm)
        if dims is None:
            dims = tuple(f"{nm}_dim_{i}" for i in range(data.ndim))
        coords = _known_coords(model, idata, dims)
        target = DLMTarget(nm, rv, rv.owner.op, data, inputs, tuple(dims), coords)
        _check_time_lengths(target)
        _check_finite_data(target)
        targets.append(target)
    return targets


_TIME_AXIS = {"F": -3, "G": -3, "W": -3}


def _check_time_lengths(target):
    """Time-varying matrices must still cover the observed period (not ``pm.set_data``'d)."""
    op = target.op
    T = target.data.shape[-1 if op.univariate else -2]
    params = dict(zip(("F", "G", "W", "obs"), target.rv.owner.inputs[:4]))
    for name in sorted(op.time_varying):
        axis = _TIME_AXIS.get(name, -2 if op.obs_diag else -3)
        shape = params[name].shape[axis]
        used = [v.name for v in ancestors([shape]) if isinstance(v, SharedVariable) and v.name]
        if not used:
            continue
        length = int(pytensor.function([], shape, mode=_SHAPE_MODE)())
        if length != T:
            raise ValueError(
                f"the time-varying {name} of {target.name!r} has {length} time steps but the data "
                f"have {T}: pm.Data {sorted(used)} no longer hold the observed period (after "
                "pm.set_data with future values?). Set the observed values back and give the "
                "future ones to pymc_dlm.forecast(..., new_data={name: values})"
            )


def _check_finite_data(target):
    """``pm.Data`` in the model's matrices must be finite now (``pm.set_data`` accepts NaN)."""
    params = dict(zip(("F", "G", "W", "obs"), target.rv.owner.inputs[:4]))
    for name, param in params.items():
        for v in ancestors([param]):
            if not (isinstance(v, SharedVariable) and v.name and isinstance(v.type, TensorType)):
                continue
            value = v.get_value(borrow=True)
            bad = np.ma.getmaskarray(value) | ~np.isfinite(np.ma.getdata(value))
            if np.any(bad):
                first = np.argwhere(bad)[0].tolist()
                raise ValueError(
                    f"pm.Data {v.name!r}, used in {name} of {target.name!r}, holds "
                    f"{int(bad.sum())} missing or non-finite value(s) (the first at index "
                    f"{first}): regressors and other model inputs cannot be missing, only "
                    "the observations can. Fill or drop those rows and pm.set_data the "
                    "values again (pm.set_data accepts NaN without a word; pm.Data refuses "
                    "it when the container is created)"
                )


def _known_coords(model, idata, dims):
    """Coordinates of ``dims`` from the model, else from the observed_data group."""
    coords = {}
    observed = idata["observed_data"].coords if "observed_data" in idata.children else {}
    for d in dims:
        values = model.coords.get(d)
        if values is not None:
            coords[d] = np.asarray(values)
        elif d in observed:
            coords[d] = observed[d].values
    return coords


def params_at(target, values):
    """The target's parameters with its free variables replaced by ``values``."""
    params = dlm_parameters(target.rv)
    return graph_replace(params, dict(zip(target.inputs, values)), strict=False)


def system_at(target, values):
    """The target's system matrices with its free variables replaced by ``values``."""
    return target.op.system(params_at(target, values)[: 7 if _discounted(target) else 6])


def _discounted(target):
    return isinstance(target.op, DiscountedDLMRV)


def stack_draws(post, target):
    """Posterior values of the target's inputs, draws stacked on a leading axis."""
    arrays = []
    for v in target.inputs:
        da = post[v.name]
        if da.dims[:2] != ("chain", "draw"):
            raise ValueError(
                f"idata['posterior'][{v.name!r}] must have dimensions ('chain', 'draw', ...), "
                f"got {da.dims}"
            )
        values = np.asarray(da.values).reshape(-1, *da.shape[2:])
        static = v.type.shape
        fits = values.ndim - 1 == len(static) and all(
            s is None or s == k for s, k in zip(static, values.shape[1:])
        )
        if not fits:
            expected = tuple("?" if s is None else s for s in static)
            raise ValueError(
                f"idata['posterior'][{v.name!r}] must have shape (chain, draw, *{expected}) "
                f"like the model variable, got {da.shape}"
            )
        if not np.all(np.isfinite(values)):
            raise ValueError(
                f"idata['posterior'][{v.name!r}] must hold finite draws, got non-finite values"
            )
        arrays.append(values)
    return arrays


def sample_shape(post):
    """(n_chain, n_draw) of a posterior Dataset."""
    return post.sizes["chain"], post.sizes["draw"]


def model_of(model):
    """The model given, or the one in context."""
    if model is not None and not isinstance(model, pm.Model):
        raise TypeError(f"model must be a pymc.Model, got {type(model).__name__}")
    return pm.modelcontext(model)


def with_group(idata, out, group, variables):
    """Add ``variables`` to ``group`` of the new tree ``out`` (creating the group if needed)."""
    if group in idata.children:
        out[group] = idata[group].to_dataset().assign(variables)
    else:
        out[group] = xr.Dataset(variables)
    return out
