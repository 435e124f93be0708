"""The samplers' own floor: ``pm.sample`` on a two-parameter model with no DLM in it.

Same call and settings as the benchmark's NUTS cells (``harness.measure_sample``: 2 chains x
1000 draws after 1000 tuning steps, cores=2, progress bar and convergence checks off), on

    s1, s2 ~ HalfNormal(200);  y1 (50 values) ~ N(0, s1);  y2 (50 values) ~ N(0, s2),

whose log-density costs a few microseconds. Whatever this takes, no model can take less with
the same sampler on the same machine: it bounds what "end-to-end NUTS k times faster than the
peer" can mean. Each repetition runs in a fresh process, after one warm-up process that fills
the on-disk caches. Prints one line per (sampler, repetition) and the medians.

Usage: ``python benchmarks/sampler_floor.py [--repeat 3] [--samplers pymc nutpie]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

WORKER = """
import json, sys, warnings
warnings.filterwarnings("ignore")
sys.path.insert(0, {here!r})
import numpy as np
import pymc as pm
import harness
harness.quiet()
rng = np.random.default_rng(20261125)
with pm.Model() as model:
    s1 = pm.HalfNormal("s1", 200.0)
    s2 = pm.HalfNormal("s2", 200.0)
    pm.Normal("y1", 0.0, s1, observed=rng.normal(0.0, 100.0, 50))
    pm.Normal("y2", 0.0, s2, observed=rng.normal(0.0, 150.0, 50))
out, _ = harness.measure_sample(
    model, sampler={sampler!r}, draws=1000, tune=1000, chains=2, cores=2, seed=1234
)
print("FLOOR_JSON:" + json.dumps(out))
"""


def run_once(sampler):
    """Wall time and ESS of one fresh-process ``pm.sample`` of the two-parameter model."""
    code = WORKER.format(here=str(HERE), sampler=sampler)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("FLOOR_JSON:"))
    return json.loads(line.removeprefix("FLOOR_JSON:"))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--samplers", nargs="+", default=["pymc", "nutpie"])
    args = p.parse_args(argv)
    for sampler in args.samplers:
        run_once(sampler)  # warm-up: on-disk caches
        walls = []
        for k in range(args.repeat):
            out = run_once(sampler)
            walls.append(out["wall_s"])
            ess = out["min_bulk_ess"]
            print(f"{sampler} run {k + 1}: {out['wall_s']:.2f} s, min bulk ESS {ess:.0f}")
        mid, lo, hi = statistics.median(walls), min(walls), max(walls)
        print(f"{sampler}: median {mid:.2f} s (min {lo:.2f}, max {hi:.2f})")


if __name__ == "__main__":
    main()
