"""Log-density and gradient of the Laplace (Poisson) likelihood against the Gaussian DLM.

The van-drivers model of Durbin & Koopman (2012, §14.5): ``VanKilled ~ law + level +
seasonal(12)`` on the 192 months of R's ``Seatbelts`` (``notebooks/data/seatbelts_van.csv``
or ``../shared/data/seatbelts_van.csv``). Structure on both sides: ``LocalLevel(sigma)`` +
``Seasonal(12, 0.0)`` + ``Regression(law, sigma=0.0)`` (13 states, diffuse start).

* ``poisson``: ``family="poisson"`` on the counts, one free variable (``sigma``,
  ``pm.HalfNormal(0.1)``): the Laplace log-likelihood of ``pymc_dlm.laplace.loglik`` (the mode
  found by the approximating Gaussian model, each search starting from the previous mode,
  and three Gaussian log-likelihoods in the fused kernels for the value and exact gradient).
* ``gaussian``: the same components on log(VanKilled + 1) with ``sigma_obs`` free
  (``pm.HalfNormal(1)``), two free variables: the fused kernels.

Measured as PyMC's NUTS calls it (``harness.nuts_function``), at a cycle of 50 points around
the initial point (jittered by N(0, 0.05) on the unconstrained scale, the same points for
both), so that the Laplace side's warm start is not flattered by repeating one point (the
cycle is longer than the node's memory of eight searches, so no point is found there again):
``--repeat`` rounds, each timing a block of ``--block-time`` seconds of each function in
turn; reported the median seconds per call and the median of the per-round ratios.

Usage: ``python benchmarks/count_speed.py [--repeat 9] [--block-time 0.5] [--out DIR]``.
Writes ``DIR/<date>_count_speed_<commit>.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import harness  # noqa: E402


def _data():
    for path in (HERE.parent / "notebooks/data/seatbelts_van.csv",
                 HERE.parent.parent / "shared/data/seatbelts_van.csv"):  # fmt: skip
        if path.exists():
            table = np.genfromtxt(path, delimiter=",", names=True)
            return table["VanKilled"].astype(float), table["law"].astype(float)
    raise FileNotFoundError("seatbelts_van.csv not found")


def build(kind):
    """The PyMC model of one side."""
    import pymc as pm

    import pymc_dlm as dlm

    y, law = _data()
    with pm.Model() as model:
        if kind == "poisson":
            sigma = pm.HalfNormal("sigma", 0.1)
            obs = dict(family="poisson")
            data = y
        else:
            sigma = pm.HalfNormal("sigma", 0.1)
            obs = dict(sigma_obs=pm.HalfNormal("sigma_obs", 1.0))
            data = np.log(y + 1.0)
        components = (
            dlm.LocalLevel(sigma) + dlm.Seasonal(12, 0.0) + dlm.Regression(law[:, None], sigma=0.0)
        )
        dlm.DLM("van", components, observed=data, **obs)
    return model


def stamp():
    """The checkout's commit (short) and the time now (UTC)."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=HERE.parent).stdout.strip()  # fmt: skip
    return commit, datetime.datetime.now(datetime.timezone.utc)


def finish(lines, out_dir, name):
    """Add the load average, print the report and write it to ``out_dir/name``."""
    lines.append(f"\nLoad average at the end (1, 5, 15 min): {os.getloadavg()}")
    text = "\n".join(lines) + "\n"
    print(text)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text)


def _points(q, n=50, seed=0):
    rng = np.random.default_rng(seed)
    return [np.ascontiguousarray(q + rng.normal(0, 0.05, q.shape)) for _ in range(n)]


def _block(call, points, seconds):
    count, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        call(points[count % len(points)])
        count += 1
    return (time.perf_counter() - t0) / count


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--block-time", type=float, default=0.5)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    sides = {}
    for kind in ("poisson", "gaussian"):
        t0 = time.perf_counter()
        call, q = harness.nuts_function(build(kind))
        pts = _points(q)
        for p in pts[:5]:
            call(p)
        sides[kind] = (call, pts, time.perf_counter() - t0)
    times = {k: [] for k in sides}
    ratios = []
    for r in range(args.repeat):
        order = list(sides)[r % 2 :] + list(sides)[: r % 2]
        got = {k: _block(sides[k][0], sides[k][1], args.block_time) for k in order}
        for k, v in got.items():
            times[k].append(v)
        ratios.append(got["poisson"] / got["gaussian"])
    commit, now = stamp()
    lines = [
        f"# Laplace (Poisson) against Gaussian log-density + gradient, van drivers (T = 192, "
        f"13 states)\n\n{now:%Y-%m-%d %H:%M} UTC, commit {commit}, "
        f"`python benchmarks/count_speed.py --repeat {args.repeat} --block-time "
        f"{args.block_time}`\n",
        "| side | median per call | build + compile + first calls |",
        "|---|---|---|",
    ]
    for k in sides:
        lines.append(f"| {k} | {statistics.median(times[k]) * 1e3:.3f} ms | {sides[k][2]:.1f} s |")
    lines.append(
        f"\nMedian of per-round ratios poisson / gaussian: **{statistics.median(ratios):.1f}x**"
    )
    finish(lines, args.out, f"{now:%Y-%m-%d}_count_speed_{commit}.md")


if __name__ == "__main__":
    main()
