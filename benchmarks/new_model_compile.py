"""Seconds from a new model to its first log-density and gradient, warm caches.

A user who changes a model (another series length, another prior) compiles a new graph;
the kernels' own compile is cached per machine. Each cell is a fresh process that builds a
model on a series of a length no earlier run used (so pytensor's cache of the graph cannot
answer), then times ``model.logp_dlogp_function`` and its first call. The kernels' caches
are warmed first by one process per cell.

Models: trend + ``Seasonal(12)`` with discount factors and a learned variance (proper prior
C0 = 2, or an exact diffuse start), and the same structure with fixed W (HalfNormal
standard deviations).

Run as ``python benchmarks/new_model_compile.py [--runs K] [--out DIR]``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CELLS = ("discounted proper", "discounted diffuse", "fixed proper", "fixed diffuse")


def _worker(cell, T):
    import numpy as np
    import pymc as pm

    import pymc_dlm as dlm

    rng = np.random.default_rng(T)
    y = np.cumsum(rng.normal(size=T)) + np.sin(np.arange(T) * np.pi / 6) + rng.normal(size=T)
    kind, start = cell.split()
    init = {} if start == "diffuse" else {"C0": 2.0}
    t = time.perf_counter()
    with pm.Model() as model:
        if kind == "discounted":
            d = pm.Beta("d", 20.0, 2.0)
            n0 = pm.Gamma("n0", 2.0, 0.5)
            S0 = pm.Gamma("S0", 2.0, 0.5)
            system = dlm.LocalLinearTrend(discount=d, m0=[0.0, 0.0], **init) + dlm.Seasonal(
                12, discount=d, m0=np.zeros(11), **init
            )
            dlm.DLM("y", system, obs_var=dlm.LearnedVariance(n0, S0), observed=y)
        else:
            s = pm.HalfNormal("s", 1.0)
            e = pm.HalfNormal("e", 1.0)
            system = dlm.LocalLinearTrend(s, s, m0=[0.0, 0.0], **init) + dlm.Seasonal(
                12, sigma=s, m0=np.zeros(11), **init
            )
            dlm.DLM("y", system, sigma_obs=e, observed=y)
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    fn(np.full(len(model.value_vars), 0.1))  # every free variable is a scalar
    print("NEW_MODEL_JSON:" + json.dumps({"seconds": time.perf_counter() - t}), flush=True)


def _run(cell, T):
    run = subprocess.run(
        [sys.executable, __file__, "--worker", cell, str(T)], capture_output=True, text=True
    )
    if run.returncode != 0:
        raise RuntimeError(run.stderr[-3000:])
    line = [x for x in run.stdout.splitlines() if x.startswith("NEW_MODEL_JSON:")][-1]
    return json.loads(line.split(":", 1)[1])["seconds"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--runs", type=int, default=2, help="new models per cell (default 2)")
    p.add_argument("--out", type=Path, help="write a Markdown report into this directory")
    args = p.parse_args()
    if args.worker:
        return _worker(args.worker[0], int(args.worker[1]))
    base = 200 + int(time.time()) % 100000 * 10  # series lengths no earlier run used
    results = {}
    for i, cell in enumerate(CELLS):
        _run(cell, 150 + i)  # warm the kernels' caches
        results[cell] = [_run(cell, base + 10 * k + i) for k in range(args.runs)]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        "# New model to first log-density and gradient (warm caches)\n",
        f"`python benchmarks/new_model_compile.py --runs {args.runs}`, "
        f"{time.strftime('%Y-%m-%d')}, commit {commit}, {os.cpu_count()} cores. Seconds "
        "per fresh process, one new series length each.\n",
        "| model | " + " | ".join(f"run {k + 1}" for k in range(args.runs)) + " |",
        "|---|" + "---|" * args.runs,
    ]
    for cell, times in results.items():
        lines.append(f"| {cell} | " + " | ".join(f"{t:.1f}" for t in times) + " |")
    report = "\n".join(lines) + "\n"
    print(report)
    if args.out:
        (args.out / f"{time.strftime('%Y-%m-%d')}_new_model_compile_{commit}.md").write_text(
            report
        )


if __name__ == "__main__":
    main()
