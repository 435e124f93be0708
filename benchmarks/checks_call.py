"""Time of the model checks over many draws: replicates, residuals and LOO terms.

A before/after check of the post-processing behind predictive checks, run once per checkout
(``PYTHONPATH=<checkout> python benchmarks/checks_call.py LABEL``) and compared by minima.
Model: ``LocalLinearTrend(s, 0.1) + Seasonal(12, 0.2)`` with ``s`` a free variable (13
states, exact diffuse start), a simulated series of length ``T`` (fixed seed), and a
posterior of ``--draws`` draws (4 chains) all holding s = 0.5, so that both checkouts see the
same draws. For each T, one warm-up call each (compiles, caches), then ``--rounds`` rounds
timing ``posterior_predictive(kind="one_step")``, ``posterior_predictive(kind="smoothed")``,
``posterior_residuals`` and ``sample_states(log_likelihood=True)``.

Run as ``python benchmarks/checks_call.py LABEL [--draws 4000] [--rounds 3] [--T 100 1000]``;
one line per T and call, the minimum and median in seconds.
"""

import argparse
import statistics
import time


def _case(T, draws):
    import numpy as np
    import pymc as pm
    import xarray as xr

    import pymc_dlm as dlm

    rng = np.random.default_rng(1)
    y = np.cumsum(rng.normal(size=T)) + np.tile(np.arange(12.0), T // 12 + 1)[:T]
    with pm.Model() as model:
        s = pm.HalfNormal("s", 1.0)
        components = dlm.LocalLinearTrend(s, 0.1) + dlm.Seasonal(12, 0.2)
        dlm.DLM("y", components, observed=y, sigma_obs=1.0)
    chains = 4
    values = np.full((chains, draws // chains), 0.5)
    post = xr.Dataset(
        {"s": (("chain", "draw"), values)},
        coords={"chain": np.arange(chains), "draw": np.arange(draws // chains)},
    )
    return model, xr.DataTree.from_dict({"posterior": post})


def _calls():
    import pymc_dlm as dlm

    quiet = {"progressbar": False}
    return {
        "one_step replicates": lambda m, i: dlm.posterior_predictive(
            i, m, kind="one_step", **quiet
        ),
        "smoothed replicates": lambda m, i: dlm.posterior_predictive(
            i, m, kind="smoothed", **quiet
        ),
        "posterior_residuals": lambda m, i: dlm.posterior_residuals(i, m, **quiet),
        "sample_states(log_likelihood)": lambda m, i: dlm.sample_states(
            i, m, log_likelihood=True, **quiet
        ),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label")
    parser.add_argument("--draws", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--T", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    for T in args.T:
        model, idata = _case(T, args.draws)
        for name, call in _calls().items():
            call(model, idata)  # warm-up: compiles and caches
            times = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                call(model, idata)
                times.append(time.perf_counter() - start)
            print(f"{args.label}  T={T:5d}  {name:30s}  min {min(times):7.2f} s  "
                  f"median {statistics.median(times):7.2f} s", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
