r"""Forecasts: future states and observations for every posterior draw.

For each draw of the static parameters :math:`\psi`, :math:`\theta_T \sim N(m_T, C_T)` is drawn
from the filter's last moments and the model is simulated forward,
:math:`\theta_{T+h} = G_{T+h}\theta_{T+h-1} + w_{T+h}`, :math:`y_{T+h} = F_{T+h}\theta_{T+h} +
v_{T+h}`, :math:`h = 1..H`: draws from the posterior predictive distribution
:math:`p(y_{T+1:T+H} | y_{1:T})` with the parameters' uncertainty included.

References
----------
West & Harrison (1997), §4.4; Petris, Petrone & Campagnoli (2009), §2.8 (``dlmForecast``).
"""

import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors

from pymc_dlm.kalman.diffuse import psd_factor
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.statespace import diffuse_matrix
from pymc_dlm.postprocess.fused_forecast import fused_forecast_draws, fused_forecast_function
from pymc_dlm.postprocess.posterior import (
    check_run_options,
    compile_over_draws,
    dlm_targets,
    evaluate_over_draws,
    freeze_shared,
    model_of,
    posterior_dataset,
    sample_shape,
    stack_draws,
    with_group,
)

__all__ = ["forecast", "future_coords"]

_NAMES = ("F", "G", "W", "obs")


def future_coords(coord, steps):
    """Continue a time coordinate by ``steps`` values.

    A DatetimeIndex continues with its (inferred) frequency; integers and floats continue
    with their last spacing (1 for a single value).
    """
    index = pd.Index(np.asarray(coord))
    if isinstance(index, pd.DatetimeIndex):
        freq = index.freq
        if freq is None and len(index) >= 3:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pandas 3 announces an API change here
                inferred = pd.infer_freq(index)
            freq = None if inferred is None else pd.tseries.frequencies.to_offset(inferred)
        if freq is None:
            raise ValueError(
                "cannot continue the datetime coordinate: it has no regular frequency"
            )
        return pd.date_range(index[-1], periods=steps + 1, freq=freq)[1:]
    if np.issubdtype(index.dtype, np.number):
        step = index[-1] - index[-2] if len(index) >= 2 else 1
        return np.asarray(index[-1] + step * np.arange(1, steps + 1))
    raise ValueError(f"cannot continue a time coordinate of dtype {index.dtype}")


def _future_params(model, target, new_data, steps):
    """The target's matrices with pm.Data replaced by their future values."""
    params = target.rv.owner.inputs[:6]
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
    for i, name in enumerate(_NAMES):
        if name in op.time_varying:
            used = {v for v in ancestors([params[i]]) if v in replace}
            if not used:
                names = sorted(k for k in shared)
                raise ValueError(
                    f"the model's {name} is time-varying: give its {steps} future values "
                    f"through new_data (pm.Data of this model: {names})"
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


def _forecast_graph(target, future, steps):
    op = target.op
    params = target.rv.owner.inputs[:6]

    def draw(values, rng_in):
        repl = dict(zip(target.inputs, values))
        now = graph_replace(params, repl, strict=False) if repl else params
        later = graph_replace(future, repl, strict=False) if repl else future
        now, later = freeze_shared(now), freeze_shared(later)
        system = SystemMatrices(
            *now, op.time_varying, op.obs_diag, diffuse_matrix(getattr(op, "diffuse", None))
        )
        y = pt.as_tensor_variable(target.data)
        y = y[..., None] if op.univariate else y
        res = filter_scan(system, y, return_all=True)
        last_m = res.filtered_mean[..., -1, :]
        if res.filtered_cov is None:
            last_L = mT(res.filtered_factor[..., -1, :, :])
        else:  # diffuse filter: factor the last covariance only (one eigh, not T)
            last_L = mT(psd_factor(res.filtered_cov[..., -1, :, :]))
        ahead = SystemMatrices(*later[:4], last_m, last_L, op.time_varying, op.obs_diag)
        batch = tuple(last_m.shape[i] for i in range(last_m.ndim - 1))
        next_rng, y_new, theta = simulate_scan(ahead, steps, batch, rng_in)
        if op.univariate:
            y_new = y_new[..., 0]
        return [y_new, theta], next_rng

    return compile_over_draws(target, draw, 2)


def forecast(
    idata,
    model=None,
    *,
    steps,
    new_data=None,
    random_seed=None,
    var_names=None,
    progressbar=True,
    chunk_size=250,
):
    r"""Draw future observations and states, ``steps`` steps past the end of the data.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` (a ``posterior`` group). Not modified.
    model : pm.Model, optional
        The model (default: the one in context).
    steps : int
        Forecast horizon H.
    new_data : dict, optional
        Future values of ``pm.Data`` containers, keyed by their names, each with ``steps`` rows:
        required for time-varying matrices such as a :class:`~pymc_dlm.Regression`'s X.
    random_seed : int, optional
        Seed for reproducible draws.
    var_names : str or list of str, optional
        DLM variables to forecast (default: all observed DLM variables).
    progressbar : bool
        Show progress over chunks of draws.
    chunk_size : int
        Number of draws per call of the compiled function.

    Returns
    -------
    xarray.DataTree
        The input's groups plus ``predictions`` with ``<name>`` (future observations) and
        ``<name>_forecast_state`` (dims ``(chain, draw, *batch, <time dim>, <name>_state)``);
        the time coordinate continues the data's.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    check_run_options(random_seed, chunk_size)
    model = model_of(model)
    post = posterior_dataset(idata)
    targets = dlm_targets(model, idata, var_names)
    rng = np.random.default_rng(random_seed)
    n_chain, n_draw = sample_shape(post)
    S = n_chain * n_draw
    # Checked for every target before anything is compiled.
    draws = {target.name: stack_draws(post, target) for target in targets}
    out_vars = {}
    for target in targets:
        future = _future_params(model, target, new_data, steps)
        # The numba kernel where the model allows it (diagonal V, float64), else the scans.
        fast = fused_forecast_function(target, future, int(steps))
        if fast is not None:
            y_f, th_f = fused_forecast_draws(
                target, fast, draws[target.name], int(steps), S, rng, chunk_size, progressbar
            )
            out_vars.update(_to_xarray(idata, target, y_f, th_f, n_chain, n_draw, int(steps)))
            continue
        compiled = _forecast_graph(target, future, int(steps))
        y_f, th_f = evaluate_over_draws(
            compiled,
            draws[target.name],
            S,
            rng,
            chunk_size,
            progressbar,
            f"forecast: {target.name}",
        )
        out_vars.update(_to_xarray(idata, target, y_f, th_f, n_chain, n_draw, int(steps)))
    return with_group(idata, idata.copy(), "predictions", out_vars)


def _time_coord(idata, target, time_dim):
    if time_dim in target.coords:
        return target.coords[time_dim]
    for group in ("observed_data", "constant_data", "posterior"):
        if group in idata.children and time_dim in idata[group].coords:
            return idata[group].coords[time_dim].values
    T = target.data.shape[-1 if target.op.univariate else -2]
    return np.arange(T)


def _to_xarray(idata, target, y_f, th_f, n_chain, n_draw, steps):
    op, name = target.op, target.name
    time_axis = -1 if op.univariate else -2
    time_dim = target.dims[time_axis]
    batch_dims = tuple(target.dims[: len(target.dims) + time_axis])
    batch_shape = target.data.shape[: target.data.ndim + time_axis]
    coords = {time_dim: future_coords(_time_coord(idata, target, time_dim), steps)}
    for d in batch_dims:
        if "observed_data" in idata.children and d in idata["observed_data"].coords:
            coords[d] = idata["observed_data"].coords[d].values
    lead = (n_chain, n_draw)
    y_tail = (steps,) if op.univariate else (steps, y_f.shape[-1])
    y_f = np.broadcast_to(y_f, (y_f.shape[0], *batch_shape, *y_tail)).reshape(
        *lead, *batch_shape, *y_tail
    )
    n = th_f.shape[-1]
    th_f = np.broadcast_to(th_f, (th_f.shape[0], *batch_shape, steps, n)).reshape(
        *lead, *batch_shape, steps, n
    )
    y_dims = ("chain", "draw", *batch_dims, time_dim) + (
        () if op.univariate else (target.dims[-1],)
    )
    state_dim = f"{name}_state"
    th_dims = ("chain", "draw", *batch_dims, time_dim, state_dim)
    ycoords = {k: v for k, v in coords.items() if k in y_dims}
    if (
        not op.univariate
        and "observed_data" in idata.children
        and target.dims[-1] in idata["observed_data"].coords
    ):
        ycoords[target.dims[-1]] = idata["observed_data"].coords[target.dims[-1]].values
    return {
        name: xr.DataArray(y_f, dims=y_dims, coords=ycoords),
        f"{name}_forecast_state": xr.DataArray(
            th_f, dims=th_dims, coords={**coords, state_dim: list(op.state_labels)}
        ),
    }
