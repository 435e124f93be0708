"""``fit_many``: one DLM per series of a long table, on Dask or in this process, resumable.

The table is split into series by the ``by`` columns; every series not yet complete in the
store becomes one task (:func:`~pymc_dlm.fleet.task.fit_series`), which fits it and writes it
to the store itself, so a result is safe the moment its task ends. The summary returned is
built from the rows of the new tasks and the rows stored with the series found complete.
"""

import numbers
import os
import uuid

import numpy as np
import pandas as pd

from pymc_dlm.fleet.seeds import as_key, encode_key, group_name, series_seeds
from pymc_dlm.fleet.store import FleetStore
from pymc_dlm.fleet.task import FitOptions, check_model, fit_series

__all__ = ["fit_many"]

_RESERVED = ("random_seed", "model")


def _check_inputs(data, by, model_fn, store, sample_kwargs, forecast_steps, random_seed):
    """Validate the arguments of ``fit_many``; return ``by`` as a list of column names."""
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    by_list = [by] if isinstance(by, str) else by
    if not isinstance(by_list, (list, tuple)) or not by_list:
        raise TypeError(f"by must be a column name or a non-empty list of them, got {by!r}")
    missing = [c for c in by_list if c not in data.columns]
    if missing:
        raise KeyError(f"by: {missing} not among the columns of data {list(data.columns)}")
    if not callable(model_fn):
        raise TypeError(f"model_fn must be callable, got {type(model_fn).__name__}")
    if not isinstance(store, (str, os.PathLike)):
        raise TypeError(f"store must be a path or an fsspec URL, got {type(store).__name__}")
    if sample_kwargs is not None and not isinstance(sample_kwargs, dict):
        raise TypeError(f"sample_kwargs must be a dict, got {type(sample_kwargs).__name__}")
    reserved = [k for k in _RESERVED if k in (sample_kwargs or {})]
    if reserved:
        raise ValueError(
            f"sample_kwargs must not set {reserved}: fit_many sets them per series "
            "(give the run's seed as random_seed=)"
        )
    if (
        isinstance(forecast_steps, bool)
        or not isinstance(forecast_steps, numbers.Integral)
        or forecast_steps < 0
    ):
        raise ValueError(f"forecast_steps must be an integer >= 0, got {forecast_steps!r}")
    if random_seed is not None and (
        isinstance(random_seed, bool)
        or not isinstance(random_seed, numbers.Integral)
        or random_seed < 0
    ):
        raise ValueError(f"random_seed must be None or an integer >= 0, got {random_seed!r}")
    return list(by_list)


def _split(data, by):
    """``[(key tuple, frame)]`` in order of first appearance; rows keep their order."""
    grouped = data.groupby(by if len(by) > 1 else by[0], sort=False, dropna=False)
    return [(as_key(key), frame) for key, frame in grouped]


def _check_first_model(series, model_fn):
    """Build the first series' model: a wrong return type is an error before any work.

    If ``model_fn`` raises for that series, that is the series' own failure, recorded
    when it runs.
    """
    if not series:
        return
    try:
        model = model_fn(series[0][1])
    except Exception:  # noqa: BLE001 - the series' task records it
        return
    check_model(model)


def _progress(enabled, total):
    """A rich progress bar over series (terminal and notebooks), or a stand-in."""
    if not enabled:
        return _NoBar()
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "fitting series", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), transient=False
    )
    bar.task = bar.add_task("fit", total=total)
    return bar


class _NoBar:
    task = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def advance(self, task):
        pass


def _run_local(pending, model_fn, spec, options, bar):
    rows = {}
    for key, frame, seeds in pending:
        rows[encode_key(key).decode()] = fit_series(frame, key, model_fn, spec, seeds, options)
        bar.advance(bar.task)
    return rows


def _run_dask(client, pending, model_fn, spec, options, bar):
    from distributed import as_completed

    run = uuid.uuid4().hex[:8]
    futures = {}
    for key, frame, seeds in pending:
        future = client.submit(
            fit_series,
            frame,
            key,
            model_fn,
            spec,
            seeds,
            options,
            key=f"fit_series-{group_name(key)}-{run}",
            pure=False,
        )
        futures[future] = encode_key(key).decode()
    rows = {}
    for future in as_completed(futures):
        try:
            rows[futures[future]] = future.result()
        except Exception as err:  # noqa: BLE001 - a task lost by Dask (KilledWorker ...)
            message = f"{type(err).__name__}: {err}"
            rows[futures[future]] = {"status": "failed", "error": message}
        bar.advance(bar.task)
    return rows


def fit_many(
    data,
    model_fn,
    *,
    by,
    store,
    client=None,
    random_seed=None,
    sample_kwargs=None,
    states=False,
    forecast_steps=0,
    progressbar=True,
    blas_threads=1,
    reuse_compiled=True,
    storage_options=None,
):
    """Fit one DLM per series of a long table and store every fit; resumable.

    Parameters
    ----------
    data : pandas.DataFrame
        All series in long form, one row per observation.
    model_fn : callable
        ``model_fn(frame) -> pm.Model``: receives one series' rows (in the order of ``data``)
        and returns a model holding exactly one :class:`~pymc_dlm.DLM`. With a client it
        must be picklable by cloudpickle (lambdas and local functions are).
    by : str or list of str
        The column(s) naming a series.
    store : str or os.PathLike
        A zarr store, as a local path or any fsspec URL (``s3://...``, ``gs://...``), that
        every worker can reach. One group per series (see :func:`load_fit`).
    client : dask.distributed.Client, optional
        Fit on this client's workers. None (the default) fits in the current process, one
        series after another, without Dask.
    random_seed : int, optional
        The run's seed. Every series draws from seeds derived from it and its key alone
        (:func:`~pymc_dlm.fleet.series_seeds`), so a run on a cluster, in this process or
        resumed gives the same draws. None: fresh entropy, and no such guarantee.
    sample_kwargs : dict, optional
        Passed to ``pm.sample`` (``draws``, ``tune``, ``chains``, ``nuts_sampler`` ...),
        except ``random_seed`` and ``model``. ``progressbar`` and
        ``compute_convergence_checks`` default to False (the summary has r_hat and ESS),
        ``nuts_sampler`` to ``"pymc"`` (see ``reuse_compiled``); PyMC's log messages are
        limited to errors while a series is sampled. On a Dask
        worker ``cores`` defaults to 1: workers are daemonic processes that cannot start the
        processes PyMC would use for parallel chains.
    states : bool, default False
        Also draw the states (:func:`~pymc_dlm.sample_states`) into the posterior.
    forecast_steps : int, default 0
        If positive, also forecast that many steps (:func:`~pymc_dlm.forecast`) into a
        ``predictions`` group.
    progressbar : bool, default True
        Show a progress bar over the series (terminal or notebook).
    blas_threads : int or None, default 1
        BLAS threads per task (threadpoolctl); None leaves the BLAS libraries alone.
    reuse_compiled : bool, default True
        Share the compiled NUTS log-density between the series of a process whose models
        differ only in the DLM's observed data (:mod:`pymc_dlm.fleet.reuse`): each process
        compiles each model structure once. Applies to PyMC's NUTS, the default here.
    storage_options : dict, optional
        fsspec/zarr options for ``store`` (credentials, endpoints).

    Returns
    -------
    pandas.DataFrame
        One row per series, in order of first appearance in ``data``: the key column(s),
        ``status`` (``"ok"`` or ``"failed"``), ``error`` (the failure's message),
        ``wall_time_s``, ``divergences``, ``max_r_hat``, ``min_ess_bulk``,
        ``<param>_mean`` and ``<param>_sd`` of every scalar free parameter, and
        ``from_store`` (True for series found complete and not fitted again). The same
        table is written beside the store as ``<store>.summary.csv``.

    Notes
    -----
    Each series is written as soon as it is fitted, and marked complete only after every
    array is written; a run that stops (an interrupt, a crash, a lost worker) loses at most
    the series in flight. Calling ``fit_many`` again with the same ``store`` fits only the
    series that are not complete; failed series are tried again.

    A task whose worker dies is run again by Dask on another worker (up to Dask's
    ``distributed.scheduler.allowed-failures``); a task that exhausts them is reported as
    failed. Errors in ``model_fn`` or in sampling fail only their series.
    """
    by = _check_inputs(data, by, model_fn, store, sample_kwargs, forecast_steps, random_seed)
    if client is not None and not callable(getattr(client, "submit", None)):
        raise TypeError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
    if random_seed is None:
        random_seed = int(np.random.SeedSequence().entropy % (2**63))
    options = FitOptions(
        dict(sample_kwargs or {}),
        bool(states),
        int(forecast_steps),
        blas_threads,
        bool(reuse_compiled),
    )
    series = _split(data, by)
    _check_first_model(series, model_fn)
    fleet = FleetStore(store, storage_options)
    fleet.create()
    done = fleet.completed()
    pending = [
        (key, frame, tuple(series_seeds(random_seed, key)))
        for key, frame in series
        if encode_key(key).decode() not in done
    ]
    spec = (fleet.root, fleet.storage_options or None)
    with _progress(progressbar, len(pending)) as bar:
        if client is None:
            rows = _run_local(pending, model_fn, spec, options, bar)
        else:
            rows = _run_dask(client, pending, model_fn, spec, options, bar)
    table = []
    for key, _ in series:
        code = encode_key(key).decode()
        row = rows.get(code)
        from_store = row is None
        row = dict(done[code] if from_store else row)
        table.append({**dict(zip(by, key)), **row, "from_store": from_store})
    summary = _order(pd.DataFrame(table), by)
    fleet.write_summary(summary)
    return summary


def _order(frame, by):
    """Key columns, then status and diagnostics, then the parameters' moments."""
    first = [*by, "status", "error", "wall_time_s", "divergences", "max_r_hat", "min_ess_bulk"]
    first = [c for c in first if c in frame.columns]
    rest = [c for c in frame.columns if c not in first and c != "from_store"]
    return frame[first + rest + ["from_store"]]
