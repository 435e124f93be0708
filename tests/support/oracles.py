"""Independent reference implementations ("oracles") for the pymc_dlm tests.

Nothing here imports pymc_dlm or pytensor. Every function is written from the
textbook definitions (West & Harrison; Petris, Petrone & Campagnoli, *Dynamic
Linear Models with R*, ch. 2-3; Durbin & Koopman §4) so that it can witness the
package's numbers (STYLE.md §8).

Model (R dlm's conventions, as in notes/CONTRACT.md)::

    y_t     = F_t θ_t + v_t,        v_t ~ N(0, V_t)
    θ_t     = G_t θ_{t-1} + w_t,    w_t ~ N(0, W_t)          t = 1..T
    θ_0     ~ N(m0, C0)

Array conventions used by every oracle (time FIRST):

* ``y``: (T,) or (T, p); NaN marks a missing value (a whole row or single entries).
* ``F``: (n,) or (p, n) constant, or (T, p, n) time-varying.
* ``G``, ``W``: (n, n) constant, or (T, n, n) time-varying (index 0 is G_1 / W_1).
* ``V``: scalar (-> V·I_p), (p, p) constant, or (T, p, p) time-varying.
* ``m0``: scalar or (n,);  ``C0``: scalar c (-> c·I), (n,) (-> diag) or (n, n).

Outputs are :class:`Moments` with the names of the package's xarray variables:
``predicted_mean`` a_t (T, n), ``predicted_cov`` R_t (T, n, n), ``forecast_mean``
f_t (T, p), ``forecast_cov`` Q_t (T, p, p), ``filtered_mean`` m_t, ``filtered_cov``
C_t, ``smoothed_mean`` s_t, ``smoothed_cov`` S_t, ``smoothed_cross_cov``
Cov(θ_t, θ_{t+1} | y_{1:T}) (T-1, n, n) and ``loglik``. The forecast moments are
F_t a_t and F_t R_t F_t' + V_t for *all* p components, also for missing ones.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np

_SHIPPED_NILE = Path(__file__).resolve().parents[2] / "pymc_dlm" / "data" / "nile.csv"

__all__ = [
    "System",
    "Moments",
    "mod_poly",
    "mod_seas",
    "mod_trig",
    "mod_reg",
    "mod_arma",
    "mod_cycle",
    "mod_sum",
    "normalise",
    "simulate",
    "statsmodels_filter",
    "dense_gaussian",
    "dense_loglik",
    "dense_filtered",
    "dense_smoothed",
    "mpmath_filter",
    "mpmath_loglik",
    "load_nile",
    "moments_from_dataset",
    "compare_moments",
    "assert_moments_close",
    "assert_psd",
]


# --------------------------------------------------------------------------
# Textbook system matrices (R dlm's dlmMod* definitions, Petris et al. §3.2)
# --------------------------------------------------------------------------


class System(NamedTuple):
    """System matrices of a DLM without its observation covariance V."""

    F: np.ndarray  # (p, n) or (T, p, n)
    G: np.ndarray  # (n, n) or (T, n, n)
    W: np.ndarray  # (n, n) or (T, n, n)
    m0: np.ndarray  # (n,)
    C0: np.ndarray  # (n, n)


def _prior(n, m0, C0):
    m0 = np.broadcast_to(np.asarray(m0, float), (n,)).copy()
    C0 = np.asarray(C0, float)
    if C0.ndim == 0:
        C0 = float(C0) * np.eye(n)
    elif C0.ndim == 1:
        C0 = np.diag(C0)
    return m0, C0.copy()


def mod_poly(order, sigma, m0=0.0, C0=1e7) -> System:
    """dlmModPoly(order): G = upper Jordan block of ones, F = e_1', W = diag(sigma²)."""
    sigma = np.broadcast_to(np.asarray(sigma, float), (order,))
    G = np.eye(order) + np.eye(order, k=1)
    F = np.zeros((1, order))
    F[0, 0] = 1.0
    W = np.diag(sigma**2)
    return System(F, G, W, *_prior(order, m0, C0))


def mod_seas(period, sigma, m0=0.0, C0=1e7) -> System:
    """R dlm's dlmModSeas(period).

    period-1 states, first row of G all -1, ones on the sub-diagonal, F = e_1',
    W = diag(sigma², 0, ..., 0).
    """
    n = period - 1
    G = np.zeros((n, n))
    G[0, :] = -1.0
    G[np.arange(1, n), np.arange(0, n - 1)] = 1.0
    F = np.zeros((1, n))
    F[0, 0] = 1.0
    W = np.zeros((n, n))
    W[0, 0] = float(sigma) ** 2
    return System(F, G, W, *_prior(n, m0, C0))


def mod_trig(s, q, sigma, m0=0.0, C0=1e7) -> System:
    """R dlm's dlmModTrig(s, q).

    For harmonic j, ω_j = 2πj/s, block
    [[cos ω_j, sin ω_j], [-sin ω_j, cos ω_j]] with F = (1, 0); when s is even and
    q = s/2 the last harmonic is ONE state with G = [-1], F = [1]. W = sigma² I.
    """
    blocks_G, blocks_F = [], []
    for j in range(1, q + 1):
        if s % 2 == 0 and j == s // 2:  # Nyquist frequency: one state
            blocks_G.append(np.array([[-1.0]]))
            blocks_F.append(np.array([1.0]))
        else:
            om = 2.0 * np.pi * j / s
            c, si = np.cos(om), np.sin(om)
            blocks_G.append(np.array([[c, si], [-si, c]]))
            blocks_F.append(np.array([1.0, 0.0]))
    G = _block_diag(blocks_G)
    F = np.concatenate(blocks_F)[None, :]
    n = G.shape[0]
    W = float(sigma) ** 2 * np.eye(n)
    return System(F, G, W, *_prior(n, m0, C0))


def mod_reg(X, sigma=0.0, m0=0.0, C0=1e7) -> System:
    """dlmModReg(X, addInt=FALSE): F_t = X[t] (time-varying), G = I, W = diag(sigma²)."""
    X = np.asarray(X, float)
    if X.ndim == 1:
        X = X[:, None]
    k = X.shape[1]
    sigma = np.broadcast_to(np.asarray(sigma, float), (k,))
    F = X[:, None, :]  # (T, 1, k)
    G = np.eye(k)
    W = np.diag(sigma**2)
    return System(F, G, W, *_prior(k, m0, C0))


def mod_arma(ar=(), ma=(), sigma2=1.0, m0=0.0, C0=1e7) -> System:
    """R dlm's dlmModARMA(ar, ma, sigma2).

    r = max(p, q+1); G companion (first column = ar
    padded with zeros, ones on the super-diagonal); F = e_1'; W = sigma2 R R' with
    R = (1, ma_1, ..., ma_{r-1})' (ma padded with zeros).
    """
    ar = np.atleast_1d(np.asarray(ar, float))
    ma = np.atleast_1d(np.asarray(ma, float))
    r = max(len(ar), len(ma) + 1)
    G = np.zeros((r, r))
    G[: len(ar), 0] = ar
    G[np.arange(r - 1), np.arange(1, r)] = 1.0
    F = np.zeros((1, r))
    F[0, 0] = 1.0
    R = np.zeros(r)
    R[0] = 1.0
    R[1 : 1 + len(ma)] = ma
    W = float(sigma2) * np.outer(R, R)
    return System(F, G, W, *_prior(r, m0, C0))


def mod_cycle(period, damping, sigma, m0=0.0, C0=1e7) -> System:
    """Damped stochastic cycle.

    G = damping·[[cos λ, sin λ], [-sin λ, cos λ]],
    λ = 2π/period, F = (1, 0), W = sigma² I₂.
    """
    lam = 2.0 * np.pi / period
    c, s = np.cos(lam), np.sin(lam)
    G = float(damping) * np.array([[c, s], [-s, c]])
    F = np.array([[1.0, 0.0]])
    W = float(sigma) ** 2 * np.eye(2)
    return System(F, G, W, *_prior(2, m0, C0))


def _block_diag(mats):
    mats = [np.atleast_2d(np.asarray(m, float)) for m in mats]
    rows = sum(m.shape[0] for m in mats)
    cols = sum(m.shape[1] for m in mats)
    out = np.zeros((rows, cols))
    i = j = 0
    for m in mats:
        out[i : i + m.shape[0], j : j + m.shape[1]] = m
        i += m.shape[0]
        j += m.shape[1]
    return out


def mod_sum(*systems: System) -> System:
    """R dlm's ``+``: F side by side, G, W, C0 block-diagonal, m0 stacked.

    Time-varying pieces make the corresponding sum time-varying.
    """

    def lengths(name):
        return {getattr(s, name).shape[0] for s in systems if getattr(s, name).ndim == 3}

    def combine(name, join):
        Ts = lengths(name)
        if not Ts:
            return join([getattr(s, name) for s in systems])
        (T,) = Ts
        per_t = []
        for t in range(T):
            per_t.append(
                join(
                    [
                        getattr(s, name)[t] if getattr(s, name).ndim == 3 else getattr(s, name)
                        for s in systems
                    ]
                )
            )
        return np.stack(per_t)

    F = combine("F", lambda ms: np.concatenate(ms, axis=1))
    G = combine("G", _block_diag)
    W = combine("W", _block_diag)
    m0 = np.concatenate([s.m0 for s in systems])
    C0 = _block_diag([s.C0 for s in systems])
    return System(F, G, W, m0, C0)


# --------------------------------------------------------------------------
# Input normalisation and simulation
# --------------------------------------------------------------------------


@dataclass
class Normalised:
    y: np.ndarray  # (T, p), NaN = missing
    F: np.ndarray  # (T, p, n)
    G: np.ndarray  # (T, n, n)
    W: np.ndarray  # (T, n, n)
    V: np.ndarray  # (T, p, p)
    m0: np.ndarray  # (n,)
    C0: np.ndarray  # (n, n)
    time_varying: set = field(default_factory=set)

    @property
    def T(self):
        return self.y.shape[0]

    @property
    def p(self):
        return self.y.shape[1]

    @property
    def n(self):
        return self.m0.shape[0]


def normalise(F, G, W, V, m0, C0, y=None, T=None) -> Normalised:
    """Bring every argument to explicit time-varying shapes (time first)."""
    F = np.asarray(F, float)
    G = np.asarray(G, float)
    W = np.asarray(W, float)
    V = np.asarray(V, float)
    if F.ndim == 1:
        F = F[None, :]
    n = F.shape[-1]
    p = F.shape[-2]
    if y is not None:
        y = np.asarray(y, float)
        if y.ndim == 1:
            y = y[:, None]
        T = y.shape[0]
        if y.shape[1] != p:
            raise ValueError(f"y has {y.shape[1]} series but F has {p} rows")
    if T is None:
        raise ValueError("need y or T")
    tv = set()

    def expand(M, name, core):
        if M.ndim == len(core):
            if M.shape != core:
                raise ValueError(f"{name} has shape {M.shape}, expected {core}")
            return np.broadcast_to(M, (T, *core)).copy()
        if M.shape != (T, *core):
            raise ValueError(f"{name} has shape {M.shape}, expected {(T, *core)}")
        tv.add(name)
        return M.copy()

    if V.ndim == 0:
        V = float(V) * np.eye(p)
    F = expand(F, "F", (p, n))
    G = expand(G, "G", (n, n))
    W = expand(W, "W", (n, n))
    V = expand(V, "V", (p, p))
    m0, C0 = _prior(n, m0, C0)
    if y is None:
        y = np.full((T, p), np.nan)
    return Normalised(y, F, G, W, V, m0, C0, tv)


def simulate(F, G, W, V, m0, C0, T, rng):
    """Draw (theta (T, n), y (T, p)) from the DLM by direct forward simulation."""
    s = normalise(F, G, W, V, m0, C0, T=T)

    def draw(mean, cov):
        # eigen-factor so that singular (PSD) covariances are fine
        vals, vecs = np.linalg.eigh(0.5 * (cov + cov.T))
        return mean + vecs @ (np.sqrt(np.clip(vals, 0.0, None)) * rng.standard_normal(len(mean)))

    theta = draw(s.m0, s.C0)
    thetas, ys = [], []
    for t in range(T):
        theta = s.G[t] @ theta + draw(np.zeros(s.n), s.W[t])
        thetas.append(theta)
        ys.append(s.F[t] @ theta + draw(np.zeros(s.p), s.V[t]))
    return np.array(thetas), np.array(ys)


def nile_path():
    """The Nile file: ``PYMC_DLM_NILE`` if set, else the package's ``pymc_dlm/data/nile.csv``.

    The shipped copy is found from this file's place in the repository, not by importing
    ``pymc_dlm``; its provenance is in ``pymc_dlm/data/README.md``.
    """
    return Path(os.environ.get("PYMC_DLM_NILE", _SHIPPED_NILE))


def load_nile():
    """The Nile series (R datasets::Nile), 100 annual flows 1871-1970."""
    data = np.genfromtxt(nile_path(), delimiter=",", names=True)
    return np.asarray(data["flow"], float)


# --------------------------------------------------------------------------
# Moments container
# --------------------------------------------------------------------------


@dataclass
class Moments:
    loglik: float
    predicted_mean: np.ndarray | None = None
    predicted_cov: np.ndarray | None = None
    forecast_mean: np.ndarray | None = None
    forecast_cov: np.ndarray | None = None
    filtered_mean: np.ndarray | None = None
    filtered_cov: np.ndarray | None = None
    smoothed_mean: np.ndarray | None = None
    smoothed_cov: np.ndarray | None = None
    smoothed_cross_cov: np.ndarray | None = None


# --------------------------------------------------------------------------
# Oracle 1: statsmodels (a different, widely used covariance-form filter)
# --------------------------------------------------------------------------


def statsmodels_filter(F, G, W, V, m0, C0, y, smooth=True) -> Moments:
    """Run statsmodels' Kalman filter/smoother on the DLM.

    Mapping (Durbin & Koopman): Z = F, T = G, R = I, Q = W, H = V, a_1 = G_1 m0,
    P_1 = G_1 C0 G_1' + W_1 ("known" initialisation). In statsmodels the transition
    at index t maps α_t to α_{t+1}, so its slice t is our G_{t+2} (0-based G[t+1]).
    """
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    s = normalise(F, G, W, V, m0, C0, y)
    T, n = s.T, s.n
    mod = MLEModel(s.y, k_states=n, k_posdef=n)
    mod.ssm.tolerance = 0.0  # never switch to the steady-state filter

    def tv(M, shift=0):
        # (T, a, b) -> (a, b, T) with time last; shift=1 for transition/state_cov
        M = M if shift == 0 else np.concatenate([M[1:], M[-1:]], axis=0)
        return np.ascontiguousarray(np.moveaxis(M, 0, -1))

    mod["design"] = tv(s.F) if "F" in s.time_varying else s.F[0]
    mod["obs_cov"] = tv(s.V) if "V" in s.time_varying else s.V[0]
    mod["transition"] = tv(s.G, 1) if "G" in s.time_varying else s.G[0]
    mod["selection"] = np.eye(n)
    mod["state_cov"] = tv(s.W, 1) if "W" in s.time_varying else s.W[0]
    a1 = s.G[0] @ s.m0
    P1 = s.G[0] @ s.C0 @ s.G[0].T + s.W[0]
    mod.initialize_known(a1, 0.5 * (P1 + P1.T))

    res = mod.ssm.smooth() if smooth else mod.ssm.filter()

    def time_first(A):
        return np.moveaxis(np.asarray(A), -1, 0).copy()

    out = Moments(
        loglik=float(np.sum(res.llf_obs)),
        predicted_mean=time_first(res.predicted_state[:, :T]),
        predicted_cov=time_first(res.predicted_state_cov[:, :, :T]),
        forecast_mean=time_first(res.forecasts),
        forecast_cov=time_first(res.forecasts_error_cov),
        filtered_mean=time_first(res.filtered_state),
        filtered_cov=time_first(res.filtered_state_cov),
    )
    if smooth:
        out.smoothed_mean = time_first(res.smoothed_state)
        out.smoothed_cov = time_first(res.smoothed_state_cov)
        # lag=-1: entry t is Cov(α_t, α_{t+1} | y); the last one is out of sample
        acov = res.smoothed_state_autocovariance(lag=-1)
        out.smoothed_cross_cov = time_first(acov)[: T - 1]
    return out


def statsmodels_diffuse(F, G, W, V, y, blocks=None):
    """Run statsmodels' exact diffuse filter and smoother (y = F a + e, a' = G a + w).

    Durbin & Koopman (2012, §5.2-5.3): ``ssm.initialize("diffuse")``, or a mixed
    ``Initialization`` of diffuse and known blocks, with ``ssm.tolerance = 0``. The states are
    statsmodels' alpha_1 = theta_1: with G block diagonal and a whole block diffuse, theta_1 =
    G theta_0 + w_1 is flat on that block, as the package's diffuse prior on theta_0 makes it.

    ``F`` is (p, n) or (T, p, n); ``blocks`` is None (every state diffuse) or a list of
    (start, stop, None) for diffuse blocks and (start, stop, (a1, P1)) for known ones.
    """
    from statsmodels.tsa.statespace.initialization import Initialization
    from statsmodels.tsa.statespace.kalman_smoother import SMOOTHER_STATE, SMOOTHER_STATE_COV
    from statsmodels.tsa.statespace.mlemodel import MLEModel

    y = np.asarray(y, dtype=float)
    y = y[:, None] if y.ndim == 1 else y
    n = G.shape[0]
    mod = MLEModel(y, k_states=n, k_posdef=n)
    mod.ssm.tolerance = 0.0
    mod["design"] = np.ascontiguousarray(np.moveaxis(F, 0, -1)) if F.ndim == 3 else F
    mod["obs_cov"] = V
    mod["transition"] = G
    mod["selection"] = np.eye(n)
    mod["state_cov"] = W
    if blocks is None:
        mod.ssm.initialize("diffuse")
    else:
        init = Initialization(n)
        for a, b, known in blocks:
            if known is None:
                init.set((a, b), "diffuse")
            else:
                init.set((a, b), "known", constant=known[0], stationary_cov=known[1])
        mod.ssm.initialize(init)
    # Only the states' smoothed moments: statsmodels' disturbance smoother would also give a
    # measurement disturbance covariance that its univariate filter cannot return for a full
    # V (it warns about it); it is not used here.
    mod.ssm.smoother_output = SMOOTHER_STATE | SMOOTHER_STATE_COV
    res = mod.ssm.smooth()
    T = y.shape[0]

    def tf(x):
        return np.moveaxis(np.asarray(x), -1, 0)

    return {
        "loglik": float(np.sum(res.llf_obs)),
        "predicted_mean": tf(res.predicted_state[:, :T]),
        "predicted_cov": tf(res.predicted_state_cov[:, :, :T]),
        "filtered_mean": tf(res.filtered_state),
        "filtered_cov": tf(res.filtered_state_cov),
        "smoothed_mean": tf(res.smoothed_state),
        "smoothed_cov": tf(res.smoothed_state_cov),
        "nobs_diffuse": int(res.nobs_diffuse),
        "predicted_diffuse_cov": tf(res.predicted_diffuse_state_cov[:, :, :T]),
    }


# --------------------------------------------------------------------------
# Oracle 2: the dense joint Gaussian of all states and observations
# --------------------------------------------------------------------------


class DenseJoint(NamedTuple):
    """Joint law of x = (θ_1, ..., θ_T, y_1, ..., y_T) (time-major blocks)."""

    mean: np.ndarray  # (T*n + T*p,)
    cov: np.ndarray  # (T*n + T*p, T*n + T*p)
    T: int
    n: int
    p: int

    def theta_index(self, t):
        return np.arange(t * self.n, (t + 1) * self.n)

    def y_index(self, t):
        base = self.T * self.n
        return np.arange(base + t * self.p, base + (t + 1) * self.p)


def dense_gaussian(F, G, W, V, m0, C0, T) -> DenseJoint:
    """Mean and covariance of (θ_{1:T}, y_{1:T}) by explicit linear maps.

    With the independent Gaussian vector z = (θ_0, w_1..w_T, v_1..v_T), we have
    θ_t = Φ(t,0) θ_0 + Σ_{s≤t} Φ(t,s) w_s with Φ(t,s) = G_t ⋯ G_{s+1} (Φ(t,t) = I)
    and y_t = F_t θ_t + v_t. So x = L z, E x = L E z, Cov x = L Cov(z) L'.
    No Kalman recursion is involved.
    """
    s = normalise(F, G, W, V, m0, C0, T=T)
    n, p = s.n, s.p
    nz = n + T * n + T * p
    L = np.zeros((T * n + T * p, nz))
    # Phi[k] holds Φ(t, k) for the current t, k = 0..t (k=0 is θ_0's map)
    Phi = [np.eye(n)]
    for t in range(1, T + 1):
        Phi = [s.G[t - 1] @ P for P in Phi] + [np.eye(n)]
        rows = slice((t - 1) * n, t * n)
        L[rows, 0:n] = Phi[0]
        for k in range(1, t + 1):
            L[rows, n + (k - 1) * n : n + k * n] = Phi[k]
        yrows = slice(T * n + (t - 1) * p, T * n + t * p)
        L[yrows, :] = s.F[t - 1] @ L[rows, :]
        L[yrows, n + T * n + (t - 1) * p : n + T * n + t * p] = np.eye(p)
    mean_z = np.concatenate([s.m0, np.zeros(T * n + T * p)])
    cov_z = _block_diag([s.C0] + list(s.W) + list(s.V))
    mean = L @ mean_z
    cov = L @ cov_z @ L.T
    return DenseJoint(mean, 0.5 * (cov + cov.T), T, n, p)


def _observed(y):
    y = np.asarray(y, float)
    if y.ndim == 1:
        y = y[:, None]
    return y, ~np.isnan(y)


def _condition(J: DenseJoint, target_idx, y, mask):
    """E and Cov of x[target_idx] given the observed y entries selected by mask."""
    T, p = y.shape
    obs_idx = np.array(
        [J.y_index(t)[j] for t in range(T) for j in range(p) if mask[t, j]], dtype=int
    )
    mu_a = J.mean[target_idx]
    S_aa = J.cov[np.ix_(target_idx, target_idx)]
    if obs_idx.size == 0:
        return mu_a, S_aa
    yo = np.array([y[t, j] for t in range(T) for j in range(p) if mask[t, j]])
    S_oo = J.cov[np.ix_(obs_idx, obs_idx)]
    S_ao = J.cov[np.ix_(target_idx, obs_idx)]
    resid = yo - J.mean[obs_idx]
    mean = mu_a + S_ao @ np.linalg.solve(S_oo, resid)
    cov = S_aa - S_ao @ np.linalg.solve(S_oo, S_ao.T)
    return mean, 0.5 * (cov + cov.T)


def dense_loglik(F, G, W, V, m0, C0, y) -> float:
    """Log p(observed y) from the dense joint.

    Missing entries are marginalised out by dropping them (a Gaussian marginal is a sub-vector).
    """
    from scipy.stats import multivariate_normal

    y, mask = _observed(y)
    T, p = y.shape
    J = dense_gaussian(F, G, W, V, m0, C0, T)
    idx = np.array([J.y_index(t)[j] for t in range(T) for j in range(p) if mask[t, j]], dtype=int)
    if idx.size == 0:
        return 0.0
    yo = np.array([y[t, j] for t in range(T) for j in range(p) if mask[t, j]])
    return float(multivariate_normal(J.mean[idx], J.cov[np.ix_(idx, idx)]).logpdf(yo))


def dense_filtered(F, G, W, V, m0, C0, y) -> Moments:
    """Predicted, forecast and filtered moments from the dense joint.

    Conditions on the prefixes y_{1:t-1} and y_{1:t}; the log-likelihood from the dense joint too.
    """
    y, mask = _observed(y)
    T, p = y.shape
    J = dense_gaussian(F, G, W, V, m0, C0, T)
    n = J.n
    out = {k: [] for k in ("am", "Rc", "fm", "Qc", "mm", "Cc")}
    for t in range(T):
        before = mask.copy()
        before[t:, :] = False
        upto = mask.copy()
        upto[t + 1 :, :] = False
        target = np.concatenate([J.theta_index(t), J.y_index(t)])
        mu, S = _condition(J, target, y, before)
        out["am"].append(mu[:n])
        out["Rc"].append(S[:n, :n])
        out["fm"].append(mu[n:])
        out["Qc"].append(S[n:, n:])
        mu, S = _condition(J, J.theta_index(t), y, upto)
        out["mm"].append(mu)
        out["Cc"].append(S)
    return Moments(
        loglik=dense_loglik(F, G, W, V, m0, C0, y),
        predicted_mean=np.array(out["am"]),
        predicted_cov=np.array(out["Rc"]),
        forecast_mean=np.array(out["fm"]),
        forecast_cov=np.array(out["Qc"]),
        filtered_mean=np.array(out["mm"]),
        filtered_cov=np.array(out["Cc"]),
    )


def dense_smoothed(F, G, W, V, m0, C0, y) -> Moments:
    """Smoothed moments from one conditioning of the dense joint.

    E[θ_t | y], Cov[θ_t | y] and the lag-one cross covariance Cov(θ_t, θ_{t+1} | y)
    (for FFBS tests).
    """
    y, mask = _observed(y)
    T, p = y.shape
    J = dense_gaussian(F, G, W, V, m0, C0, T)
    n = J.n
    mean, cov = _condition(J, np.arange(T * n), y, mask)
    means = mean.reshape(T, n)
    covs = np.array([cov[t * n : (t + 1) * n, t * n : (t + 1) * n] for t in range(T)])
    cross = np.array(
        [cov[t * n : (t + 1) * n, (t + 1) * n : (t + 2) * n] for t in range(T - 1)]
    ).reshape(T - 1, n, n)
    return Moments(
        loglik=dense_loglik(F, G, W, V, m0, C0, y),
        smoothed_mean=means,
        smoothed_cov=covs,
        smoothed_cross_cov=cross,
    )


# --------------------------------------------------------------------------
# Oracle 3: covariance-form Kalman filter in mpmath (high precision)
# --------------------------------------------------------------------------


def mpmath_filter(F, G, W, V, m0, C0, y, dps=60, smooth=False) -> Moments:
    """Covariance-form Kalman filter (Petris et al. Prop. 2.2) in mpmath.

    Runs with ``dps`` decimal digits. Inputs are converted exactly from float64,
    so the result is the exact log-likelihood of the float64 inputs up to ~10^-dps.
    Missing entries: the update uses the observed rows of F_t and V_t only.
    Returns float64 moments and the loglik (an ``mpf`` is in ``Moments.loglik``
    converted to float; use :func:`mpmath_loglik` for the mpf itself).
    ``smooth=True`` adds the Rauch-Tung-Striebel smoother (Petris et al. Prop. 2.4),
    which needs every R_{t+1} to be non-singular.
    """
    ll, mom = _mpmath_run(F, G, W, V, m0, C0, y, dps, smooth)
    mom.loglik = float(ll)
    return mom


def mpmath_loglik(F, G, W, V, m0, C0, y, dps=60):
    """Exact (dps-digit) log-likelihood as an ``mpmath.mpf``."""
    ll, _ = _mpmath_run(F, G, W, V, m0, C0, y, dps)
    return ll


def _mpmath_run(F, G, W, V, m0, C0, y, dps, smooth=False):
    import mpmath

    s = normalise(F, G, W, V, m0, C0, y)
    T, n = s.T, s.n
    res = {k: [] for k in ("am", "Rc", "fm", "Qc", "mm", "Cc")}
    with mpmath.workdps(dps):
        mp = mpmath.mp

        def M(a):
            a = np.atleast_2d(np.asarray(a, float))
            return mp.matrix([[mp.mpf(float(v)) for v in row] for row in a])

        def col(v):
            return mp.matrix([mp.mpf(float(x)) for x in np.asarray(v, float)])

        def to_np(A):
            return np.array([[float(A[i, j]) for j in range(A.cols)] for i in range(A.rows)])

        def sym(A):
            return (A + A.T) / 2

        m = col(s.m0)
        C = M(s.C0)
        store = []  # (a, R, m, C) as mp matrices, for the smoother
        log2pi = mp.log(2 * mp.pi)
        ll = mp.mpf(0)
        for t in range(T):
            Gt, Ft, Wt, Vt = M(s.G[t]), M(s.F[t]), M(s.W[t]), M(s.V[t])
            a = Gt * m
            R = sym(Gt * C * Gt.T + Wt)
            f = Ft * a
            Q = sym(Ft * R * Ft.T + Vt)
            res["am"].append(to_np(a)[:, 0])
            res["Rc"].append(to_np(R))
            res["fm"].append(to_np(f)[:, 0])
            res["Qc"].append(to_np(Q))
            obs = np.flatnonzero(~np.isnan(s.y[t]))
            if obs.size == 0:
                m, C = a, R
            else:
                Fo = M(s.F[t][obs, :])
                Vo = M(s.V[t][np.ix_(obs, obs)])
                Qo = sym(Fo * R * Fo.T + Vo)
                e = col(s.y[t, obs]) - Fo * a
                # K' = Qo^{-1} Fo R  (solve, column by column)
                FR = Fo * R
                Kt = mp.matrix(len(obs), n)
                for j in range(n):
                    colj = mp.lu_solve(Qo, FR[:, j])
                    for i in range(len(obs)):
                        Kt[i, j] = colj[i]
                m = a + Kt.T * e
                C = sym(R - FR.T * Kt)
                Qinv_e = mp.lu_solve(Qo, e)
                quad = (e.T * Qinv_e)[0, 0]
                ll += -(len(obs) * log2pi + mp.log(mp.det(Qo)) + quad) / 2
            res["mm"].append(to_np(m)[:, 0])
            res["Cc"].append(to_np(C))
            store.append((a, R, m, C))
        if smooth:
            sm_m, sm_C, cross = [None] * T, [None] * T, [None] * max(T - 1, 0)
            s_next, S_next = store[-1][2], store[-1][3]
            sm_m[-1], sm_C[-1] = to_np(s_next)[:, 0], to_np(S_next)
            for t in range(T - 2, -1, -1):
                a1, R1, _, _ = store[t + 1]
                _, _, mt, Ct = store[t]
                G1 = M(s.G[t + 1])
                # J_t = C_t G_{t+1}' R_{t+1}^{-1}  <=>  R_{t+1} J_t' = G_{t+1} C_t
                GC = G1 * Ct
                Jt_T = mp.matrix(n, n)
                for j in range(n):
                    colj = mp.lu_solve(R1, GC[:, j])
                    for i in range(n):
                        Jt_T[i, j] = colj[i]
                J = Jt_T.T
                cross[t] = to_np(J * S_next)
                s_next = mt + J * (s_next - a1)
                S_next = sym(Ct + J * (S_next - R1) * J.T)
                sm_m[t], sm_C[t] = to_np(s_next)[:, 0], to_np(S_next)
    mom = Moments(
        loglik=float(ll),
        predicted_mean=np.array(res["am"]),
        predicted_cov=np.array(res["Rc"]),
        forecast_mean=np.array(res["fm"]),
        forecast_cov=np.array(res["Qc"]),
        filtered_mean=np.array(res["mm"]),
        filtered_cov=np.array(res["Cc"]),
    )
    if smooth:
        mom.smoothed_mean = np.array(sm_m)
        mom.smoothed_cov = np.array(sm_C)
        mom.smoothed_cross_cov = np.array(cross).reshape(max(T - 1, 0), n, n)
    return ll, mom


# --------------------------------------------------------------------------
# Comparison helpers (no oracle maths; they read the package's xarray output)
# --------------------------------------------------------------------------

_MEAN_KEYS = ("predicted_mean", "forecast_mean", "filtered_mean", "smoothed_mean")
_COV_KEYS = ("predicted_cov", "forecast_cov", "filtered_cov", "smoothed_cov")


def moments_from_dataset(ds) -> Moments:
    """Read the xarray.Dataset of kalman_filter / kalman_smoother.

    Returns :class:`Moments` with time first: means (T, k), covariances (T, k, k). Works for
    univariate forecasts (no series axis) by adding the length-1 axes.
    """

    def get(name, dims):
        if name not in ds:
            return None
        da = ds[name]
        present = [d for d in dims if d in da.dims]
        extra = set(da.dims) - set(present)
        if extra:
            raise AssertionError(f"{name} has unexpected dims {da.dims}")
        arr = np.asarray(da.transpose(*present).values, float)
        if name.endswith("_mean") and arr.ndim == 1:
            arr = arr[:, None]
        if name.endswith("_cov") and arr.ndim == 1:
            arr = arr[:, None, None]
        return arr

    return Moments(
        loglik=float(ds["loglik"].values),
        predicted_mean=get("predicted_mean", ("time", "state")),
        predicted_cov=get("predicted_cov", ("time", "state", "state2")),
        forecast_mean=get("forecast_mean", ("time", "series")),
        forecast_cov=get("forecast_cov", ("time", "series", "series2")),
        filtered_mean=get("filtered_mean", ("time", "state")),
        filtered_cov=get("filtered_cov", ("time", "state", "state2")),
        smoothed_mean=get("smoothed_mean", ("time", "state")),
        smoothed_cov=get("smoothed_cov", ("time", "state", "state2")),
    )


def compare_moments(ours: Moments, ref: Moments, *, mean_scale, rtol, atol_factor, smoothed=True):
    """Return a list of human-readable discrepancies (empty if all agree).

    Tolerances: means |a - b| <= rtol |b| + atol_factor * mean_scale (the data scale);
    covariances per time step |A_t - B_t| <= rtol |B_t| + atol_factor * max|B_t|
    (the error of a filter's covariance is proportional to its norm, which moves
    by orders of magnitude between a vague prior and the steady state).
    """
    problems = []
    keys = [k for k in _MEAN_KEYS + _COV_KEYS if smoothed or not k.startswith("smoothed")]
    for key in keys:
        a, b = getattr(ours, key), getattr(ref, key)
        if b is None:
            continue
        if a is None:
            problems.append(f"{key}: missing from the package output")
            continue
        if a.shape != b.shape:
            problems.append(f"{key}: shape {a.shape} != reference {b.shape}")
            continue
        if key.endswith("_mean"):
            atol = atol_factor * mean_scale * np.ones_like(b)
        else:
            per_t = np.max(np.abs(b).reshape(b.shape[0], -1), axis=1)
            atol = atol_factor * per_t[:, None, None] * np.ones_like(b)
        err = np.abs(a - b)
        bad = ~(err <= rtol * np.abs(b) + atol)
        if bad.any():
            idx = np.unravel_index(
                np.argmax(np.where(bad, err / (rtol * np.abs(b) + atol), 0)), b.shape
            )
            problems.append(
                f"{key}: {bad.sum()} of {b.size} entries differ; "
                f"worst at {tuple(int(i) for i in idx)} "
                f"(time index {int(idx[0]) + 1}): ours {a[idx]!r} vs reference {b[idx]!r} "
                f"(abs err {err[idx]:.3g}, max abs err {np.nanmax(err):.3g})"
            )
    return problems


def assert_moments_close(ours, ref, *, mean_scale, rtol, atol_factor, label="", smoothed=True):
    problems = compare_moments(
        ours, ref, mean_scale=mean_scale, rtol=rtol, atol_factor=atol_factor, smoothed=smoothed
    )
    if problems:
        raise AssertionError(f"{label}:\n  " + "\n  ".join(problems))


def assert_psd(C, *, rel_tol=1e-9, label=""):
    """Assert every matrix in the stack C (..., k, k) is symmetric PSD.

    Up to rel_tol times its largest absolute entry.
    """
    C = np.asarray(C, float)
    flat = C.reshape(-1, C.shape[-2], C.shape[-1])
    for i, M in enumerate(flat):
        scale = max(np.max(np.abs(M)), 1e-300)
        asym = np.max(np.abs(M - M.T))
        assert asym <= rel_tol * scale, (
            f"{label}[{i}] not symmetric: {asym:.3g} (scale {scale:.3g})"
        )
        lo = np.min(np.linalg.eigvalsh(0.5 * (M + M.T)))
        assert lo >= -rel_tol * scale, (
            f"{label}[{i}] not PSD: min eigenvalue {lo:.3g} (scale {scale:.3g})"
        )
