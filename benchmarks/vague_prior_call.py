"""Post-processing under a vague proper prior: `sample_states`, `forecast` and the smoother.

A proper prior C0 = 1e7 (R ``dlm``'s default) against an observation variance of 1e-3 makes a
covariance-form filter lose about 7 digits, so the kernels take square-root steps there (the
accuracy guard of the log-likelihood). This script times the three calls on such a model:
local linear trend + ``Seasonal(4)``, T = ``--steps``, a posterior of ``--draws`` draws of the
four standard deviations (log-normal around the values that simulated the data, all in the
vague regime). One warm-up call each, then ``--rounds`` rounds; the minimum per call is
printed. Run it once per checkout, alternating (``PYTHONPATH=<checkout> python
benchmarks/vague_prior_call.py LABEL``), and compare.
"""

import argparse
import sys
import time

import numpy as np

S_OBS, S_LEVEL, S_SLOPE, S_SEAS = np.sqrt(1e-3), 1e-2, 1e-3, 1e-2
C0 = 1e7


def _series(T, seed=60):
    rng = np.random.default_rng(seed)
    level, slope = 10.0, 0.1
    season = [1.0, -0.5, 0.2]
    y = np.empty(T)
    for t in range(T):
        slope += S_SLOPE * rng.normal()
        level += slope + S_LEVEL * rng.normal()
        new = -sum(season) + S_SEAS * rng.normal()
        season = [new, *season[:2]]
        y[t] = level + new + S_OBS * rng.normal()
    return y


def _model(y):
    import pymc as pm

    import pymc_dlm as dlm

    with pm.Model() as model:
        s_level = pm.HalfNormal("s_level", 1.0)
        s_slope = pm.HalfNormal("s_slope", 1.0)
        s_seas = pm.HalfNormal("s_seas", 1.0)
        s_obs = pm.HalfNormal("s_obs", 1.0)
        comp = dlm.LocalLinearTrend(s_level, s_slope, m0=0.0, C0=C0)
        comp = comp + dlm.Seasonal(4, s_seas, m0=0.0, C0=C0)
        dlm.DLM("y", comp, sigma_obs=s_obs, observed=y)
    return model, comp


def _posterior(draws):
    import xarray as xr

    rng = np.random.default_rng(7)
    values = {"s_level": S_LEVEL, "s_slope": S_SLOPE, "s_seas": S_SEAS, "s_obs": S_OBS}
    post = {
        k: (("chain", "draw"), v * np.exp(0.2 * rng.normal(size=(1, draws))))
        for k, v in values.items()
    }
    return xr.DataTree.from_dict({"posterior": xr.Dataset(post)})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("label")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    import pymc_dlm as dlm

    y = _series(args.steps)
    model, comp = _model(y)
    idata = _posterior(args.draws)
    fixed = dlm.LocalLinearTrend(S_LEVEL, S_SLOPE, m0=0.0, C0=C0) + dlm.Seasonal(
        4, S_SEAS, m0=0.0, C0=C0
    )
    calls = {
        "sample_states": lambda: dlm.sample_states(
            idata, model, random_seed=2, progressbar=False, log_likelihood=True
        ),
        "forecast": lambda: dlm.forecast(idata, model, steps=12, random_seed=3, progressbar=False),
        "kalman_smoother": lambda: dlm.kalman_smoother(fixed, y, sigma_obs=S_OBS),
    }
    first = {}
    for name, call in calls.items():
        t0 = time.perf_counter()
        call()
        first[name] = time.perf_counter() - t0
    best = {name: np.inf for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            best[name] = min(best[name], time.perf_counter() - t0)
    print(f"{args.label}: T = {args.steps}, {args.draws} draws, minimum of {args.rounds} rounds")
    for name in calls:
        print(f"  {name:16s} {1e3 * best[name]:9.1f} ms   (first call {first[name]:.1f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
