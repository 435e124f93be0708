"""Our side: measure one benchmark model built with pymc_dlm (``models.build_ours``).

Run by ``run.py`` in the project's environment, one model and one phase per process; prints one
``BENCH_JSON:`` line. Written against the public contract (notes/CONTRACT.md): whatever pymc_dlm
does not provide yet becomes an ``error`` entry (shown as n/a), never a crash of the run.

Usage: ``python benchmarks/bench_ours.py --model 1 [--phase sample]``.
"""

from __future__ import annotations

import inspect
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the checkout's pymc_dlm when it is not installed

import harness  # noqa: E402
import models  # noqa: E402


def measure_states(model, idata, seed):
    """``pymc_dlm.sample_states`` for every posterior draw (n/a when it does not exist yet)."""
    import pymc_dlm as dlm

    if not hasattr(dlm, "sample_states"):
        return {"error": "n/a: pymc_dlm.sample_states does not exist yet"}
    n = int(idata["posterior"].sizes["chain"] * idata["posterior"].sizes["draw"])
    t0 = time.perf_counter()
    params = inspect.signature(dlm.sample_states).parameters
    kwargs = {
        k: v
        for k, v in (("model", model), ("random_seed", seed), ("progressbar", False))
        if k in params
    }
    with model:
        dlm.sample_states(idata, **kwargs)
    return {"wall_s": time.perf_counter() - t0, "draws": n, "method": "pymc_dlm.sample_states"}


def main(argv=None):
    args = harness.worker_args(argv)
    harness.quiet()
    k = args.model
    data = models.load_data(k, args.data)
    result = {
        "side": "ours",
        "model": k,
        "phase": args.phase,
        "versions": harness.package_versions(),
        "pytensor": harness.pytensor_config(),
    }
    try:
        import pymc  # noqa: F401  imported before any timing: build time is model construction only

        import pymc_dlm

        result["pymc_dlm_file"] = getattr(pymc_dlm, "__file__", None)
    except Exception as exc:  # noqa: BLE001
        result["error"] = f"n/a: pymc_dlm does not import ({type(exc).__name__}: {exc})"[:500]
        harness.emit(result)
        return
    if not hasattr(pymc_dlm, "DLM"):
        result["error"] = "n/a: pymc_dlm.DLM does not exist yet"
        harness.emit(result)
        return

    if args.phase == "logp":
        result["logp"] = harness.cell(
            harness.measure_logp,
            lambda: models.build_ours(k, data, args.prior),
            min_time=args.min_time,
            repeat=args.repeat,
        )
    else:
        built = harness.cell(models.build_ours, k, data, args.prior)
        if isinstance(built, dict):
            result["error"] = built["error"]
            harness.emit(result)
            return
        model = built
        harness.sample_phase(
            result, args, model, lambda idata: measure_states(model, idata, args.seed)
        )
    harness.emit(result)


if __name__ == "__main__":
    main()
