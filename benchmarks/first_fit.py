"""The first Nile fit on a new machine: empty caches, with and without prebuilt kernels.

Each case is a fresh process running the same script (``--worker``): import, build the
Nile local level model, compile its log-density and gradient, time a call of it (so the
kernels compiled for this processor, ``cold``, and for the generic CPU, the store, are
compared too), ``pm.sample(300, tune=300, chains=2)`` and ``sample_states``; the phases and
the process's wall time are reported.

* ``cold``: empty numba and pytensor caches and no store of prebuilt kernels: everything
  compiles (what a new machine paid before stores existed, and still pays without one).
* ``cold + store``: empty numba and pytensor caches, kernels loaded from a store built by
  ``python -m pymc_dlm prebuild`` (built first, timed apart).
* ``warm``: the caches the ``cold + store`` run left, a second process.

Run as ``python benchmarks/first_fit.py [--store DIR] [--no-cold] [--out DIR]``.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _worker():
    times = {}
    start = time.perf_counter()
    import numpy as np
    import pymc as pm

    import pymc_dlm as dlm
    from pymc_dlm.demo import load_nile

    times["import"] = time.perf_counter() - start
    nile = load_nile()
    t = time.perf_counter()
    with pm.Model(coords={"year": nile["year"].to_numpy()}) as model:
        level = pm.HalfNormal("sigma_level", 100)
        obs = pm.HalfNormal("sigma_obs", 200)
        flow = nile["flow"].to_numpy(dtype=float)
        dlm.DLM("flow", dlm.LocalLevel(level), sigma_obs=obs, observed=flow, dims="year")
    times["build"] = time.perf_counter() - t
    t = time.perf_counter()
    logp_dlogp = model.logp_dlogp_function(ravel_inputs=True)
    logp_dlogp.set_extra_values({})
    x = np.array([1.0, 1.0])
    logp_dlogp(x)
    times["logp_dlogp compile"] = time.perf_counter() - t
    best = float("inf")
    for _ in range(10):
        t = time.perf_counter()
        for _ in range(200):
            logp_dlogp(x)
        best = min(best, (time.perf_counter() - t) / 200)
    times["logp+grad per call, µs (best of 10 x 200)"] = best * 1e6
    t = time.perf_counter()
    with model:
        idata = pm.sample(
            300,
            tune=300,
            chains=2,
            cores=2,
            random_seed=1,
            progressbar=False,
            compute_convergence_checks=False,
        )
    times["pm.sample"] = time.perf_counter() - t
    t = time.perf_counter()
    dlm.sample_states(idata, model, random_seed=1, progressbar=False)
    times["sample_states"] = time.perf_counter() - t
    print("FIRST_FIT_JSON:" + json.dumps(times), flush=True)


def _run(env):
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, __file__, "--worker"], env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    line = [x for x in run.stdout.splitlines() if x.startswith("FIRST_FIT_JSON:")][-1]
    times = json.loads(line.split(":", 1)[1])
    times["process wall time"] = wall
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--store", type=Path, help="an existing store (default: build one)")
    p.add_argument("--no-cold", action="store_true", help="skip the case without a store")
    p.add_argument("--out", type=Path, help="write a Markdown report into this directory")
    args = p.parse_args()
    if args.worker:
        return _worker()
    sys.path.insert(0, str(HERE.parent))
    from pymc_dlm.kalman.fused.prebuilt import DIRECTORY_ENV
    from pymc_dlm.prebuild import build

    scratch = Path(tempfile.mkdtemp(prefix="first_fit_"))
    store = args.store
    build_time = None
    if store is None:
        store = scratch / "store"
        t = time.perf_counter()
        build(store)
        build_time = time.perf_counter() - t

    def env(name, use_store):
        e = dict(os.environ, MPLBACKEND="Agg")
        e["NUMBA_CACHE_DIR"] = str(scratch / name / "numba")
        e["PYTENSOR_FLAGS"] = f"compiledir={scratch / name / 'pytensor'}"
        e[DIRECTORY_ENV] = str(store if use_store else scratch / "no_store")
        return e

    results = {}
    if not args.no_cold:
        results["cold"] = _run(env("cold", False))
    results["cold + store"] = _run(env("store", True))
    results["warm"] = _run(env("store", True))
    phases = list(results["warm"])
    lines = [
        "# First Nile fit: empty caches, with and without prebuilt kernels\n",
        f"`python benchmarks/first_fit.py`, {time.strftime('%Y-%m-%d')}, "
        f"commit {_commit()}, {os.cpu_count()} cores. Seconds, unless marked µs.\n",
        "| phase | " + " | ".join(results) + " |",
        "|---|" + "---|" * len(results),
    ]
    for phase in phases:
        lines.append(
            f"| {phase} | " + " | ".join(f"{r[phase]:.2f}" for r in results.values()) + " |"
        )
    if build_time is not None:
        lines.append(f"\nBuilding the store (`pymc_dlm.prebuild.build`): {build_time:.1f} s.")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        name = f"{time.strftime('%Y-%m-%d')}_first_fit_{_commit()}.md"
        (args.out / name).write_text(report)


def _commit():
    run = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    )
    return run.stdout.strip() or "unknown"


if __name__ == "__main__":
    main()
