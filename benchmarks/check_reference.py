"""Verify the numba floor (``numba_reference.py``) before trusting it as a yardstick.

Checks, for models 1 and 2 on the benchmark data and at a few parameter points:

* the log-likelihood equals statsmodels' Kalman filter with the contract's mapping
  (``initialize_known(a1 = G m0, P1 = G C0 G' + W)``, ``tolerance = 0`` so no steady-state
  shortcut) to 1e-9 relative;
* the gradient (wrt log sigma) equals Richardson-extrapolated central finite differences of the
  numba log-likelihood (steps 1e-3 and 5e-4 in log sigma, error O(h^4)) to 1e-6 relative to the
  gradient's norm (plain central differences are limited by rounding in the log-likelihood);
* one missing-value case (NaNs) for both.

Run ``python benchmarks/check_reference.py``; exit status 1 on any failure.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import models  # noqa: E402
import numba_reference as nr  # noqa: E402

LL_RTOL = 1e-9
GRAD_RTOL = 1e-6
FD_STEP = 1e-3


def statsmodels_loglik(y, F, G, w_diag, V, m0, C0):
    """Log-likelihood by statsmodels: a1 = G m0, P1 = G C0 G' + W, no steady-state tolerance."""
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    n = G.shape[0]
    W = np.diag(w_diag)
    mod = MLEModel(np.asarray(y, dtype=float), k_states=n, k_posdef=n)
    mod["design"] = F.reshape(1, n)
    mod["transition"] = G
    mod["selection"] = np.eye(n)
    mod["state_cov"] = W
    mod["obs_cov"] = np.array([[V]])
    mod.ssm.initialize_known(G @ m0, G @ C0 @ G.T + W)
    mod.ssm.tolerance = 0.0
    return float(mod.ssm.loglike())


def _fd_grad(f, log_sig):
    """Central differences in log sigma, Richardson-extrapolated: (4 D(h/2) - D(h)) / 3."""
    g = np.empty_like(log_sig)
    for i in range(log_sig.size):
        e = np.zeros_like(log_sig)
        e[i] = 1.0

        def central(h):
            return (f(np.exp(log_sig + h * e)) - f(np.exp(log_sig - h * e))) / (2 * h)

        g[i] = (4.0 * central(FD_STEP / 2) - central(FD_STEP)) / 3.0
    return g


def check_model(k, y, sigma_points):
    failures = []
    rows = []
    if k == 1:
        F = np.ones(1)
        G = np.eye(1)
        m0 = np.zeros(1)
        C0 = np.eye(1) * models.C0

        def numba_fn(s):
            ll, g0, g1 = nr.local_level_loglik_grad(y, s[0], s[1], 0.0, models.C0)
            return ll, np.array([g0, g1])

        def w_v(s):
            return np.array([s[0] ** 2]), s[1] ** 2
    else:
        ts = nr.TrendSeasonal(12, 0.0, models.C0)
        F, G, m0, C0 = ts.F, ts.G, ts.m0, ts.C0

        def numba_fn(s):
            return ts(y, s)

        def w_v(s):
            return ts.w_diag(s), s[3] ** 2

    for s in sigma_points:
        s = np.asarray(s, dtype=float)
        ll, grad = numba_fn(s)
        w, V = w_v(s)
        ll_sm = statsmodels_loglik(y, F, G, w, V, m0, C0)
        rel_ll = abs(ll - ll_sm) / abs(ll_sm)
        g_fd = _fd_grad(lambda z: numba_fn(z)[0], np.log(s))
        rel_g = np.max(np.abs(grad - g_fd)) / max(np.linalg.norm(g_fd), 1e-300)
        rows.append((k, s, ll, ll_sm, rel_ll, rel_g))
        if not rel_ll <= LL_RTOL:
            failures.append(f"model {k} sigma={s}: loglik rel error {rel_ll:.3e} > {LL_RTOL}")
        if not rel_g <= GRAD_RTOL:
            failures.append(f"model {k} sigma={s}: gradient rel error {rel_g:.3e} > {GRAD_RTOL}")
    return rows, failures


def main() -> int:
    y1 = models.load_data(1)["y"]
    y2 = models.load_data(2)["y"]
    y1_nan = y1.copy()
    y1_nan[[3, 40, 41, 99]] = np.nan
    y2_nan = y2.copy()
    y2_nan[[0, 17, 500, 501, 502, 999]] = np.nan
    cases = [
        (1, y1, [(40.0, 120.0), (5.0, 300.0), (150.0, 20.0)]),
        (1, y1_nan, [(40.0, 120.0)]),
        (2, y2, [(1.0, 0.02, 0.3, 2.0), (0.2, 0.5, 2.0, 0.7), (3.0, 0.001, 0.05, 5.0)]),
        (2, y2_nan, [(1.0, 0.02, 0.3, 2.0)]),
    ]
    failures = []
    print(
        f"{'model':>5} {'missing':>7} {'sigmas':<34} {'loglik (numba)':>20} {'statsmodels':>20}"
        f" {'rel err':>9} {'grad vs FD':>10}"
    )
    for k, y, pts in cases:
        rows, fails = check_model(k, y, pts)
        failures += fails
        for k_, s, ll, ll_sm, rel_ll, rel_g in rows:
            s_txt = ", ".join(f"{v:g}" for v in s)
            print(
                f"{k_:>5} {int(np.isnan(y).sum()):>7} {s_txt:<34} {ll:>20.10f} {ll_sm:>20.10f}"
                f" {rel_ll:>9.1e} {rel_g:>10.1e}"
            )
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures))
        return 1
    print(
        f"\nOK: loglik within {LL_RTOL:g} relative of statsmodels, "
        f"gradient within {GRAD_RTOL:g} of "
        "extrapolated central finite differences (relative to its norm)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
