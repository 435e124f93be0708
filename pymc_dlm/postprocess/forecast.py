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

import numpy as np
import pytensor.tensor as pt
import xarray as xr
from pytensor.graph.replace import graph_replace

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
from pymc_dlm.postprocess.discount_kernel_forecast import (
    kernel_forecast_draws,
    kernel_forecast_function,
)
from pymc_dlm.postprocess.family_forecast import family_forecast_draws, family_insample_draws
from pymc_dlm.postprocess.family_posterior import check_family
from pymc_dlm.postprocess.fused_forecast import fused_forecast_draws, fused_forecast_function
from pymc_dlm.postprocess.future_inputs import future_coords, future_params, given_coords
from pymc_dlm.postprocess.insample import check_origin, insample_draws
from pymc_dlm.postprocess.over_draws import compile_over_draws, evaluate_over_draws, freeze_shared
from pymc_dlm.postprocess.posterior import start_run, with_group

__all__ = ["forecast", "future_coords"]


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
            given = given_coords(coords, time_dim, steps)
            labels[target.name] = given if given is not None else future_coords(past, steps)
    out_vars = {}
    for target in targets:
        run = (S, rng, chunk_size, progressbar)
        if isinstance(target.op, FamilyDLMRV) and origin is not None:
            y_f, th_f = family_insample_draws(
                target, draws[target.name], S, rng, n_importance, origin, steps, progressbar
            )
        elif isinstance(target.op, FamilyDLMRV):
            future = future_params(model, target, new_data, steps)
            y_f, th_f = family_forecast_draws(
                target, draws[target.name], S, rng, n_importance, steps, future, progressbar
            )
        elif origin is not None and isinstance(target.op, DiscountedDLMRV):
            y_f, th_f = _discounted_draws(target, None, draws[target.name], steps, origin, run)
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
    """Draws past the end of the data: the numba kernel where it applies, else the scans."""
    S, rng, chunk_size, progressbar = run
    future = future_params(model, target, new_data, steps)
    label = f"forecast: {target.name}"
    if isinstance(target.op, DiscountedDLMRV):
        return _discounted_draws(target, future, draws, steps, None, run)
    fast = fused_forecast_function(target, future, steps)
    if fast is None:
        compiled = _forecast_graph(target, future, steps)
        return evaluate_over_draws(compiled, draws, S, rng, chunk_size, progressbar, label)
    return fused_forecast_draws(target, fast, draws, steps, S, rng, chunk_size, progressbar)


def _discounted_draws(target, future, draws, steps, origin, run):
    """A discounted target's forecast: the kernels, or the scans (a full V, not float64)."""
    compiled = kernel_forecast_function(target, future, steps)
    if compiled is not None:
        return kernel_forecast_draws(target, compiled, draws, steps, origin, run)
    S, rng, chunk_size, progressbar = run
    compiled = discounted_forecast_graph(target, future, steps, origin=origin)
    label = f"forecast: {target.name}"
    return evaluate_over_draws(compiled, draws, S, rng, chunk_size, progressbar, label)


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
