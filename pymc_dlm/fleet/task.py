"""The work of one series: build its model, sample, optionally draw states and forecast, store.

:func:`fit_series` is what a Dask task runs (or the current process, without a client). It
never raises for a problem of the series itself: a model or sampler error becomes a summary
row with ``status="failed"`` and the error's message, so the other series go on. Interrupts
(``KeyboardInterrupt``, ``SystemExit``) are not caught.
"""

import contextlib
import logging
import time
from typing import NamedTuple

import numpy as np

from pymc_dlm.fleet.reuse import share_compiled
from pymc_dlm.fleet.seeds import SeriesSeeds
from pymc_dlm.fleet.store import FleetStore

__all__ = ["FitOptions", "fit_series", "fit_tree", "check_model", "on_dask_worker"]


class FitOptions(NamedTuple):
    """What to do with every series (the keyword arguments of ``fit_many``)."""

    sample_kwargs: dict
    states: bool
    forecast_steps: int
    blas_threads: int | None
    reuse_compiled: bool


def check_model(model, name="model_fn"):
    """Return the ``DLM`` variable of ``model``; raise unless it is a ``pm.Model`` with one."""
    import pymc as pm

    from pymc_dlm.distribution import DLMRV
    from pymc_dlm.distribution_discounted import DiscountedDLMRV

    if not isinstance(model, pm.Model):
        raise TypeError(f"{name} must return a pm.Model, got {type(model).__name__}")
    kinds = (DLMRV, DiscountedDLMRV)
    dlms = [
        rv for rv in model.basic_RVs if rv.owner is not None and isinstance(rv.owner.op, kinds)
    ]
    if len(dlms) != 1:
        found = "none" if not dlms else ", ".join(rv.name for rv in dlms)
        raise ValueError(f"{name} must return a model with exactly one DLM; found {found}")
    return dlms[0]


def on_dask_worker():
    """Whether this code runs inside a task on a Dask worker."""
    import sys

    if "distributed" not in sys.modules:  # never imported: cannot be on a worker
        return False
    from distributed import get_worker

    try:
        get_worker()
    except ValueError:
        return False
    return True


def _sample_kwargs(options, seeds, model):
    """``pm.sample``'s arguments: the user's, the series' seed, and the fleet's defaults.

    On a Dask worker chains run one after the other (``cores=1``) unless the user says
    otherwise: worker processes are daemonic and cannot start the processes PyMC would use.
    The sampler defaults to PyMC's NUTS (``nuts_sampler="pymc"``), the one whose compiled
    log-density :mod:`~pymc_dlm.fleet.reuse` shares between series.
    """
    kwargs = {
        "progressbar": False,
        "nuts_sampler": "pymc",
        "compute_convergence_checks": False,  # the summary row has r_hat and ESS
        **options.sample_kwargs,
    }
    if "cores" not in options.sample_kwargs and on_dask_worker():
        kwargs["cores"] = 1
    kwargs["random_seed"] = seeds.sample
    kwargs["model"] = model
    return kwargs


def fit_tree(frame, model_fn, seeds, options):
    """Fit one series in memory; return ``(model, tree)``.

    ``tree`` is ``pm.sample``'s DataTree, with the state draws of ``sample_states`` in its
    ``posterior`` when ``options.states``, and the ``predictions`` group of ``forecast``
    when ``options.forecast_steps > 0``.
    """
    import pymc as pm
    from threadpoolctl import threadpool_limits

    from pymc_dlm.postprocess import forecast, sample_states

    model = model_fn(frame)
    dlm_rv = check_model(model)
    if options.reuse_compiled:
        share_compiled(model, dlm_rv)
    limits = (
        threadpool_limits(limits=options.blas_threads, user_api="blas")
        if options.blas_threads is not None
        else _Nothing()
    )
    with limits, _quiet("pymc"):
        tree = pm.sample(**_sample_kwargs(options, seeds, model))
        if options.states:
            tree = sample_states(tree, model, random_seed=seeds.states, progressbar=False)
        if options.forecast_steps:
            fc = forecast(
                tree,
                model,
                steps=options.forecast_steps,
                random_seed=seeds.forecast,
                progressbar=False,
            )
            tree["predictions"] = fc["predictions"]
    return model, tree


@contextlib.contextmanager
def _quiet(name):
    """Only errors from logger ``name``: a fleet reports each fit's diagnostics in its row.

    PyMC logs several lines per fit (the sampler, the chains, the convergence advice), which
    for thousands of series would bury everything else in the workers' logs.
    """
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _Nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def summarize(model, tree):
    """Summary statistics of a fit: divergences, worst r_hat and bulk ESS, scalar moments."""
    import arviz as az

    post = tree["posterior"].to_dataset()
    names = [rv.name for rv in model.free_RVs if rv.name in post]
    params = post[names]
    row = {"divergences": int(tree["sample_stats"]["diverging"].sum())}
    if names and post.sizes.get("chain", 0) > 1:
        rhat = az.rhat(params)
        row["max_r_hat"] = float(max(float(rhat[n].max()) for n in names))
    else:
        row["max_r_hat"] = float("nan")
    if names:
        ess = az.ess(params, method="bulk")
        row["min_ess_bulk"] = float(min(float(ess[n].min()) for n in names))
    else:
        row["min_ess_bulk"] = float("nan")
    for name in names:
        if params[name].ndim == 2:  # (chain, draw): a scalar parameter
            values = params[name].values
            row[f"{name}_mean"] = float(np.mean(values))
            row[f"{name}_sd"] = float(np.std(values, ddof=1))
    return row


def fit_series(frame, key, model_fn, store_spec, seeds, options):
    """Fit series ``key`` and write it to the store; return its summary row (a dict).

    Parameters
    ----------
    frame : pandas.DataFrame
        The series' rows.
    key : tuple
        The series key.
    model_fn : callable
        ``model_fn(frame) -> pm.Model``.
    store_spec : tuple
        ``(root, storage_options)`` of the :class:`~pymc_dlm.fleet.store.FleetStore`.
    seeds : SeriesSeeds
        The series' seeds.
    options : FitOptions
        What to run.

    Returns
    -------
    dict
        ``status``, ``error``, ``wall_time_s`` and the statistics of :func:`summarize`. A
        series already complete in the store (a task run again after its worker died) is
        not fitted again: its stored row is returned.
    """
    store = FleetStore(*store_spec)
    stored = store.row(key)
    if stored is not None:
        return stored
    start = time.perf_counter()
    try:
        model, tree = fit_tree(frame, model_fn, SeriesSeeds(*seeds), options)
        row = {"status": "ok", "error": ""}
        row.update(summarize(model, tree))
        row["wall_time_s"] = time.perf_counter() - start
        store.write(key, tree, row)
    except Exception as err:  # noqa: BLE001 - any failure of one series is recorded
        message = f"{type(err).__name__}: {err}"
        return {"status": "failed", "error": message, "wall_time_s": time.perf_counter() - start}
    return row
