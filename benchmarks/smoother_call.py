"""Time of ``kalman_smoother`` and of the FFBS kernel at fixed values, minimum over rounds.

A before/after check of a change to the smoother or FFBS kernels without the graph
compilation that ``sample_states`` does at every call (``postprocess_call.py``): run it once
per checkout, alternating (``PYTHONPATH=<checkout> python benchmarks/smoother_call.py
LABEL``). Two systems with fixed numbers and simulated data (seed 0): a local linear trend
with ``Seasonal(12)`` (13 states, T = 1000) and a regression on 5 random-walk coefficients
(T = 500), each with a proper prior. Timed, 15 rounds after two warm-up calls:
``pymc_dlm.kalman_smoother`` (the kernels' moments and their backward pass) and
``kalman.fused.states.ffbs_kernel`` on 50 copies of the system (one joint draw each).

Run as ``python benchmarks/smoother_call.py LABEL``; prints one line per function.
"""

import sys
import time

import numpy as np
import pytensor.tensor as pt

import pymc_dlm as dlm
from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.fused.states import ffbs_kernel

ROUNDS = 15
COPIES = 50


def _cases():
    rng = np.random.default_rng(0)
    T = 1000
    y = np.cumsum(rng.normal(size=T)) + np.sin(np.arange(T) * 2 * np.pi / 12)
    trend = dlm.LocalLinearTrend(0.1, 0.01, m0=[0.0, 0.0], C0=[10.0, 1.0]) + dlm.Seasonal(
        12, 0.05, m0=np.zeros(11), C0=1.0
    )
    X = rng.normal(size=(500, 5))
    yb = (X * np.cumsum(rng.normal(0, 0.1, (500, 5)), axis=0)).sum(1) + rng.normal(size=500)
    regression = dlm.Regression(X, sigma=0.1, m0=np.zeros(5), C0=1.0)
    return {
        "trend+seasonal T=1000": (trend, y, 0.5),
        "5 RW coefs T=500": (regression, yb, 1.0),
    }, rng


def _minimum(call):
    call()
    call()
    times = []
    for _ in range(ROUNDS):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return min(times), float(np.median(times))


def _ffbs_call(component, data, sd, rng):
    ss = component.statespace
    values = fixed_filter.numeric_system(ss, pt.as_tensor(np.array([sd])))
    n = values["G"].shape[-1]
    canon, _, _ = fixed_filter.kernel_inputs(
        values, data[:, None], time_varying=ss.time_varying, diffuse=np.zeros(n, dtype=bool)
    )
    B, T, _ = canon[0].shape
    canon = [np.ascontiguousarray(np.repeat(c, COPIES, 0)) if c.shape[0] == B else c
             for c in canon]  # fmt: skip
    eps_f, eps_s = rng.normal(size=(COPIES, T, n)), rng.normal(size=(COPIES, T, n))
    return lambda: ffbs_kernel(Inputs(*canon), eps_f, eps_s)


def main():
    label = sys.argv[1] if len(sys.argv) > 1 else "run"
    cases, rng = _cases()
    for title, make in (
        ("kalman_smoother", lambda c, y, s: lambda: dlm.kalman_smoother(c, y, sigma_obs=s)),
        (f"ffbs_kernel x{COPIES}", lambda c, y, s: _ffbs_call(c, y, s, rng)),
    ):
        parts = []
        for name, (component, data, sd) in cases.items():
            best, median = _minimum(make(component, data, sd))
            parts.append(f"{name}: min {best * 1e3:.2f} ms, median {median * 1e3:.2f} ms")
        print(label, title, "; ".join(parts), flush=True)


if __name__ == "__main__":
    main()
