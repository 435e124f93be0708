"""Measurements shared by both sides (``bench_ours.py`` and ``peer_bench.py``).

Imports only the standard library and numpy at module level, so the peer's environment (another
PyMC) runs exactly the same measuring code on its own model. Each worker measures one model in a
fresh process and prints one JSON line prefixed with ``BENCH_JSON:``.

What is measured
----------------
build_compile
    Wall time from an empty process state to the first log-density-and-gradient value: building
    the ``pm.Model`` (``build_s``), compiling the joint value-and-gradient function NUTS uses
    (``compile_s``), the first call (``first_call_s``); ``total_s`` is their sum.
logp_grad
    Seconds per call of that compiled function, called as PyMC's NUTS calls it: the function from
    ``model.logp_dlogp_function(ravel_inputs=True)`` with its extra values set, invoked through
    its ``_pytensor_function`` on one raveled float64 point (pymc/step_methods/hmc/integration.py,
    ``CpuLeapfrogIntegrator``). Median over ``repeat`` batches of many calls (also the minimum).
sample
    ``pm.sample(draws, tune, chains, cores, nuts_sampler=...)`` wall time end to end (includes
    compilation, initialisation and both chains), the smallest bulk ESS over every scalar of every
    free variable (``arviz.ess(method="bulk")``), and that ESS divided by the wall time.
states
    Wall time of posterior state draws for every posterior draw (2 chains x 1000 = 2000 draws).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from importlib import metadata

import numpy as np

JSON_PREFIX = "BENCH_JSON:"


# ---------------------------------------------------------------------------------- environment
def package_versions(
    names=(
        "numpy",
        "scipy",
        "pymc",
        "pytensor",
        "numba",
        "nutpie",
        "arviz",
        "arviz-stats",
        "pymc-extras",
        "pymc-dlm",
        "statsmodels",
    ),
):
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_info():
    model = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    load = None
    try:
        load = os.getloadavg()[0]
    except OSError:
        pass
    return {
        "cpu_model": model,
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_avg_1min": load,
        "platform": platform.platform(),
    }


def pytensor_config():
    try:
        import pytensor

        return {
            "mode": str(pytensor.config.mode),
            "linker": str(pytensor.config.linker),
            "floatX": pytensor.config.floatX,
            "compiledir": pytensor.config.compiledir,
        }
    except Exception:  # noqa: BLE001
        return {}


# ------------------------------------------------------------------------------------ measuring
def nuts_function(model):
    """Compile the joint logp-and-gradient function exactly as PyMC's NUTS does; return it and q.

    Returns ``(call, q)``: ``call(q) -> [logp, dlogp]`` is the compiled pytensor function that the
    leapfrog integrator invokes, ``q`` the raveled initial point (float64, in the order of
    ``model.continuous_value_vars``).
    """
    from pymc.blocking import DictToArrayBijection

    ip = model.initial_point()
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.trust_input = True  # as GradientSharedStep does
    fn.set_extra_values(ip)
    q = DictToArrayBijection.map({v.name: ip[v.name] for v in model.continuous_value_vars}).data
    q = np.ascontiguousarray(q, dtype=np.float64)
    return fn._pytensor_function, q


def time_calls(call, q, *, min_time=2.0, repeat=7):
    """Median and minimum seconds per call over ``repeat`` batches lasting ``min_time`` in all.

    A function slower than ``min_time`` per call gets at most 3 single-call batches.
    """
    t0 = time.perf_counter()
    call(q)  # warm-up, also the first estimate
    one = time.perf_counter() - t0
    if one < 0.05:
        t0 = time.perf_counter()
        n_est = 0
        while time.perf_counter() - t0 < 0.05 or n_est < 3:
            call(q)
            n_est += 1
        one = (time.perf_counter() - t0) / n_est
    if one > min_time:
        repeat = min(repeat, 3)
    number = max(1, int(min_time / repeat / one))
    per = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            call(q)
        per.append((time.perf_counter() - t0) / number)
    return {
        "logp_grad_s": float(np.median(per)),
        "logp_grad_min_s": float(np.min(per)),
        "calls": number * repeat,
        "batches": repeat,
    }


def measure_logp(build, *, min_time=2.0, repeat=7):
    """Measure (a) build + compile to the first value and (b) the per-call time.

    ``build() -> pm.Model`` constructs the model; imports must be done before.
    """
    t0 = time.perf_counter()
    model = build()
    t1 = time.perf_counter()
    call, q = nuts_function(model)
    t2 = time.perf_counter()
    logp, dlogp = call(q)
    t3 = time.perf_counter()
    out = {
        "build_s": t1 - t0,
        "compile_s": t2 - t1,
        "first_call_s": t3 - t2,
        "total_s": t3 - t0,
        "n_params": int(q.size),
        "logp_at_initial_point": float(logp),
        "grad_finite": bool(np.all(np.isfinite(dlogp))),
    }
    out.update(time_calls(call, q, min_time=min_time, repeat=repeat))
    return out


def min_bulk_ess(idata):
    """Smallest bulk ESS over every scalar of every posterior variable (arviz 1.x API)."""
    import arviz as az

    res = az.ess(idata, method="bulk")
    ds = res
    if hasattr(res, "children"):  # DataTree
        ds = res.to_dataset()
        if not ds.data_vars and "posterior" in res.children:
            ds = res["posterior"].to_dataset()
    vals = [float(np.nanmin(np.asarray(da.values))) for da in ds.data_vars.values()]
    return min(vals) if vals else float("nan")


def n_divergences(idata):
    try:
        return int(np.asarray(idata["sample_stats"]["diverging"].values).sum())
    except Exception:  # noqa: BLE001
        return None


def measure_sample(model, *, sampler, draws, tune, chains, cores, seed):
    """(c) end-to-end ``pm.sample`` wall time and bulk ESS per second."""
    import pymc as pm

    t0 = time.perf_counter()
    idata = pm.sample(
        draws=draws,
        tune=tune,
        chains=chains,
        cores=cores,
        random_seed=seed,
        nuts_sampler=sampler,
        progressbar=False,
        compute_convergence_checks=False,
        model=model,
    )
    wall = time.perf_counter() - t0
    ess = min_bulk_ess(idata)
    out = {
        "wall_s": wall,
        "min_bulk_ess": ess,
        "ess_per_s": ess / wall,
        "divergences": n_divergences(idata),
        "draws": draws,
        "tune": tune,
        "chains": chains,
        "cores": cores,
    }
    try:
        out["sampling_time_attr_s"] = float(idata["posterior"].attrs["sampling_time"])
    except Exception:  # noqa: BLE001
        pass
    return out, idata


# ------------------------------------------------------------------------------------ the worker
def sample_phase(result, args, model, measure_states):
    """Run each requested sampler on ``model``; after PyMC's NUTS, time the state draws.

    ``measure_states(idata)`` is the side's own state sampler (ours or the peer's).
    """
    result["sample"] = {}
    for sampler in [s for s in args.samplers.split(",") if s]:
        out = cell(
            measure_sample,
            model,
            sampler=sampler,
            draws=args.draws,
            tune=args.tune,
            chains=args.chains,
            cores=args.cores,
            seed=args.seed,
        )
        if isinstance(out, dict):
            result["sample"][sampler] = out
            continue
        stats, idata = out
        result["sample"][sampler] = stats
        if sampler == "pymc" and not args.no_states:
            result["states"] = cell(measure_states, idata)


def worker_args(argv=None):
    p = argparse.ArgumentParser(
        description="measure one benchmark model (one side) and print JSON"
    )
    p.add_argument("--model", type=int, required=True)
    p.add_argument(
        "--data", default=None, help=".npz written by models.save_data (default: simulate)"
    )
    p.add_argument("--phase", choices=("logp", "sample"), default="logp")
    p.add_argument("--min-time", type=float, default=2.0, help="seconds of per-call timing")
    p.add_argument("--repeat", type=int, default=7, help="batches of per-call timing (median)")
    p.add_argument("--samplers", default="pymc,nutpie")
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--tune", type=int, default=1000)
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no-states", action="store_true")
    p.add_argument(
        "--prior",
        choices=("proper", "default"),
        default="proper",
        help="ours only: theta_0 ~ N(0, 1e7 I) (like every side) or the components' default",
    )
    return p.parse_args(argv)


def cell(fn, *args, **kwargs):
    """Run one measurement; any failure becomes ``{"error": ...}`` instead of ending the worker."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001
        return {
            "error": f"{type(exc).__name__}: {exc}"[:500],
            "traceback": traceback.format_exc()[-2000:],
        }


def _json_default(obj):
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return str(obj)


def emit(result):
    sys.stdout.flush()
    print(JSON_PREFIX + json.dumps(result, default=_json_default), flush=True)


def quiet():
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("pymc", "pytensor", "numba", "nutpie", "pymc_extras"):
        logging.getLogger(name).setLevel(logging.ERROR)
