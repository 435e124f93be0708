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

import functools
import warnings
from collections.abc import Mapping

import numpy as np
import pandas as pd
import pytensor.tensor as pt
import xarray as xr
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors

from pymc_dlm.distribution import DLMRV
from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.distribution_family import FamilyDLMRV
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.kalman.univariate import psd_factor
from pymc_dlm.postprocess.discount_forecast import (
    discounted_forecast_graph,
)
from pymc_dlm.postprocess.family_forecast import family_forecast_draws, family_insample_draws
from pymc_dlm.postprocess.family_posterior import check_family
from pymc_dlm.postprocess.fused_forecast import fused_forecast_draws, fused_forecast_function
from pymc_dlm.postprocess.insample import check_origin, insample_draws
from pymc_dlm.postprocess.posterior import (
    compile_over_draws,
    dlm_parameters,
    evaluate_over_draws,
    freeze_shared,
    redraw,
    start_run,
    with_group,
)

__all__ = ["forecast", "future_coords"]

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


def _given_coords(coords, time_dim, steps):
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


def _future_params(model, target, new_data, steps):
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


def _forecast_graph(target, future, steps):
    op = target.op
    params = DLMRV.parameters(target.rv)

    def draw(values, rng_in):
        repl = dict(zip(target.inputs, values))
        now = graph_replace(params, repl, strict=False) if repl else params
        later = graph_replace(future, repl, strict=False) if repl else future
        now, later = freeze_shared(now), freeze_shared(later)
        system = op.system(now)
        y = pt.as_tensor_variable(target.data)
        y = y[..., None] if op.univariate else y
        res = filter_scan(system, y, return_all=True)
        last_m = res.filtered_mean[..., -1, :]
        if res.filtered_cov is None:
            last_L = mT(res.filtered_factor[..., -1, :, :])
        else:  # diffuse filter: factor the last covariance only (one eigh, not T)
            last_L = mT(psd_factor(res.filtered_cov[..., -1, :, :]))
        ahead = op.system(later)._replace(m0=last_m, C0_sqrt=last_L, diffuse=None)
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
    origin=None,
    coords=None,
    random_seed=None,
    var_names=None,
    progressbar=True,
    chunk_size=250,
    extend_inferencedata=False,
    n_importance=100,
    family=None,
):
    r"""Draw future observations and states, ``steps`` steps past the end of the data.

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` (a ``posterior`` group). Not modified unless
        ``extend_inferencedata``.
    model : pm.Model, optional
        The model (default: the one in context).
    steps : int
        Forecast horizon H.
    new_data : dict, optional
        Future values of ``pm.Data`` containers, keyed by their names, each with ``steps`` rows:
        required for time-varying matrices such as a :class:`~pymc_dlm.Regression`'s X. The
        model's own ``pm.Data`` must still hold the values of the observed period (a
        ``pm.set_data`` with future values is refused, with a message).
    origin : int, optional
        Forecast from inside the sample (backtesting): use the first ``origin`` observations
        only and forecast the ``steps`` times after them, with the in-sample matrices of those
        times (``new_data`` is not used). The static parameters are the posterior's, fitted on
        the whole series (as statsmodels' ``get_prediction(dynamic=...)``); see
        :mod:`pymc_dlm.postprocess.insample`.
    coords : dict, optional
        ``{<time dim>: labels}``, the ``steps`` future time labels. By default a
        DatetimeIndex continues with its frequency, a PeriodIndex with its frequency, and
        integer or float labels with their last spacing; other labels (strings) need
        ``coords``.
    random_seed : int, optional
        Seed for reproducible draws.
    var_names : str or list of str, optional
        DLM variables to forecast (default: all observed DLM variables).
    progressbar : bool
        Show progress over chunks of draws.
    chunk_size : int
        Number of draws per call of the compiled function.
    extend_inferencedata : bool
        Add the ``predictions`` group to ``idata`` in place and return it (PyMC's convention),
        instead of returning a new, small tree.
    n_importance : int
        For a DLM with a non-Gaussian ``family``: importance draws per posterior draw for
        the state at the end of the data, or at ``origin`` (:func:`~pymc_dlm.sample_states`);
        the future states follow the state equation and the observations the family
        (:mod:`pymc_dlm.postprocess.family_forecast`). An offset or trials that vary over
        time need their future values like the time-varying matrices: give them as
        ``pm.Data`` and pass the future values in ``new_data``.
    family : str or Family, optional
        The observation family, for a check: it must be the one the DLM variables were
        built with (``DLM(..., family=...)``), which is always the one used.

    Returns
    -------
    xarray.DataTree
        ``predictions`` with ``<name>`` (future observations) and ``<name>_forecast_state``
        (dims ``(chain, draw, *batch, <time dim>, <name>_state)``, with ``chain`` and
        ``draw`` coordinates as in ``posterior``), plus ``observed_data`` (for
        :func:`~pymc_dlm.plot_forecast`); nothing else of ``idata`` is copied.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    run = start_run(
        idata,
        model,
        var_names,
        random_seed,
        chunk_size,
        flags={"extend_inferencedata": extend_inferencedata},
        allow_discounted=True,
        allow_family=True,
    )
    model, post, targets, draws, rng = run.model, run.post, run.targets, run.draws, run.rng
    check_family(targets, family)
    S = run.n_chain * run.n_draw
    steps = int(steps)
    labels = {}
    for target in targets:
        time_axis = -1 if target.op.univariate else -2
        time_dim, T = target.dims[time_axis], target.data.shape[time_axis]
        past = _time_coord(idata, target, time_dim)
        if origin is not None:
            check_origin(origin, steps, T)
            labels[target.name] = np.asarray(past)[origin : origin + steps]
        else:
            given = _given_coords(coords, time_dim, steps)
            labels[target.name] = given if given is not None else future_coords(past, steps)
    out_vars = {}
    for target in targets:
        run = (S, rng, chunk_size, progressbar)
        if isinstance(target.op, FamilyDLMRV) and origin is not None:
            y_f, th_f = family_insample_draws(
                target, draws[target.name], S, rng, n_importance, origin, steps, progressbar
            )
        elif isinstance(target.op, FamilyDLMRV):
            future = _future_params(model, target, new_data, steps)
            y_f, th_f = family_forecast_draws(
                target, draws[target.name], S, rng, n_importance, steps, future, progressbar
            )
        elif origin is not None and isinstance(target.op, DiscountedDLMRV):
            compiled = discounted_forecast_graph(target, None, steps, origin=origin)
            label = f"forecast: {target.name}"
            y_f, th_f = evaluate_over_draws(compiled, draws[target.name], *run[:2], chunk_size,
                                            progressbar, label)  # fmt: skip
        elif origin is not None:
            y_f, th_f = insample_draws(target, draws[target.name], origin, steps, *run)
        else:
            y_f, th_f = _future_draws(model, target, draws[target.name], new_data, steps, run)
        out_vars.update(_to_xarray(idata, target, y_f, th_f, post, labels[target.name]))
    if extend_inferencedata:
        return with_group(idata, idata, "predictions", out_vars)
    out = xr.DataTree()
    out["predictions"] = xr.Dataset(out_vars)
    if "observed_data" in idata.children:
        out["observed_data"] = idata["observed_data"].to_dataset()
    return out


def _future_draws(model, target, draws, new_data, steps, run):
    """Draws past the end of the data: the numba kernel where it applies, else the scans.

    The scans also redraw the draws at which a proper prior is so vague against the noise
    that the kernel's covariance form loses digits (the accuracy guard of the
    log-likelihood).
    """
    S, rng, chunk_size, progressbar = run
    future = _future_params(model, target, new_data, steps)
    label = f"forecast: {target.name}"
    if isinstance(target.op, DiscountedDLMRV):
        compiled = discounted_forecast_graph(target, future, steps)
        return evaluate_over_draws(compiled, draws, S, rng, chunk_size, progressbar, label)
    fast = fused_forecast_function(target, future, steps)
    if fast is None:
        compiled = _forecast_graph(target, future, steps)
        return evaluate_over_draws(compiled, draws, S, rng, chunk_size, progressbar, label)
    *out, lossy = fused_forecast_draws(target, fast, draws, steps, S, rng, chunk_size, progressbar)
    scans = functools.partial(_forecast_graph, target, future, steps)
    return redraw(out, lossy, scans, draws, rng, chunk_size, label)


def _time_coord(idata, target, time_dim):
    if time_dim in target.coords:
        return target.coords[time_dim]
    for group in ("observed_data", "constant_data", "posterior"):
        if group in idata.children and time_dim in idata[group].coords:
            return idata[group].coords[time_dim].values
    T = target.data.shape[-1 if target.op.univariate else -2]
    return np.arange(T)


def _to_xarray(idata, target, y_f, th_f, post, labels):
    op, name = target.op, target.name
    steps = len(labels)
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    time_axis = -1 if op.univariate else -2
    time_dim = target.dims[time_axis]
    batch_dims = tuple(target.dims[: len(target.dims) + time_axis])
    batch_shape = target.data.shape[: target.data.ndim + time_axis]
    coords = {time_dim: labels, "chain": post["chain"].values, "draw": post["draw"].values}
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
