"""Steady-state route of the fused gradient kernel: time per call with and without it.

The same series and model twice: with a missing value at the first step (the covariance
settles and the steady steps run) and at the last step (no steady step can follow a missing
value). Prints microseconds per call of ``loglik_grad_kernel`` and the first steady step.
Usage: ``python benchmarks/steady_state.py``.
"""

import time

import numpy as np

from pymc_dlm.kalman.fused import kernels as K
from pymc_dlm.kalman.fused.records import Inputs

rng = np.random.default_rng(0)


def case(n_name, T, F, G, Wf, sd, C0):
    n = G.shape[0]
    y = np.cumsum(rng.normal(size=T))
    res = {}
    for label, pos in (("steady", 0), ("no steady", T - 1)):
        yy = y.copy()
        yy[pos] = np.nan
        a = (
            yy.reshape(1, T, 1),
            F[None, None],
            G[None, None],
            Wf[None, None],
            np.full((1, 1, 1), sd),
            np.zeros((1, n)),
            C0[None],
            np.zeros((1, n, 0)),
        )
        need = np.array([False, False, False, True, True, False, False, False])
        g = np.ones(1)
        K.loglik_grad_kernel(Inputs(*a), g, need)
        N = max(10, int(2e4 / T))
        t0 = time.perf_counter()
        for _ in range(N):
            K.loglik_grad_kernel(Inputs(*a), g, need)
        res[label] = (time.perf_counter() - t0) / N * 1e6
        res[label + " t_ss"] = int(K.steady_start(Inputs(*a))[0])
    print(n_name, T, {k: round(v, 1) for k, v in res.items()})


case(
    "local level",
    1000,
    np.ones((1, 1)),
    np.ones((1, 1)),
    np.full((1, 1), 0.5),
    1.0,
    np.full((1, 1), 3.0),
)
G = np.array([[1.0, 1.0], [0, 1]])
case("local linear trend", 1000, np.array([[1.0, 0]]), G, np.diag([0.5, 0.1]), 1.0, 3 * np.eye(2))
n = 5
G = np.zeros((n, n))
G[0, 0] = G[0, 1] = G[1, 1] = 1
G[2, 2:] = -1
G[3, 2] = G[4, 3] = 1
case(
    "trend + seasonal(4)",
    1000,
    np.array([[1.0, 0, 1, 0, 0]]),
    G,
    np.diag([0.5, 0.1, 0.3, 0, 0]),
    1.0,
    3 * np.eye(n),
)
