"""The five benchmark models: data (numpy only, fixed seeds) and the pymc_dlm model builders.

Importing this module needs only numpy; PyMC and pymc_dlm are imported inside the builders, so
the peer's environment (which has another PyMC) can read the same data description.

=====  ==========================================================  =====  ======  =========
model  description                                                 T      states  series
=====  ==========================================================  =====  ======  =========
1      Nile, local level                                           100    1       1
2      local linear trend + Seasonal(12), simulated monthly        1000   13      1
3      dynamic regression, 5 random-walk coefficients, simulated   500    5       1
4      dynamic factor: 5 series, 2 random-walk factors, fixed      300    2       5
       loadings, diagonal observation noise, simulated
5      100 independent local-level series (batch axis), simulated  200    1       1 (x100)
=====  ==========================================================  =====  ======  =========

Every standard deviation has a HalfNormal prior whose scale is in ``PRIORS``; the prior on the
initial state is theta_0 ~ N(0, 1e7 I) everywhere (the contract's default ``m0 = 0, C0 = 1e7``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NILE_CSV = HERE.parent.parent / "shared" / "data" / "nile.csv"
SEED = 20261124
C0 = 1e7
MODELS = (1, 2, 3, 4, 5)

TITLES = {
    1: "Nile local level (T=100)",
    2: "LLT + Seasonal(12) (T=1000, 13 states)",
    3: "dynamic regression, 5 RW coefs (T=500)",
    4: "dynamic factor, 5 series x 2 RW factors (T=300)",
    5: "100 batched local levels (T=200)",
}

# HalfNormal scales of every standard deviation, shared by both sides.
PRIORS = {
    1: {"sigma_level": 200.0, "sigma_obs": 200.0},
    2: {"sigma_level": 2.0, "sigma_slope": 0.2, "sigma_seasonal": 1.0, "sigma_obs": 5.0},
    3: {"sigma_beta": 0.2, "sigma_obs": 1.0},
    4: {"sigma_factor": 1.0, "sigma_obs": 1.0},
    5: {"sigma_level": 1.0, "sigma_obs": 1.0},
}

# Fixed factor loadings of model 4 (5 series x 2 factors).
LOADINGS = np.array(
    [
        [1.0, 0.0],
        [0.8, 0.3],
        [0.5, 0.5],
        [0.2, 0.9],
        [0.0, 1.0],
    ]
)
N_BATCH = 100


def _nile_csv_path() -> Path:
    for p in (NILE_CSV, Path("/work/shared/data/nile.csv")):
        if p.exists():
            return p
    raise FileNotFoundError("nile.csv not found next to the repository (shared/data/nile.csv)")


def _rng(k: int) -> np.random.Generator:
    return np.random.default_rng(SEED + k)


def simulate(k: int) -> dict[str, np.ndarray]:
    """Simulate (or read) model ``k``'s data: ``y``; also ``X`` (model 3), ``loadings`` (4)."""
    if k == 1:
        flow = np.loadtxt(_nile_csv_path(), delimiter=",", skiprows=1, usecols=2)
        return {"y": flow.astype(np.float64)}
    rng = _rng(k)
    if k == 2:
        T, period = 1000, 12
        level, slope = 100.0, 0.05
        season = list(3.0 * np.sin(2 * np.pi * np.arange(period - 1) / period))
        y = np.empty(T)
        for t in range(T):
            level = level + slope + 1.0 * rng.standard_normal()
            slope = slope + 0.02 * rng.standard_normal()
            s_new = -sum(season) + 0.3 * rng.standard_normal()
            season = [s_new] + season[:-1]
            y[t] = level + s_new + 2.0 * rng.standard_normal()
        return {"y": y}
    if k == 3:
        T, p = 500, 5
        X = rng.standard_normal((T, p))
        sig_beta = np.array([0.05, 0.10, 0.02, 0.08, 0.03])
        beta = rng.standard_normal(p) + np.cumsum(sig_beta * rng.standard_normal((T, p)), axis=0)
        y = np.sum(X * beta, axis=1) + 0.5 * rng.standard_normal(T)
        return {"y": y, "X": X}
    if k == 4:
        T = 300
        sig_f = np.array([0.5, 0.3])
        sig_obs = np.array([0.2, 0.3, 0.25, 0.4, 0.35])
        f = np.cumsum(sig_f * rng.standard_normal((T, 2)), axis=0)
        y = f @ LOADINGS.T + sig_obs * rng.standard_normal((T, 5))
        return {"y": y, "loadings": LOADINGS.copy()}
    if k == 5:
        T, B = 200, N_BATCH
        sig_level = rng.uniform(0.1, 0.5, B)
        sig_obs = rng.uniform(0.5, 1.5, B)
        level = np.cumsum(sig_level[:, None] * rng.standard_normal((B, T)), axis=1)
        y = level + sig_obs[:, None] * rng.standard_normal((B, T))
        return {"y": y}
    raise ValueError(f"unknown model {k}")


def save_data(k: int, path) -> None:
    np.savez(path, **simulate(k))


def load_data(k: int, path=None) -> dict[str, np.ndarray]:
    """Load model ``k``'s data from an ``.npz`` written by :func:`save_data`, or simulate it."""
    if path is None:
        return simulate(k)
    with np.load(path) as f:
        return {name: f[name] for name in f.files}


# ------------------------------------------------------------------------- ours: pymc_dlm models
def build_ours(k: int, data: dict[str, np.ndarray], prior: str = "proper"):
    """PyMC model of benchmark ``k`` written with the pymc_dlm contract API.

    ``prior="proper"``: theta_0 ~ N(0, 1e7 I), the model every side runs. ``prior="default"``:
    the components' own default initial prior, i.e. the exact diffuse start a user gets
    without writing one (``C0="diffuse"`` for the ``StateSpace`` models 4 and 5).
    """
    import pymc as pm
    import pytensor.tensor as pt

    import pymc_dlm as dlm

    if prior not in ("proper", "default"):
        raise ValueError(f"prior must be 'proper' or 'default', got {prior!r}")
    c0 = C0 if prior == "proper" else "diffuse"
    pr = PRIORS[k]
    y = data["y"]
    with pm.Model() as model:
        if k == 1:
            s_level = pm.HalfNormal("sigma_level", pr["sigma_level"])
            s_obs = pm.HalfNormal("sigma_obs", pr["sigma_obs"])
            dlm.DLM("y", dlm.LocalLevel(s_level, C0=c0), sigma_obs=s_obs, observed=y)
        elif k == 2:
            s_level = pm.HalfNormal("sigma_level", pr["sigma_level"])
            s_slope = pm.HalfNormal("sigma_slope", pr["sigma_slope"])
            s_seas = pm.HalfNormal("sigma_seasonal", pr["sigma_seasonal"])
            s_obs = pm.HalfNormal("sigma_obs", pr["sigma_obs"])
            comp = dlm.LocalLinearTrend(s_level, s_slope, C0=c0) + dlm.Seasonal(12, s_seas, C0=c0)
            dlm.DLM("y", comp, sigma_obs=s_obs, observed=y)
        elif k == 3:
            s_beta = pm.HalfNormal("sigma_beta", pr["sigma_beta"], shape=data["X"].shape[1])
            s_obs = pm.HalfNormal("sigma_obs", pr["sigma_obs"])
            dlm.DLM(
                "y", dlm.Regression(data["X"], sigma=s_beta, C0=c0), sigma_obs=s_obs, observed=y
            )
        elif k == 4:
            L = data["loadings"]
            s_f = pm.HalfNormal("sigma_factor", pr["sigma_factor"], shape=L.shape[1])
            s_obs = pm.HalfNormal("sigma_obs", pr["sigma_obs"], shape=L.shape[0])
            ss = dlm.StateSpace(L, np.eye(L.shape[1]), pt.diag(s_f**2), 0.0, c0)
            dlm.DLM("y", ss, sigma_obs=s_obs, observed=y)
        elif k == 5:
            B = y.shape[0]
            s_level = pm.HalfNormal("sigma_level", pr["sigma_level"], shape=B)
            s_obs = pm.HalfNormal("sigma_obs", pr["sigma_obs"], shape=B)
            ones = np.ones((B, 1, 1))
            ss = dlm.StateSpace(ones, ones, (s_level**2)[:, None, None], 0.0, c0)
            dlm.DLM("y", ss, sigma_obs=s_obs, observed=y)
        else:
            raise ValueError(f"unknown model {k}")
    return model
