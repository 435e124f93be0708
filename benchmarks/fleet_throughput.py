"""Throughput of fit_many: series per minute with 1 and 2 workers, against a loop of pm.sample.

Usage, from the repository root::

    python benchmarks/fleet_throughput.py                       # 200 series, loop on 20
    python benchmarks/fleet_throughput.py --series 100 --loop-series 10 --draws 200

Each series is a local level plus ``Seasonal(12)`` (three standard deviations), length 120,
simulated with a fixed seed. Measured, each on a fresh start:

* ``loop``: a plain Python loop, ``pm.sample(model=model_fn(frame), ...)`` per series in this
  process, with PyMC's default sampler (nutpie when installed) and with
  ``nuts_sampler="pymc"``; on ``--loop-series`` series (the loop compiles every model, so it
  is slow; its throughput per series does not depend on how many are run);
* ``fit_many``: on a ``LocalCluster`` of 1 and of 2 single-threaded worker processes started
  beforehand (cluster start-up not timed), all ``--series`` series, into a fresh store.

Series per minute = series / wall time. The results are written to
``benchmarks/results/<date>_fleet_throughput_<commit>.txt`` with the command, the commit and
the machine's load average. Timings are noisy on a shared machine; nothing is asserted.
"""

import argparse
import datetime
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import pymc as pm  # noqa: E402

import pymc_dlm as dlm  # noqa: E402


def simulate(n_series, length, seed=0):
    rng = np.random.default_rng(seed)
    frames = []
    for i in range(n_series):
        level = 10 + np.cumsum(rng.normal(0, rng.uniform(0.05, 0.3), length))
        pattern = rng.normal(0, 1, 12)
        seasonal = np.tile(pattern - pattern.mean(), length // 12 + 1)[:length]
        y = level + seasonal + rng.normal(0, rng.uniform(0.2, 0.8), length)
        frames.append(pd.DataFrame({"series": i, "t": np.arange(length), "y": y}))
    return pd.concat(frames, ignore_index=True)


def model_fn(frame):
    with pm.Model() as model:
        level = pm.HalfNormal("sigma_level", 0.5)
        seasonal = pm.HalfNormal("sigma_seasonal", 0.2)
        obs = pm.HalfNormal("sigma_obs", 1.0)
        dlm.DLM(
            "y",
            dlm.LocalLevel(level) + dlm.Seasonal(12, seasonal),
            sigma_obs=obs,
            observed=frame["y"].to_numpy(),
        )
    return model


def run_loop(data, n, sample_kwargs, nuts_sampler):
    keys = list(dict.fromkeys(data["series"]))[:n]
    start = time.perf_counter()
    for key in keys:
        frame = data[data["series"] == key]
        kwargs = dict(sample_kwargs, progressbar=False, random_seed=int(key))
        if nuts_sampler:
            kwargs["nuts_sampler"] = nuts_sampler
        pm.sample(model=model_fn(frame), **kwargs)
    return n, time.perf_counter() - start


def run_fleet(data, workers, sample_kwargs):
    from distributed import Client, LocalCluster

    store = Path(tempfile.mkdtemp(prefix="fleet_bench_")) / "fits.zarr"
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster) as client,
    ):
        start = time.perf_counter()
        summary = dlm.fit_many(
            data,
            model_fn,
            by="series",
            store=str(store),
            client=client,
            random_seed=1,
            sample_kwargs=sample_kwargs,
            progressbar=False,
        )
        elapsed = time.perf_counter() - start
    shutil.rmtree(store.parent, ignore_errors=True)
    failed = int((summary["status"] != "ok").sum())
    return len(summary), elapsed, failed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=200)
    parser.add_argument("--loop-series", type=int, default=20)
    parser.add_argument("--length", type=int, default=120)
    parser.add_argument("--draws", type=int, default=250)
    parser.add_argument("--tune", type=int, default=250)
    parser.add_argument("--chains", type=int, default=2)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args()

    data = simulate(args.series, args.length)
    sample_kwargs = {"draws": args.draws, "tune": args.tune, "chains": args.chains, "cores": 1}
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
        cwd=HERE,
    ).stdout.strip()
    lines = [
        f"# fit_many throughput, {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        "",
        f"command: python {' '.join(sys.argv)}",
        f"commit: {commit}{' (with uncommitted changes)' if dirty else ''}",
        f"machine: {platform.platform()}, {os.cpu_count()} cores",
        f"Python {platform.python_version()}, pymc {pm.__version__}",
        f"load average before: {os.getloadavg()}",
        f"series: local level + Seasonal(12), length {args.length}; pm.sample {sample_kwargs}",
        "",
        "| run | series | wall (s) | series/min | per worker |",
        "|---|---|---|---|---|",
    ]
    results = {}

    def record(name, n, elapsed, workers=1, note=""):
        rate = 60 * n / elapsed
        results[name] = rate
        row = f"| {name} | {n} | {elapsed:.1f} | {rate:.2f} | {rate / workers:.2f} |{note}"
        lines.append(row)
        print(row, flush=True)

    for sampler in (None, "pymc"):
        n, elapsed = run_loop(data, args.loop_series, sample_kwargs, sampler)
        record(f"loop, pm.sample ({sampler or 'default sampler'})", n, elapsed)
    for workers in [int(w) for w in args.workers.split(",")]:
        n, elapsed, failed = run_fleet(data, workers, sample_kwargs)
        note = f" {failed} failed" if failed else ""
        record(f"fit_many, {workers} worker(s)", n, elapsed, workers, note)

    lines += ["", f"load average after: {os.getloadavg()}", ""]
    best_loop = max(v for k, v in results.items() if k.startswith("loop"))
    one = results.get("fit_many, 1 worker(s)")
    two = results.get("fit_many, 2 worker(s)")
    if one:
        lines.append(f"fit_many with 1 worker / fastest loop: {one / best_loop:.2f}x (target 3x)")
    if one and two:
        lines.append(f"2 workers / 1 worker: {two / one:.2f}x (target 1.7x)")
    text = "\n".join(lines) + "\n"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{datetime.date.today():%Y-%m-%d}_fleet_throughput_{commit}.txt"
    (out / name).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
