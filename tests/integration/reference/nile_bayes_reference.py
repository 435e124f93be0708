r"""Exact posterior of the Nile local level model by numerical integration over (V, W).

Model (R ``dlm``'s conventions; Durbin & Koopman 2012, §2.2)::

    y_t     = θ_t + v_t,        v_t ~ N(0, V)
    θ_t     = θ_{t-1} + w_t,    w_t ~ N(0, W)         t = 1..100 (years 1871..1970)
    θ_0     ~ N(0, 1e7)
    V       ~ InverseGamma(2, 2e4)     (shape α, scale β: density ∝ V^{-α-1} exp(-β/V))
    W       ~ InverseGamma(2, 2e3)

Given (V, W) the states are Gaussian, so every posterior expectation is a two-dimensional
integral over (V, W):

.. math::

    p(V, W | y) \propto p(V)\,p(W)\,p(y | V, W), \qquad
    E[\theta_t | y] = \iint E[\theta_t | y, V, W]\; p(V, W | y)\, dV\, dW .

The marginal likelihood p(y | V, W) and the smoothed moments E[θ_t | y, V, W],
Var(θ_t | y, V, W) come from a scalar Kalman filter and Rauch-Tung-Striebel smoother written
below in plain numpy (Petris, Petrone & Campagnoli 2009, Prop. 2.2 and 2.4), vectorised over
the grid. Nothing here imports pymc_dlm or pytensor.

The integral is a midpoint rule on a uniform grid in (log V, log W), so the integrand carries
the Jacobian V·W. The box is chosen so that the log posterior density on its edges is more
than 30 below its maximum (the mass outside is negligible), which the script checks. The
script evaluates the rule on grids of 200², 400² and 800² points and on a wider box, and
stores the 800² result with the differences between them (the convergence check).

Run from the repository root::

    .venv/bin/python tests/integration/reference/nile_bayes_reference.py

It writes ``tests/integration/reference/nile_bayes_reference.json`` (about 20 s on 2 cores).

References
----------
Durbin & Koopman (2012), *Time Series Analysis by State Space Methods*, 2nd ed., §2.2.
Petris, Petrone & Campagnoli (2009), *Dynamic Linear Models with R*, §2.7 and §4.1.
"""

import json
import math
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NILE = HERE.parents[2] / "pymc_dlm" / "data" / "nile.csv"
OUT = HERE / "nile_bayes_reference.json"

PRIOR_V = (2.0, 2.0e4)  # InverseGamma(alpha, beta)
PRIOR_W = (2.0, 2.0e3)
M0, C0 = 0.0, 1.0e7
# Box in (log V, log W); see the edge check in ``main``.
LOG_V = (math.log(3.0e2), math.log(1.0e5))
LOG_W = (math.log(1.0e1), math.log(1.0e5))
WIDER_V = (math.log(1.0e2), math.log(3.0e5))
WIDER_W = (math.log(2.0), math.log(3.0e5))
YEARS_REPORTED = (1871, 1899, 1913, 1970)


def load_nile(path=NILE):
    """(years, flows) of the Nile, 1871-1970."""
    table = np.genfromtxt(path, delimiter=",", names=True)
    return table["year"].astype(int), table["flow"].astype(float)


def log_inverse_gamma(x, alpha, beta):
    """Log density of InverseGamma(alpha, beta) at x > 0."""
    return alpha * math.log(beta) - math.lgamma(alpha) - (alpha + 1) * np.log(x) - beta / x


def local_level_filter_smoother(y, V, W, m0=M0, C0=C0):
    """Kalman filter and RTS smoother of the local level model, vectorised over (V, W).

    Parameters
    ----------
    y : (T,) array
        Observations (no missing values).
    V, W : arrays broadcasting to a common shape ``B``
        Observation and level variances.

    Returns
    -------
    loglik : (B) array
        log p(y_1:T | V, W), the sum of log N(y_t; f_t, Q_t) with f_t = a_t, Q_t = R_t + V.
    smean, svar : (T, *B) arrays
        E[θ_t | y_1:T, V, W] and Var(θ_t | y_1:T, V, W).
    """
    V, W = np.broadcast_arrays(np.asarray(V, float), np.asarray(W, float))
    T = len(y)
    a = np.empty((T, *V.shape))
    R = np.empty_like(a)
    m = np.empty_like(a)
    C = np.empty_like(a)
    loglik = np.zeros(V.shape)
    m_prev, C_prev = np.full(V.shape, m0), np.full(V.shape, C0)
    for t in range(T):
        a[t] = m_prev  # G = 1
        R[t] = C_prev + W
        Q = R[t] + V
        e = y[t] - a[t]
        loglik -= 0.5 * (math.log(2 * math.pi) + np.log(Q) + e * e / Q)
        K = R[t] / Q
        m[t] = a[t] + K * e
        C[t] = R[t] * V / Q  # = R - R²/Q, written without cancellation
        m_prev, C_prev = m[t], C[t]
    smean = np.empty_like(m)
    svar = np.empty_like(C)
    smean[-1], svar[-1] = m[-1], C[-1]
    for t in range(T - 2, -1, -1):
        J = C[t] / R[t + 1]
        smean[t] = m[t] + J * (smean[t + 1] - a[t + 1])
        svar[t] = C[t] + J * J * (svar[t + 1] - R[t + 1])
    return loglik, smean, svar


def grid_posterior(y, n, log_v=LOG_V, log_w=LOG_W, rows_per_chunk=50):
    """Posterior moments by the midpoint rule on an n x n grid in (log V, log W).

    Returns a dict with the posterior means and standard deviations of V, W and of every
    θ_t, and ``edge_drop``: the maximum of the log posterior on the box minus its maximum
    on the box's edges (large means negligible mass outside).
    """
    du = (log_v[1] - log_v[0]) / n
    dw = (log_w[1] - log_w[0]) / n
    u = log_v[0] + du * (np.arange(n) + 0.5)
    w = log_w[0] + dw * (np.arange(n) + 0.5)
    Vg, Wg = np.exp(u), np.exp(w)
    T = len(y)
    logpost = np.empty((n, n))
    smeans, s2 = [], []
    for lo in range(0, n, rows_per_chunk):
        V = Vg[lo : lo + rows_per_chunk, None]
        ll, sm, sv = local_level_filter_smoother(y, V, Wg[None, :])
        logpost[lo : lo + rows_per_chunk] = (
            ll
            + log_inverse_gamma(V, *PRIOR_V)
            + np.log(V)  # Jacobian of V = exp(u)
            + log_inverse_gamma(Wg[None, :], *PRIOR_W)
            + np.log(Wg[None, :])
        )
        smeans.append(sm)
        s2.append(sv + sm * sm)
    smean = np.concatenate(smeans, axis=1)  # (T, n, n)
    s2nd = np.concatenate(s2, axis=1)
    peak = logpost.max()
    weight = np.exp(logpost - peak)
    weight /= weight.sum()
    edges = np.concatenate([logpost[0], logpost[-1], logpost[:, 0], logpost[:, -1]])
    Vm = (weight.sum(1) * Vg).sum()
    Wm = (weight.sum(0) * Wg).sum()
    V2 = (weight.sum(1) * Vg**2).sum()
    W2 = (weight.sum(0) * Wg**2).sum()
    level_mean = np.einsum("tij,ij->t", smean, weight)
    level_2nd = np.einsum("tij,ij->t", s2nd, weight)
    assert smean.shape == (T, n, n)
    return {
        "V_mean": Vm,
        "V_sd": math.sqrt(V2 - Vm**2),
        "W_mean": Wm,
        "W_sd": math.sqrt(W2 - Wm**2),
        "level_mean": level_mean,
        "level_sd": np.sqrt(level_2nd - level_mean**2),
        "edge_drop": float(peak - edges.max()),
        "log_evidence": float(peak + math.log(np.exp(logpost - peak).sum() * du * dw)),
    }


def _flat(res):
    """All reported numbers of a ``grid_posterior`` result as one vector."""
    return np.concatenate(
        [
            [res["V_mean"], res["V_sd"], res["W_mean"], res["W_sd"]],
            res["level_mean"],
            res["level_sd"],
        ]
    )


def max_rel_diff(a, b):
    """Largest relative difference over every reported number."""
    fa, fb = _flat(a), _flat(b)
    return float(np.max(np.abs(fa - fb) / np.abs(fb)))


def main():
    """Compute the reference, check convergence and the box, write the JSON."""
    years, y = load_nile()
    results = {n: grid_posterior(y, n) for n in (200, 400, 800)}
    wider = grid_posterior(y, 800, WIDER_V, WIDER_W)
    best = results[800]
    if best["edge_drop"] < 30:
        raise RuntimeError(f"box too small: edge log density only {best['edge_drop']} below peak")
    convergence = {
        "max_rel_diff_200_vs_800": max_rel_diff(results[200], best),
        "max_rel_diff_400_vs_800": max_rel_diff(results[400], best),
        "max_rel_diff_wider_box_800_vs_800": max_rel_diff(wider, best),
    }
    out = {
        "description": (
            "Posterior of the Nile local level model, V ~ InverseGamma(2, 2e4), "
            "W ~ InverseGamma(2, 2e3), theta_0 ~ N(0, 1e7), by the midpoint rule on an "
            "800 x 800 grid in (log V, log W); see README.md and nile_bayes_reference.py"
        ),
        "prior": {"V": list(PRIOR_V), "W": list(PRIOR_W), "m0": M0, "C0": C0},
        "grid": {
            "n": 800,
            "log_V": list(LOG_V),
            "log_W": list(LOG_W),
            "V_range": [math.exp(x) for x in LOG_V],
            "W_range": [math.exp(x) for x in LOG_W],
            "edge_drop_log_density": best["edge_drop"],
        },
        "convergence": convergence,
        "log_evidence": best["log_evidence"],
        "V": {"mean": best["V_mean"], "sd": best["V_sd"]},
        "W": {"mean": best["W_mean"], "sd": best["W_sd"]},
        "level": {
            "years": years.tolist(),
            "mean": best["level_mean"].tolist(),
            "sd": best["level_sd"].tolist(),
        },
    }
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: out[k] for k in ("grid", "convergence", "V", "W")}, indent=1))
    for yr in YEARS_REPORTED:
        i = yr - years[0]
        print(yr, best["level_mean"][i], best["level_sd"][i])


if __name__ == "__main__":
    main()
