"""Per-call time of the log-density and gradient of benchmark models, minimum over rounds.

A small, low-noise check of the kernels' own speed for before/after comparisons of a kernel
change: run it once per checkout, alternating (``PYTHONPATH=<checkout> python
benchmarks/per_call.py LABEL``), and compare the minima. Each model's
``logp_dlogp_function`` is called at the initial point as NUTS calls it
(``harness.nuts_function``): 50 warm-up calls, then ``--rounds`` batches lasting
``--seconds`` in all (``harness.time_calls``); the minimum and the median of the batches'
means are printed on one line.

Run as ``python benchmarks/per_call.py LABEL [--models 2 3 4] [--rounds 15] [--seconds 3]``.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import nuts_function, time_calls  # noqa: E402
from models import build_ours, simulate  # noqa: E402


def per_call(k, rounds, seconds):
    """(minimum, median) seconds per call of model ``k``'s log-density and gradient."""
    call, q = nuts_function(build_ours(k, simulate(k)))
    for _ in range(50):
        call(q)
    stats = time_calls(call, q, min_time=seconds, repeat=rounds)
    return stats["logp_grad_min_s"], stats["logp_grad_s"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("label")
    p.add_argument("--models", type=int, nargs="+", default=[2, 3, 4])
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per model")
    args = p.parse_args()
    parts = []
    for k in args.models:
        best, median = per_call(k, args.rounds, args.seconds)
        parts.append(f"model {k}: min {best * 1e6:.1f} us, median {median * 1e6:.1f} us")
    print(args.label, "; ".join(parts))


if __name__ == "__main__":
    main()
