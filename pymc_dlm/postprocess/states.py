r"""State draws after NUTS: filtered states, joint smoothed paths (FFBS) and components.

For every posterior draw of the static parameters, the system matrices are evaluated at that
draw, the Kalman filter is run, and

* a filtered state :math:`\theta_t \sim p(\theta_t | y_{1:t}, \psi)` is drawn for every t;
* one joint path :math:`\theta_{1:T} \sim p(\theta_{1:T} | y_{1:T}, \psi)` is drawn by backward
  sampling;
* each component's contribution :math:`F_{c,t}\theta_{c,t}` is computed from that path.

Draws of :math:`\psi` from the posterior make these draws from the marginal posterior of the
states, with the parameters' uncertainty included. The whole computation is one compiled
function vectorised over draws (a leading batch axis), evaluated in chunks.

References
----------
Carter & Kohn (1994); Frühwirth-Schnatter (1994); Petris, Petrone & Campagnoli (2009), §4.4.
"""

import functools

import numpy as np
import pytensor.tensor as pt
import xarray as xr

from pymc_dlm.distribution_discounted import DiscountedDLMRV
from pymc_dlm.distribution_family import FamilyDLMRV
from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.linalg import matvec
from pymc_dlm.kalman.sampler import backward_sample, filtered_sample
from pymc_dlm.kalman.simulate import standard_normal
from pymc_dlm.postprocess.discount_kernel_draws import kernel_draws, kernel_system
from pymc_dlm.postprocess.discount_kernel_predictive import kernel_terms
from pymc_dlm.postprocess.discount_states import (
    discounted_draws,
    discounted_terms,
)
from pymc_dlm.postprocess.family_posterior import check_family, family_state_draws
from pymc_dlm.postprocess.fused_states import fused_draws, fused_system
from pymc_dlm.postprocess.one_step import improper_steps
from pymc_dlm.postprocess.over_draws import compile_over_draws, evaluate_over_draws
from pymc_dlm.postprocess.posterior import start_run, system_at

__all__ = ["draw_paths", "one_step_terms", "sample_states"]


def _draw_states(target, values, rng):
    """Filter, FFBS and decomposition at one posterior draw (symbolic)."""
    op = target.op
    system = system_at(target, values)
    y = pt.as_tensor_variable(target.data)
    y = y[..., None] if op.univariate else y
    res = filter_scan(system, y, return_all=True)
    shape = res.filtered_mean.shape
    rng, eps_f = standard_normal(rng, shape)
    rng, eps_s = standard_normal(rng, shape)
    filtered = filtered_sample(res, eps_f)
    smoothed = backward_sample(res, system.G, system.W_sqrt, op.time_varying, eps_s)
    F = system.F if "F" in op.time_varying else pt.shape_padaxis(system.F, system.F.ndim - 2)
    parts = [matvec(F[..., a:b], smoothed[..., a:b]) for _, a, b in op.components]
    components = pt.stack(parts, axis=-1)  # (..., T, p, n_comp)
    return [filtered, smoothed, components, res.loglik_t], rng


def draw_paths(target, draws, n_total, rng, chunk_size, progressbar, description):
    """Filtered states, smoothed paths, components and one-step log densities per draw.

    The engine is chosen here, once for every caller: the numba FFBS kernels when the model
    allows them (float64; a full observation covariance is decorrelated in front of them;
    square-root steps where a vague proper prior would make their covariance form lose
    digits), the pytensor scans otherwise. Both routes draw from the same distributions.
    Arrays have a leading draw axis, then the target's batch axes.
    """
    run = (n_total, rng, chunk_size, progressbar, description)
    if isinstance(target.op, DiscountedDLMRV):
        system = kernel_system(target)
        if system is not None:
            return kernel_draws(target, system, draws, *run)
        draw_fn = functools.partial(discounted_draws, target)
        return evaluate_over_draws(compile_over_draws(target, draw_fn, 4), draws, *run)
    fn = fused_system(target)
    if fn is None:
        return evaluate_over_draws(_scan_route(target), draws, *run)
    return fused_draws(target, fn, draws, *run)


def _scan_route(target):
    """The scans' FFBS compiled over draws (:func:`_draw_states`)."""
    return compile_over_draws(target, lambda values, r: _draw_states(target, values, r), 4)


def one_step_terms(idata, model, var_name, *, random_seed=None, progressbar=False, chunk_size=250):
    r"""Every one-step log density :math:`\log p(y_t | y_{1:t-1}, \psi)` of every draw.

    Unlike the ``log_likelihood`` group of :func:`sample_states`, nothing is left out: returns
    ``(terms, labels)``, terms of shape (chain * draw, *batch, T) (missing observations give
    exactly 0) and the T time labels (positions when the time dim has no coordinate).
    """
    run = start_run(idata, model, var_name, random_seed, chunk_size, allow_discounted=True)
    (target,) = run.targets
    args = (run.n_chain * run.n_draw, run.rng, chunk_size, progressbar, "one-step terms")
    if isinstance(target.op, DiscountedDLMRV):  # the filter alone (any variance discount)
        system = kernel_system(target)
        if system is not None:
            ll = kernel_terms(target, system, run.draws[target.name], args[0], *args[2:])
        else:
            compiled = compile_over_draws(target, functools.partial(discounted_terms, target), 1)
            (ll,) = evaluate_over_draws(compiled, run.draws[target.name], *args)
    else:
        *_, ll = draw_paths(target, run.draws[target.name], *args)
    time_axis = -1 if target.op.univariate else -2
    T = target.data.shape[time_axis]
    batch = target.data.shape[: target.data.ndim + time_axis]
    ll = np.broadcast_to(ll, (ll.shape[0], *batch, T))
    time_dim = target.dims[time_axis]
    labels = xr.DataArray(np.asarray(target.coords.get(time_dim, np.arange(T))), dims=(time_dim,))
    return ll, labels


def sample_states(
    idata,
    model=None,
    *,
    var_names=None,
    random_seed=None,
    progressbar=True,
    log_likelihood=False,
    chunk_size=250,
    store=("filtered", "smoothed", "components"),
    state_names=None,
    thin=1,
    n_importance=100,
    family=None,
):
    r"""Draw filtered and smoothed states for every posterior draw (FFBS).

    Parameters
    ----------
    idata : xarray.DataTree
        Result of ``pm.sample`` with a ``posterior`` group. It is not modified.
    model : pm.Model, optional
        The model (default: the one in context).
    var_names : str or list of str, optional
        DLM variables to process (default: every observed :class:`~pymc_dlm.DLM`).
    random_seed : int or numpy Generator, optional
        Seed for reproducible draws.
    progressbar : bool
        Show progress over chunks of draws.
    log_likelihood : bool
        Also store the one-step-ahead log predictive densities
        :math:`\log p(y_t | y_{1:t-1}, \psi)` per time step in the ``log_likelihood`` group.
        They are prequential (one-step-ahead) quantities, not pointwise conditionally
        independent terms: ArviZ's ``loo`` on them estimates one-step-ahead predictive
        accuracy, with the usual caveats of leave-one-out for dependent data.
    chunk_size : int
        Number of draws evaluated per call of the compiled function.
    store : sequence of {"filtered", "smoothed", "components", "signal"}
        What to store: the filtered draws, the smoothed paths, each component's contribution
        :math:`F_{c,t}\theta_{c,t}`, and their sum, the signal :math:`F_t\theta_t`
        (``<name>_signal``, dims ``(chain, draw, *batch, <time dim>[, series])``).
    state_names : sequence of str, optional
        Store only these states (labels of the ``<name>_state`` dim) of the filtered and
        smoothed draws.
    thin : int
        Use every ``thin``-th draw of each chain (the returned ``posterior`` is thinned the
        same way, so its variables stay aligned).
    n_importance : int
        For a DLM with a non-Gaussian ``family``: importance draws per posterior draw (an
        even number), from which one path is resampled in proportion to its weight
        (:mod:`pymc_dlm.postprocess.family_posterior`). Such a DLM has no filtered draws;
        ``<name>_importance_ess``, the effective sample size of each draw's weights, says
        how well ``n_importance`` draws covered the posterior of the states.
    family : str or Family, optional
        The observation family, for a check: it must be the one the DLM variables were
        built with (``DLM(..., family=...)``), which is always the one used.

    Returns
    -------
    xarray.DataTree
        A copy of ``idata`` (shallow: the arrays are shared) whose ``posterior`` gains, per
        DLM variable ``<name>``, what ``store`` asks for: ``<name>_filtered_state`` and
        ``<name>_smoothed_state`` with dims ``(chain, draw, *batch, <time dim>,
        <name>_state)``, ``<name>_components`` with dims ``(chain, draw, *batch, <time dim>,
        [series,] <name>_component)`` and ``<name>_signal``.

    Notes
    -----
    For float64 models the draws run in numba kernels compiled once per machine and cached on
    disk (:mod:`pymc_dlm.kalman.fused.states`; a full observation covariance is decorrelated
    first); otherwise in pytensor scans compiled for the model. The choice is made
    internally; both routes draw from the same distributions.
    """
    store = _check_store(store)
    run = start_run(
        idata, model, var_names, random_seed, chunk_size, thin=thin, allow_discounted=True,
        allow_family=True,
    )  # fmt: skip
    post, targets, draws, rng = run.post, run.targets, run.draws, run.rng
    check_family(targets, family)
    n_chain, n_draw = run.n_chain, run.n_draw
    new_vars, loglik_vars = {}, {}
    for target in targets:
        if isinstance(target.op, FamilyDLMRV):
            if log_likelihood:
                raise NotImplementedError(
                    f"log_likelihood=True for {target.name!r}: the one-step predictive "
                    "densities of a non-Gaussian family are not computed yet"
                )
            paths, comp, ess = family_state_draws(
                target, draws[target.name], n_chain * n_draw, rng, n_importance, progressbar
            )
            arrays = _to_xarray(target, post, paths, paths, comp, n_chain, n_draw)
            new_vars.update(_select(target, arrays, set(store) - {"filtered"}, state_names))
            new_vars[f"{target.name}_importance_ess"] = (
                arrays[f"{target.name}_smoothed_state"]
                .isel({f"{target.name}_state": 0, target.dims[-1]: 0}, drop=True)
                .copy(data=ess.reshape(n_chain, n_draw, *ess.shape[1:]))
            )
            continue
        filt, smooth, comp, ll = draw_paths(
            target,
            draws[target.name],
            n_chain * n_draw,
            rng,
            chunk_size,
            progressbar,
            f"sample_states: {target.name}",
        )
        arrays = _to_xarray(target, post, filt, smooth, comp, n_chain, n_draw)
        new_vars.update(_select(target, arrays, store, state_names))
        if log_likelihood:
            improper = improper_steps(target, draws[target.name], n_chain * n_draw)
            loglik_vars[target.name] = _loglik_xarray(target, post, ll, improper, n_chain, n_draw)
    out = idata.copy()
    out["posterior"] = post.assign(new_vars)
    if log_likelihood:
        if "log_likelihood" in idata.children:
            old = idata["log_likelihood"].to_dataset().isel(draw=slice(None, None, int(thin)))
            out["log_likelihood"] = old.assign(loglik_vars)
        else:
            out["log_likelihood"] = xr.Dataset(loglik_vars)
    return out


_STORE = ("filtered", "smoothed", "components", "signal")


def _check_store(store):
    items = (store,) if isinstance(store, str) else tuple(store)
    bad = [x for x in items if x not in _STORE]
    if bad or not items:
        raise ValueError(f"store must name some of {_STORE}, got {store!r}")
    return frozenset(items)


def _select(target, arrays, store, state_names):
    """The variables ``store`` asks for, with only ``state_names`` of the state draws."""
    name = target.name
    out = {}
    for kind in ("filtered", "smoothed"):
        if kind in store:
            da = arrays[f"{name}_{kind}_state"]
            if state_names is not None:
                da = da.sel({f"{name}_state": _check_states(target, state_names)})
            out[f"{name}_{kind}_state"] = da
    comp = arrays[f"{name}_components"]
    if "components" in store:
        out[f"{name}_components"] = comp
    if "signal" in store:
        signal = comp.sum(f"{name}_component")
        signal.attrs["description"] = "F_t theta_t, the signal, from the smoothed path"
        out[f"{name}_signal"] = signal
    return out


def _check_states(target, state_names):
    names = [state_names] if isinstance(state_names, str) else list(state_names)
    labels = list(target.op.state_labels)
    unknown = [x for x in names if x not in labels]
    if unknown or not names:
        raise ValueError(
            f"state_names must name states of {target.name!r} {labels}, got {unknown or names}"
        )
    return names


def _coords_for(target, post, dims):
    return {d: target.coords[d] for d in dims if d in target.coords}


def _to_xarray(target, post, filt, smooth, comp, n_chain, n_draw):
    op, name = target.op, target.name
    time_axis = -1 if op.univariate else -2
    time_dim = target.dims[time_axis]
    batch_dims = tuple(target.dims[: len(target.dims) + time_axis])
    state_dim, comp_dim = f"{name}_state", f"{name}_component"
    lead = (n_chain, n_draw)
    # Draw arrays are (S, batch..., T, n); the batch may be broadcast smaller than the data's.
    batch_shape = target.data.shape[: target.data.ndim + time_axis]
    T = target.data.shape[time_axis]
    n = filt.shape[-1]

    def shape_up(x, tail):
        x = np.broadcast_to(x, (x.shape[0], *batch_shape, *tail))
        return x.reshape(*lead, *batch_shape, *tail)

    coords = {state_dim: list(op.state_labels), comp_dim: [c[0] for c in op.components]}
    coords.update(_coords_for(target, post, tuple(target.dims)))
    state_dims = ("chain", "draw", *batch_dims, time_dim, state_dim)

    def array(values, dims):
        return xr.DataArray(
            values, dims=dims, coords={k: v for k, v in coords.items() if k in dims}
        )

    out = {
        f"{name}_filtered_state": array(shape_up(filt, (T, n)), state_dims),
        f"{name}_smoothed_state": array(shape_up(smooth, (T, n)), state_dims),
    }
    if op.univariate:
        comp = comp[..., 0, :]
        comp_dims = ("chain", "draw", *batch_dims, time_dim, comp_dim)
        comp = shape_up(comp, (T, comp.shape[-1]))
    else:
        series_dim = target.dims[-1]
        comp_dims = ("chain", "draw", *batch_dims, time_dim, series_dim, comp_dim)
        comp = shape_up(comp, comp.shape[-3:])
    out[f"{name}_components"] = array(comp, comp_dims)
    out[f"{name}_filtered_state"].attrs["description"] = (
        "theta_t ~ p(theta_t | y_1:t), one draw per posterior draw"
    )
    out[f"{name}_smoothed_state"].attrs["description"] = (
        "joint path theta_1:T ~ p(theta_1:T | y_1:T) (FFBS)"
    )
    out[f"{name}_components"].attrs["description"] = (
        "F_c theta_c per component, from the smoothed path"
    )
    return out


def _excluded_terms(target, improper):
    """(*batch, T) mask of the one-step terms left out of the ``log_likelihood`` group.

    A term is left out when y_t is entirely missing (it is exactly 0 for every draw) or when
    its one-step predictive is improper (``improper``, from
    :func:`~pymc_dlm.postprocess.one_step.improper_steps`: y_t sees a diffuse direction, in
    the diffuse period). Such terms are the same for every draw (0, or the diffuse part of
    the likelihood), so they carry no information for comparing parameter values, and
    ArviZ's ``loo`` cannot fit its tail to them.
    """
    data = np.asarray(target.data, dtype=np.float64)
    data = data[..., None] if target.op.univariate else data
    missing = np.all(np.isnan(data), axis=-1)
    return missing | improper


def _loglik_xarray(target, post, ll, improper, n_chain, n_draw):
    r"""One-step log predictive densities of the informative terms, for ``az.loo``.

    The rule (documented in ``docs/ffbs_forecasting.md``): terms of missing observations and
    of the diffuse period are left out (:func:`_excluded_terms`), and listed in the
    attributes. Without batch axes the result keeps dims ``(chain, draw, time)`` over the
    times kept; with batch axes, when the left-out terms differ between members, the kept
    (member, time) pairs are stacked on one dim ``<name>_term`` with their labels as
    coordinates.
    """
    time_axis = -1 if target.op.univariate else -2
    batch_dims = tuple(target.dims[: len(target.dims) + time_axis])
    time_dim = target.dims[time_axis]
    dims = ("chain", "draw", *batch_dims, time_dim)
    batch_shape = target.data.shape[: target.data.ndim + time_axis]
    T = target.data.shape[time_axis]
    ll = np.broadcast_to(ll, (ll.shape[0], *batch_shape, T)).reshape(
        n_chain, n_draw, *batch_shape, T
    )
    coords = _coords_for(target, post, dims[2:])
    da = xr.DataArray(ll, dims=dims, coords=coords)
    excluded = np.broadcast_to(_excluded_terms(target, improper), (*batch_shape, T))
    all_members = np.all(excluded.reshape(-1, T), axis=0)
    labels = coords.get(time_dim, np.arange(T))
    da = da.isel({time_dim: ~all_members})
    da.attrs["excluded_times"] = [str(t) for t in np.asarray(labels)[all_members]]
    rest = excluded[..., ~all_members]
    if rest.any():
        stacked = da.stack({f"{target.name}_term": (*batch_dims, time_dim)})
        stacked = stacked.isel({f"{target.name}_term": ~rest.reshape(-1)})
        da = stacked.reset_index(f"{target.name}_term")
    da.attrs["description"] = (
        "one-step-ahead log predictive density log p(y_t | y_1:t-1, params); terms of "
        "missing observations and of the diffuse period are left out"
    )
    return da
