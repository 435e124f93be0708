"""Time of ``sample_states`` and ``forecast`` over a fixed set of draws, minimum over rounds.

A before/after check of a change to the post-processing kernels (``ffbs_into``,
``forecast_into`` and their callers), as ``per_call.py`` is for the log-density: run it once
per checkout, alternating (``PYTHONPATH=<checkout> python benchmarks/postprocess_call.py
LABEL``), and compare the minima. For each benchmark model of ``--models``, a posterior of
``--draws`` draws (one chain) is taken from the prior (``pm.sample_prior_predictive``, its
``prior`` group used as the posterior), so no NUTS run is needed and both checkouts see the
same draws; one warm-up call each, then ``--rounds`` rounds, each timing one
``sample_states`` (filtered and smoothed states) and one 12-step ``forecast`` over every draw
(no forecast for a model with a time-varying input, which needs its future values).

Run as ``python benchmarks/postprocess_call.py LABEL [--models 1 2 3] [--draws 100]
[--rounds 7]``; one line per model.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from models import build_ours, simulate  # noqa: E402


def _posterior(model, draws):
    import pymc as pm
    import xarray as xr

    with model:
        prior = pm.sample_prior_predictive(draws=draws, random_seed=1)
    return xr.DataTree.from_dict({"posterior": prior["prior"].to_dataset()})


def timings(k, draws, rounds):
    """Lists of seconds per call of ``sample_states`` and ``forecast`` for model ``k``."""
    import pymc_dlm as dlm

    model = build_ours(k, simulate(k))
    idata = _posterior(model, draws)

    def states():
        dlm.sample_states(idata, model, random_seed=2, progressbar=False)

    def ahead():
        dlm.forecast(idata, model, steps=12, random_seed=3, progressbar=False)

    calls = {"sample_states": states, "forecast": ahead}
    states()  # warm-up: compiles the per-draw functions
    try:
        ahead()
    except ValueError:  # a time-varying input without future values (model 3's F)
        del calls["forecast"]
    out = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            out[name].append(time.perf_counter() - t0)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("label")
    p.add_argument("--models", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--draws", type=int, default=100)
    p.add_argument("--rounds", type=int, default=7)
    args = p.parse_args()
    for k in args.models:
        parts = [
            f"model {k} {name}: min {min(values) * 1e3:.1f} ms, "
            f"median {statistics.median(values) * 1e3:.1f} ms"
            for name, values in timings(k, args.draws, args.rounds).items()
        ]
        print(args.label, "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
