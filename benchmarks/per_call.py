"""Per-call time of the log-density and gradient of benchmark models, minimum over rounds.

A small, low-noise check of the kernels' own speed for before/after comparisons of a kernel
change: run it once per checkout, alternating (``PYTHONPATH=<checkout> python
benchmarks/per_call.py LABEL``), and compare the minima. Each model's
``logp_dlogp_function`` is called at the initial point as NUTS calls it: 50 warm-up calls,
then ``--rounds`` rounds of ``--calls`` calls; the minimum and the median of the rounds'
means are printed on one line.

Run as ``python benchmarks/per_call.py LABEL [--models 2 3 4] [--rounds 15] [--calls 200]``.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import build_ours, simulate  # noqa: E402


def per_call(k, rounds, calls):
    """(minimum, median) seconds per call of model ``k``'s log-density and gradient."""
    model = build_ours(k, simulate(k))
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    point = model.initial_point()
    x = np.concatenate([np.ravel(point[v.name]) for v in fn._grad_vars])
    for _ in range(50):
        fn(x)
    means = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        means.append((time.perf_counter() - start) / calls)
    return min(means), float(np.median(means))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("label")
    p.add_argument("--models", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args()
    parts = []
    for k in args.models:
        best, median = per_call(k, args.rounds, args.calls)
        parts.append(f"model {k}: min {best * 1e6:.1f} us, median {median * 1e6:.1f} us")
    print(args.label, "; ".join(parts))


if __name__ == "__main__":
    main()
