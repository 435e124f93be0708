r"""Independent oracles for discount factors and a learned observation variance.

Nothing here imports pymc_dlm or pytensor: every function is written from the textbook
definitions so that it can witness the package's numbers (STYLE.md §8). The tests are in
``tests/discount/``; the models and series they share are in ``tests.support.discount_cases``.

The feature (West & Harrison 1997, §6.3 and §10.8): a component given ``discount=δ`` instead
of ``sigma`` has the state noise

.. math::

    W_t[b, b] = (1/\delta_b - 1)\, P_t[b, b], \qquad P_t = G\, C_{t-1} G^\top,

on its own block ``b`` (zero between blocks; ``sigma`` blocks keep ``diag(sigma²)``), and
``obs_var=dlm.LearnedVariance(n0, S0, discount=δ_V)`` gives the precision φ = 1/V the prior
Gamma(n0/2, rate n0·S0/2), with every covariance the user gives taken at V = S0 and scaled by
V/S0 (discounted blocks are scale-free). Timing is R ``dlm``'s: the prior is on θ_0.

Models are sums of blocks (``poly_block``, ``seasonal_block``, ``regression_block``,
``general_block``, each with a ``sigma``/``W`` or a discount ``delta``, a proper prior or a
diffuse one), combined block-diagonally by ``combine`` into a :class:`System`.

The oracles:

* Oracle 1, known V (W&H §6.3): ``covariance_recursion`` gives W_1..W_T. With a known V the
  covariances C_t do not depend on the data, so W_t is a fixed sequence and y is jointly
  Gaussian; ``dense_moments`` builds its mean and T×T covariance from the state equation with
  no filter, and ``known_v_loglik`` evaluates the Gaussian on the observed entries.
  ``sequential_gaussian_loglik`` (a plain covariance-form Kalman filter with the discount
  inline) checks it.
* Oracle 2, learned static variance (W&H §4.6): ``static_t_moments`` is oracle 1's (μ, Σ) at
  V = S0; ``static_t_loglik`` is the multivariate t with n0 degrees of freedom, location μ and
  scale matrix Σ; ``static_t_by_quadrature`` checks it by integrating the Gaussian over φ with
  ``scipy.integrate.quad``.
* Oracle 3, variance discount δ_V (W&H §10.8): ``wh_loglik``, West & Harrison's sequential
  recursion in its original (not unit-scale) form; with δ_V = 1 it equals oracle 2.
  ``wh_loglik_mp`` is the same recursion in 60-digit arithmetic (vague proper priors).
* Oracle 5a, diffuse states with a known V (the κ → ∞ limit of a proper prior, Durbin &
  Koopman 2012, §5.2): ``kappa_filter`` is a 60-digit mpmath Kalman filter where the diffuse
  states get the proper variance κ, the discount using the finite part of P_t extracted from
  two runs at κ1, κ2; ``diffuse_limit_from_kappa`` adds (d/2)·log κ, and tends to the exact
  diffuse log-likelihood. ``diffuse_gaussian_closed_form`` is the limit in closed form.
* Oracle 5b, diffuse states with a learned static variance: the flat part is not scaled by V;
  ``diffuse_student_moments`` gives the unit-scale moments and ``diffuse_student_by_quadrature``
  the marginal over φ as a one-dimensional quadrature of the 60-digit Gaussian density;
  ``diffuse_student_closed_form`` is its κ → ∞ limit in closed form (the degrees of freedom
  count the observations beyond those that fix the diffuse states, W&H §4.10).

No number is stored: every expected value is computed by these functions from the inputs the
tests write down and from series simulated with fixed seeds.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6 (unknown observation variance), §4.10 (reference analysis), §6.3 (component
discounting), §10.8 (variance discounting).
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§5.2 (exact diffuse initialisation: the limit of a proper prior with variance κ).
"""

import math
from typing import NamedTuple

import mpmath
import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.stats

#: Default series length of a block's F (the length of the discount tests' series).
T = 12
LOG_2PI = math.log(2.0 * math.pi)

# --------------------------------------------------------------------------------------------
# Models as the oracles see them: blocks of system matrices, each with W or a discount factor
# --------------------------------------------------------------------------------------------


class Block(NamedTuple):
    """One component: its states' F rows, transition, noise (or discount) and prior."""

    F: np.ndarray  # (T, k): the block's observation row at each time
    G: np.ndarray  # (k, k)
    W: np.ndarray  # (k, k): state noise of a sigma block (zeros for a discounted block)
    delta: float | None  # discount factor of a discounted block, None for a sigma block
    m0: np.ndarray  # (k,)
    C0: np.ndarray  # (k, k), ignored when diffuse
    diffuse: bool


class System(NamedTuple):
    """A sum of blocks: y_t = F[t] θ_t + v_t, θ_t = G θ_{t-1} + w_t."""

    F: np.ndarray  # (T, n)
    G: np.ndarray  # (n, n)
    W: np.ndarray  # (n, n): the sigma blocks' noise, zero on discounted blocks
    discounts: tuple  # ((slice of the block's states, δ), ...)
    m0: np.ndarray  # (n,), 0 on diffuse states
    C0: np.ndarray  # (n, n), the finite part: 0 on diffuse rows and columns
    diffuse: np.ndarray  # (n,) bool


def _block(F, G, *, W=None, delta=None, m0=0.0, C0=None, n_time=T):
    """A block with noise ``W`` (k, k) or a discount ``delta``; ``C0=None``: diffuse prior."""
    G = np.atleast_2d(np.asarray(G, dtype=float))
    k = G.shape[0]
    F = np.asarray(F, dtype=float)
    F = np.broadcast_to(F, (n_time, k)).copy() if F.ndim == 1 else F.copy()
    assert (W is None) != (delta is None), "a block has a W or a discount, not both"
    W = np.zeros((k, k)) if W is None else np.asarray(W, dtype=float)
    m0 = np.broadcast_to(np.asarray(m0, dtype=float), (k,)).copy()
    if C0 is None:
        C0m = np.zeros((k, k))
    else:
        C0m = np.asarray(C0, dtype=float)
        C0m = C0m * np.eye(k) if C0m.ndim == 0 else np.diag(C0m) if C0m.ndim == 1 else C0m
    return Block(F, G, W, delta, m0, C0m, C0 is None)


def _diag_noise(sigma, k):
    return None if sigma is None else np.diag(np.broadcast_to(np.square(sigma), (k,)))


def poly_block(order, *, sigma=None, **kw):
    """``dlmModPoly(order)``: Jordan block of ones, F = e_1', W = diag(sigma²)."""
    G = np.eye(order) + np.eye(order, k=1)
    return _block(np.eye(order)[0], G, W=_diag_noise(sigma, order), **kw)


def seasonal_block(period, *, sigma=None, **kw):
    """``dlmModSeas(period)``: first row of G all -1, ones below the diagonal.

    W = diag(sigma², 0, ..., 0): noise on the current season's effect only.
    """
    k = period - 1
    G = np.eye(k, k=-1)
    G[0, :] = -1.0
    W = None
    if sigma is not None:
        W = np.zeros((k, k))
        W[0, 0] = sigma**2
    return _block(np.eye(k)[0], G, W=W, **kw)


def regression_block(X, *, sigma=None, **kw):
    """``dlmModReg(X, addInt=FALSE)``: F_t = X[t], G = I, W = diag(sigma²)."""
    X = np.asarray(X, dtype=float)
    k = X.shape[1]
    return _block(X, np.eye(k), W=_diag_noise(sigma, k), n_time=X.shape[0], **kw)


def general_block(F, G, *, W=None, **kw):
    """A block given by its matrices (``dlm.StateSpace``)."""
    return _block(F, G, W=W, **kw)


def combine(*blocks):
    """The block-diagonal sum of blocks (R dlm's ``+``)."""
    sizes = [b.G.shape[0] for b in blocks]
    starts = np.cumsum([0, *sizes])
    discounts = tuple(
        (slice(int(starts[i]), int(starts[i + 1])), b.delta)
        for i, b in enumerate(blocks)
        if b.delta is not None
    )
    diffuse = np.concatenate([np.full(k, b.diffuse) for k, b in zip(sizes, blocks)])
    m0 = np.concatenate([b.m0 for b in blocks])
    m0[diffuse] = 0.0  # unused by the diffuse limit; 0 as a proper-prior stand-in
    return System(
        F=np.concatenate([b.F for b in blocks], axis=1),
        G=scipy.linalg.block_diag(*[b.G for b in blocks]),
        W=scipy.linalg.block_diag(*[b.W for b in blocks]),
        discounts=discounts,
        m0=m0,
        C0=scipy.linalg.block_diag(*[b.C0 for b in blocks]),
        diffuse=diffuse,
    )


def discount_noise(system, P, sigma_scale=1.0):
    """W_t: (1/δ - 1) P[b, b] on each discounted block, ``sigma_scale``·W on sigma blocks."""
    W = sigma_scale * system.W.copy()
    for b, delta in system.discounts:
        W[b, b] = (1.0 / delta - 1.0) * P[b, b]
    return W


# --------------------------------------------------------------------------------------------
# Oracle 1: the covariance recursion (data-free with a known V) and the dense joint Gaussian
# --------------------------------------------------------------------------------------------


def covariance_recursion(system, V, observed):
    """W_1..W_T (T, n, n) of a proper-prior model with known V, by the covariance recursion.

    P_t = G C_{t-1} G', W_t from P_t, R_t = P_t + W_t, Q_t = F R_t F' + V,
    C_t = R_t - R_t F' F R_t / Q_t (C_t = R_t when y_t is missing). No data enter.
    """
    assert not system.diffuse.any()
    C = system.C0
    Ws = []
    for t, obs in enumerate(observed):
        P = system.G @ C @ system.G.T
        W = discount_noise(system, P)
        R = P + W
        if obs:
            RF = R @ system.F[t]
            C = R - np.outer(RF, RF) / (system.F[t] @ RF + V)
        else:
            C = R
        Ws.append(W)
    return np.array(Ws)


def state_map(system):
    """The map B (T·n, n(T+1)) with θ_1..θ_T stacked = B z, z = (θ_0, w_1..w_T).

    θ_t = G^t θ_0 + Σ_{j≤t} G^{t-j} w_j.
    """
    n_time, n = system.F.shape
    A = np.zeros((n, n * (n_time + 1)))
    A[:, :n] = np.eye(n)
    rows = []
    for t in range(n_time):
        A = system.G @ A
        A[:, n * (t + 1) : n * (t + 2)] += np.eye(n)
        rows.append(A.copy())
    return np.vstack(rows)


def dense_moments(system, Ws, V):
    """Mean (T,), covariance (T, T) of y and the map X (T, d) of the diffuse states of θ_0.

    θ_t = G^t θ_0 + Σ_{j≤t} G^{t-j} w_j is a linear map B of z = (θ_0, w_1..w_T), so
    E y = B E z, Cov y = B blockdiag(C0, W_1..W_T) B' + V I (C0 is the finite part: the
    diffuse states contribute κ X X' on top, X = the columns of B of the diffuse states).
    """
    n_time, n = system.F.shape
    B = scipy.linalg.block_diag(*system.F[:, None, :]) @ state_map(system)  # (T, n(T+1))
    z_mean = np.concatenate([system.m0, np.zeros(n * n_time)])
    z_cov = scipy.linalg.block_diag(system.C0, *Ws)
    cov = B @ z_cov @ B.T + V * np.eye(n_time)
    return B @ z_mean, cov, B[:, :n][:, system.diffuse]


def gaussian_logpdf(y, mean, cov):
    """Log N(y_obs; mean_obs, cov_obs) over the non-NaN entries."""
    keep = ~np.isnan(y)
    return scipy.stats.multivariate_normal(mean[keep], cov[np.ix_(keep, keep)]).logpdf(y[keep])


def student_logpdf(y, mean, shape, df):
    """Log t_df(y_obs; mean_obs, shape_obs): a marginal of a multivariate t is one."""
    keep = ~np.isnan(y)
    dist = scipy.stats.multivariate_t(loc=mean[keep], shape=shape[np.ix_(keep, keep)], df=df)
    return float(dist.logpdf(y[keep]))


def known_v_loglik(system, V, y):
    """Oracle 1: the dense Gaussian log-density with W_t from ``covariance_recursion``."""
    Ws = covariance_recursion(system, V, ~np.isnan(y))
    mean, cov, _ = dense_moments(system, Ws, V)
    return gaussian_logpdf(y, mean, cov)


def static_t_moments(system, y, S0):
    """Oracle 2's (μ, Σ): the Gaussian joint moments of oracle 1 at V = S0."""
    Ws = covariance_recursion(system, S0, ~np.isnan(y))
    mean, cov, _ = dense_moments(system, Ws, S0)
    return mean, cov


def static_t_loglik(system, y, n0, S0):
    """Oracle 2: multivariate t, df n0, location μ, scale matrix Σ (Σ at V = S0)."""
    mean, cov = static_t_moments(system, y, S0)
    return student_logpdf(y, mean, cov, n0)


def static_t_by_quadrature(system, y, n0, S0):
    """Oracle 2 by integration: ∫ N(y; μ, Σ/(S0 φ)) Gamma(φ; n0/2, n0 S0/2) dφ, u = log φ."""
    mean, cov = static_t_moments(system, y, S0)
    keep = ~np.isnan(y)
    e = (y - mean)[keep]
    unit = cov[np.ix_(keep, keep)] / S0
    logdet = np.linalg.slogdet(unit)[1]
    q = e @ np.linalg.solve(unit, e)
    m = int(keep.sum())
    a, b = n0 / 2.0, n0 * S0 / 2.0

    def log_integrand(u):  # log[N(y | φ) p(φ) φ] at φ = e^u
        phi = math.exp(u)
        log_gauss = -0.5 * (m * LOG_2PI + logdet - m * u + phi * q)
        log_prior = a * math.log(b) - math.lgamma(a) + (a - 1.0) * u - b * phi
        return log_gauss + log_prior + u

    grid = np.linspace(-30.0, 30.0, 6001)
    values = np.array([log_integrand(u) for u in grid])
    top, u_top = values.max(), grid[values.argmax()]
    integral, _ = scipy.integrate.quad(
        lambda u: math.exp(log_integrand(u) - top),
        u_top - 25.0,
        u_top + 25.0,
        points=[u_top],
        epsabs=0.0,
        epsrel=1e-13,
        limit=200,
    )
    return top + math.log(integral)


def sequential_gaussian_loglik(system, V, y):
    """A plain covariance-form Kalman filter with the discount inline (checks oracle 1)."""
    m, C, ll = system.m0, system.C0, 0.0
    for t in range(len(y)):
        a = system.G @ m
        P = system.G @ C @ system.G.T
        R = P + discount_noise(system, P)
        if np.isnan(y[t]):
            m, C = a, R
            continue
        F = system.F[t]
        Q = F @ R @ F + V
        e = y[t] - F @ a
        ll += -0.5 * (LOG_2PI + math.log(Q) + e * e / Q)
        K = R @ F / Q
        m, C = a + K * e, R - np.outer(K, K) * Q
    return ll


# --------------------------------------------------------------------------------------------
# Oracle 3: West & Harrison's sequential recursion with a variance discount (§10.8)
# --------------------------------------------------------------------------------------------


def wh_loglik(system, y, n0, S0, delta_v):
    """Sum of one-step Student-t log-densities of the W&H recursion, original (not unit) scale.

    n, d, S: degrees of freedom, sum of squares, estimate of V; C_t is at scale S_t. Sigma
    blocks' W at time t is (S_{t-1}/S0)·sigma²; discounted blocks' W comes from P_t.
    """
    n, d, S = n0, n0 * S0, S0
    m, C = system.m0, system.C0
    ll = 0.0
    for t in range(len(y)):
        a = system.G @ m
        P = system.G @ C @ system.G.T
        R = P + discount_noise(system, P, sigma_scale=S / S0)
        if np.isnan(y[t]):
            n, d, m, C = delta_v * n, delta_v * d, a, R
            continue
        F = system.F[t]
        f = F @ a
        Q = F @ R @ F + S
        e = y[t] - f
        nu = delta_v * n
        ll += (
            math.lgamma((nu + 1.0) / 2.0)
            - math.lgamma(nu / 2.0)
            - 0.5 * math.log(nu * math.pi * Q)
            - (nu + 1.0) / 2.0 * math.log1p(e * e / (nu * Q))
        )
        A = R @ F / Q
        n_new = delta_v * n + 1.0
        d = delta_v * d + S * e * e / Q
        S_new = d / n_new
        m = a + A * e
        C = (S_new / S) * (R - np.outer(A, A) * Q)
        n, S = n_new, S_new
    return ll


def wh_loglik_mp(system, y, n0, S0, delta_v, dps=60, trace=False):
    """Oracle 3 in ``dps``-digit arithmetic (mpmath): :func:`wh_loglik` step for step.

    For vague proper priors (C0 = 1e7 against a unit-order S), where the float recursion
    itself loses digits. Returns an mpf; with ``trace``, ``(loglik, S, m)``: also the
    estimates :math:`S_t = d_t / n_t` (T,) and the filtered means :math:`m_t` (T, n), as
    floats.
    """
    scales, means = [], []
    with mpmath.workdps(dps):
        mp = mpmath.mp
        G, W0 = mp.matrix(system.G.tolist()), mp.matrix(system.W.tolist())
        dV, S0m = mp.mpf(delta_v), mp.mpf(S0)
        n, d, S = mp.mpf(n0), mp.mpf(n0) * S0m, S0m
        m, C = mp.matrix(system.m0.tolist()), mp.matrix(system.C0.tolist())
        ll = mp.mpf(0)
        for t in range(len(y)):
            a, P = G * m, G * C * G.T
            R = P + W0 * (S / S0m)
            for b, delta in system.discounts:
                factor = 1 / mp.mpf(delta) - 1
                for i in range(b.start, b.stop):
                    for j in range(b.start, b.stop):
                        R[i, j] = P[i, j] * (1 + factor)
            if np.isnan(y[t]):
                n, d, m, C = dV * n, dV * d, a, R
                scales.append(float(d / n))
                means.append([float(x) for x in m])
                continue
            F = mp.matrix([system.F[t].tolist()])
            RF = R * F.T
            Q = (F * RF)[0, 0] + S
            e = mp.mpf(y[t]) - (F * a)[0, 0]
            nu = dV * n
            ll += (mp.loggamma((nu + 1) / 2) - mp.loggamma(nu / 2) - mp.log(nu * mp.pi * Q) / 2
                   - (nu + 1) / 2 * mp.log(1 + e * e / (nu * Q)))  # fmt: skip
            n_new = nu + 1
            d = dV * d + S * e * e / Q
            S_new = d / n_new
            m = a + RF * (e / Q)
            C = (S_new / S) * (R - RF * RF.T / Q)
            n, S = n_new, S_new
            scales.append(float(S))
            means.append([float(x) for x in m])
        if trace:
            return ll, np.array(scales), np.array(means)
        return ll


# --------------------------------------------------------------------------------------------
# Oracle 5: diffuse states as the κ → ∞ limit of a proper prior, in 60-digit arithmetic
# --------------------------------------------------------------------------------------------

KAPPAS = (1e25, 1e30)  # exact binary values of these floats are used


def kappa_filter(system, V, y, kappas=KAPPAS, dps=60):
    """Log-likelihoods at C0[diffuse] = κ·I for each κ, and the shared W_1..W_T (floats).

    Plain covariance-form Kalman filter in mpmath. The runs share W_t, computed from the finite
    part of P_t = G C_{t-1} G', extracted as (κ2 P(κ1) - κ1 P(κ2)) / (κ2 - κ1): exact for the
    part linear in κ, error O(1/κ1). Returns (log-likelihoods [mpf], W (T, n, n) float64).
    """
    n_time, n = system.F.shape
    with mpmath.workdps(dps):
        mp = mpmath.mp
        k1, k2 = (mp.mpf(k) for k in kappas)
        G = mp.matrix(system.G.tolist())
        Vm = mp.mpf(V)
        runs = []
        for k in (k1, k2):
            C = mp.matrix(system.C0.tolist())
            for i in np.flatnonzero(system.diffuse):
                C[int(i), int(i)] = k
            runs.append([mp.matrix(system.m0.tolist()), C, mp.mpf(0)])
        Ws = []
        for t in range(n_time):
            Ps = [G * run[1] * G.T for run in runs]
            finite = (k2 * Ps[0] - k1 * Ps[1]) / (k2 - k1)
            W = mp.matrix(system.W.tolist())
            for b, delta in system.discounts:
                factor = 1 / mp.mpf(delta) - 1
                for i in range(b.start, b.stop):
                    for j in range(b.start, b.stop):
                        W[i, j] = factor * finite[i, j]
            Ws.append(np.array(W.tolist(), dtype=float))
            F = mp.matrix([system.F[t].tolist()])  # (1, n)
            for run, P in zip(runs, Ps):
                a = G * run[0]
                R = P + W
                if np.isnan(y[t]):
                    run[0], run[1] = a, R
                    continue
                RF = R * F.T
                Q = (F * RF)[0, 0] + Vm
                e = mp.mpf(y[t]) - (F * a)[0, 0]
                run[2] += -(mp.log(2 * mp.pi) + mp.log(Q) + e * e / Q) / 2
                K = RF / Q
                run[0], run[1] = a + K * e, R - K * K.T * Q
        return [run[2] for run in runs], np.array(Ws)


def diffuse_limit_from_kappa(system, V, y, dps=60):
    """Oracle 5a: loglik(κ2) + (d/2) log κ2, and the same at κ1 (their gap is O(1/κ1))."""
    d = int(system.diffuse.sum())
    with mpmath.workdps(dps):
        lls, Ws = kappa_filter(system, V, y, dps=dps)
        values = [ll + d * mpmath.log(mpmath.mpf(k)) / 2 for ll, k in zip(lls, KAPPAS)]
        return float(values[1]), float(values[0] - values[1]), Ws


def diffuse_gaussian_closed_form(y, mean, cov, X):
    r"""The κ → ∞ limit of log[κ^{d/2} N(y; μ, κXX' + S)], in closed form.

    It is log[(2π)^{-m/2} |S|^{-1/2} |X'S^{-1}X|^{-1/2} e^{-e'Me/2}], from
    κ^{d/2} N(y; μ, κXX' + S) = ∫ N(y; μ + Xb, S) κ^{d/2} N(b; 0, κI) db → (2π)^{-d/2}
    ∫ N(y; μ + Xb, S) db, with M = S^{-1} - S^{-1}X(X'S^{-1}X)^{-1}X'S^{-1} (observed entries
    only). ``cov`` is the finite part S (the κ-free covariance).
    """
    keep = ~np.isnan(y)
    e, S, Xo = (y - mean)[keep], cov[np.ix_(keep, keep)], X[keep]
    Si_X = np.linalg.solve(S, Xo)
    Si_e = np.linalg.solve(S, e)
    H = Xo.T @ Si_X
    q = e @ Si_e - (Xo.T @ Si_e) @ np.linalg.solve(H, Xo.T @ Si_e)
    m = int(keep.sum())
    return -0.5 * (m * LOG_2PI + np.linalg.slogdet(S)[1] + np.linalg.slogdet(H)[1] + q)


def unit_scale_system(system, S0):
    """The model at V = 1 when the user's covariances are the values at V = S0."""
    return system._replace(W=system.W / S0, C0=system.C0 / S0)


def diffuse_student_moments(system, y, S0):
    """(μ, Σ*, X) of oracle 5b: W_t of discounted blocks from the κ-filter at unit scale."""
    unit = unit_scale_system(system, S0)
    _, _, Ws = diffuse_limit_from_kappa(unit, 1.0, y)
    mean, cov_unit, X = dense_moments(unit, Ws, 1.0)
    return mean, cov_unit, X


def _forward_substitution(L, b):
    z = mpmath.mp.matrix(L.rows, 1)
    for i in range(L.rows):
        z[i] = (b[i] - mpmath.mp.fsum(L[i, j] * z[j] for j in range(i))) / L[i, i]
    return z


def diffuse_student_by_quadrature(y, mean, cov_unit, X, n0, S0, kappa=1e30, dps=60):
    r"""Oracle 5b: log ∫ N(y; μ, κXX' + Σ*/φ) Gamma(φ; n0/2, n0 S0/2) dφ + (d/2) log κ.

    The flat part κXX' is not scaled by V = 1/φ. The Gaussian is evaluated at 60 digits (its
    covariance spans κ = 1e30 down to O(1)); the integral over u = log φ is one-dimensional.
    """
    keep = ~np.isnan(y)
    m, d = int(keep.sum()), X.shape[1]
    with mpmath.workdps(dps):
        mp = mpmath.mp
        e = mp.matrix([mp.mpf(a) - mp.mpf(b) for a, b in zip(y[keep], mean[keep])])
        Xo = mp.matrix(X[keep].tolist())
        flat = mp.mpf(kappa) * Xo * Xo.T
        S = mp.matrix(cov_unit[np.ix_(keep, keep)].tolist())
        a, b = mp.mpf(n0) / 2, mp.mpf(n0) * mp.mpf(S0) / 2
        log_norm = a * mp.log(b) - mp.loggamma(a)

        def log_integrand(u):
            phi = mp.exp(u)
            K = flat + S / phi
            L = mp.cholesky(K)
            z = _forward_substitution(L, e)  # L z = e, so z'z = e' K^{-1} e
            logdet = 2 * mp.fsum(mp.log(L[i, i]) for i in range(m))
            log_gauss = -(m * mp.log(2 * mp.pi) + logdet + (z.T * z)[0, 0]) / 2
            return log_gauss + log_norm + (a - 1) * u - b * phi + u

        # The integrand in u is smooth and unimodal: locate its top on a coarse grid, then
        # integrate exp(log_integrand - top), evaluated at 60 digits, with scipy's adaptive
        # Gauss-Kronrod quadrature (its float64 sum is accurate to ~1e-14 relative).
        grid = np.linspace(-20.0, 10.0, 31)
        values = [float(log_integrand(mp.mpf(u))) for u in grid]
        top, u_top = max(values), float(grid[int(np.argmax(values))])
        integral, _ = scipy.integrate.quad(
            lambda u: float(mp.exp(log_integrand(mp.mpf(u)) - top)),
            u_top - 12.0,
            u_top + 5.0,
            points=[u_top],
            epsabs=0.0,
            epsrel=1e-12,
            limit=200,
        )
        return top + math.log(integral) + float(d * mp.log(mp.mpf(kappa)) / 2)


def diffuse_student_closed_form(y, mean, cov_unit, X, n0, S0):
    r"""Oracle 5b's κ → ∞ limit in closed form.

    With S = Σ*/φ, the closed form of ``diffuse_gaussian_closed_form`` is
    (2π)^{-m/2} φ^{(m-d)/2} |Σ*|^{-1/2} |X'Σ*^{-1}X|^{-1/2} e^{-φ q/2} (q = e'M*e); against
    Gamma(a = n0/2, b = n0 S0/2) it integrates to
    b^a Γ(a + (m-d)/2) / (Γ(a) (b + q/2)^{a + (m-d)/2}) times the φ-free factors.
    """
    keep = ~np.isnan(y)
    e, S, Xo = (y - mean)[keep], cov_unit[np.ix_(keep, keep)], X[keep]
    Si_X, Si_e = np.linalg.solve(S, Xo), np.linalg.solve(S, e)
    H = Xo.T @ Si_X
    q = e @ Si_e - (Xo.T @ Si_e) @ np.linalg.solve(H, Xo.T @ Si_e)
    m, d = int(keep.sum()), Xo.shape[1]
    a, b = n0 / 2.0, n0 * S0 / 2.0
    c = a + (m - d) / 2.0
    return (
        -0.5 * (m * LOG_2PI + np.linalg.slogdet(S)[1] + np.linalg.slogdet(H)[1])
        + a * math.log(b)
        + math.lgamma(c)
        - math.lgamma(a)
        - c * math.log(b + q / 2.0)
    )


# --------------------------------------------------------------------------------------------
# Oracle 4: the filter's moments at every time (W&H Table 4.3 form), for ``kalman_filter``
# --------------------------------------------------------------------------------------------


def wh_moments(system, y, *, V=None, n0=None, S0=None, delta_v=1.0):
    """Per-time moments of the discounted filter, a known ``V`` or a learned (n0, S0, δ_V).

    Known V (W&H §6.3): a_t = G m_{t-1}, P_t = G C_{t-1} G', R_t = P_t + W_t, f_t = F a_t,
    Q_t = F R_t F' + V, A_t = R_t F'/Q_t, m_t = a_t + A_t e_t, C_t = R_t - A_t A_t' Q_t.
    Learned V (W&H §4.6, Table 4.3, and §10.8) at the current estimate: sigma blocks' W at
    time t is (S_{t-1}/S0)·sigma², Q_t = F R_t F' + S_{t-1}, n_t = δ_V n_{t-1} + 1,
    d_t = δ_V d_{t-1} + S_{t-1} e_t²/Q_t, S_t = d_t/n_t, C_t = (S_t/S_{t-1})(R_t - A_t A_t' Q_t)
    and the forecast is t with δ_V n_{t-1} degrees of freedom. A missing y_t: m_t = a_t,
    C_t = R_t, n_t = δ_V n_{t-1}, d_t = δ_V d_{t-1}. Proper prior only.

    Returns a dict of arrays over time (the names of ``pymc_dlm.kalman_filter``'s Dataset) and
    ``loglik``, the sum of the one-step log-densities (Gaussian, or Student-t when learned).
    """
    assert not system.diffuse.any() and (V is None) != (n0 is None)
    m, C = system.m0, system.C0
    n, d, S = (None, None, V) if V is not None else (n0, n0 * S0, S0)
    out = {k: [] for k in ("predicted_mean", "predicted_cov", "forecast_mean", "forecast_cov")}
    out.update({k: [] for k in ("filtered_mean", "filtered_cov", "dof", "scale", "forecast_dof")})
    ll = 0.0
    for t in range(len(y)):
        a = system.G @ m
        P = system.G @ C @ system.G.T
        R = P + discount_noise(system, P, sigma_scale=1.0 if V is not None else S / S0)
        F = system.F[t]
        f, Q = F @ a, F @ R @ F + S
        e = y[t] - f
        A = R @ F / Q
        if V is None:
            nu = delta_v * n
            out["forecast_dof"].append(nu)
            n, d = nu, delta_v * d
            if not np.isnan(y[t]):
                ll += (
                    math.lgamma((nu + 1.0) / 2.0)
                    - math.lgamma(nu / 2.0)
                    - 0.5 * math.log(nu * math.pi * Q)
                    - (nu + 1.0) / 2.0 * math.log1p(e * e / (nu * Q))
                )
                n, d = n + 1.0, d + S * e * e / Q
            out["dof"].append(n)
            out["scale"].append(d / n)
        elif not np.isnan(y[t]):
            ll += -0.5 * (LOG_2PI + math.log(Q) + e * e / Q)
        S_new = S if V is not None else d / n
        if np.isnan(y[t]):
            m, C = a, R
        else:
            m, C = a + A * e, (S_new / S) * (R - np.outer(A, A) * Q)
        for k, v in zip(out, (a, R, f, Q, m, C)):
            out[k].append(v)
        S = S_new
    result = {k: np.array(v) for k, v in out.items() if v}
    result["loglik"] = ll
    return result


# --------------------------------------------------------------------------------------------
# Oracle 6: the states given the data (FFBS draws) and the forecast (W&H §6.3), by dense
# conditioning with no filter
# --------------------------------------------------------------------------------------------


def dense_states(system, Ws, V, y):
    """Mean (T, n) and covariance (T·n, T·n) of θ_1..θ_T given the non-NaN entries of ``y``.

    The joint Gaussian of (θ_1..θ_T, y_1..y_T) as a linear map of z = (θ_0, w_1..w_T) and v
    (θ_t = G^t θ_0 + Σ_{j≤t} G^{t-j} w_j), conditioned on the observed y with
    ``np.linalg.solve``. ``Ws`` (T, n, n) are given (the covariance recursion's, or the
    κ-filter's for diffuse states). Also returns the quadratic form e'Σ_yy⁻¹e of the observed
    residuals and their number m (for the learned variance's posterior).
    """
    n_time, n = system.F.shape
    B = state_map(system)  # (T·n, n(T+1)): θ stacked
    By = scipy.linalg.block_diag(*system.F[:, None, :]) @ B  # (T, n(T+1)): F_t θ_t
    z_mean = np.concatenate([system.m0, np.zeros(n * n_time)])
    z_cov = scipy.linalg.block_diag(system.C0, *Ws)
    keep = ~np.isnan(y)
    By = By[keep]
    S_yy = By @ z_cov @ By.T + V * np.eye(int(keep.sum()))
    S_ty = B @ z_cov @ By.T
    e = y[keep] - By @ z_mean
    gain = np.linalg.solve(S_yy, S_ty.T).T
    mean = B @ z_mean + gain @ e
    cov = B @ z_cov @ B.T - gain @ S_ty.T
    return mean.reshape(n_time, n), 0.5 * (cov + cov.T), e @ np.linalg.solve(S_yy, e), e.size


def kappa_limit_states(system, Ws, V, y):
    """:func:`dense_states`' mean and covariance in the diffuse limit, with its error bounded.

    The proper prior κI on the diffuse states at κ = 1e6 and 1e7; their gap (asserted below
    1e-4) bounds the distance to the κ → ∞ limit. Returns the κ = 1e7 moments.
    """
    runs = []
    for kappa in (1e6, 1e7):
        prior = system._replace(C0=system.C0 + kappa * np.diag(system.diffuse.astype(float)))
        runs.append(dense_states(prior, Ws, V, y)[:2])
    (m1, c1), (m2, c2) = runs
    assert np.max(np.abs(m1 - m2)) < 1e-4 and np.max(np.abs(c1 - c2)) < 1e-4
    return m2, c2


def static_t_states(system, y, n0, S0):
    """θ_1..θ_T | y with a learned static variance: multivariate t (location, scale, df, S_T).

    Given V every covariance is (V/S0) times its value at V = S0, so θ | y, V ~ N(m, (V/S0) K)
    with (m, K) the Gaussian conditional at V = S0. The observed y given φ = 1/V is
    N(μ, Σ/(S0 φ)), so φ | y ~ Gamma((n0 + m)/2, (n0 S0 + S0 q)/2) with q = e'Σ⁻¹e: n_T = n0 + m,
    d_T = S0 (n0 + q), S_T = d_T/n_T, and S_T φ ~ χ²_{n_T}/n_T. Hence
    θ | y ~ t_{n_T}(m, (S_T/S0) K).
    """
    Ws = covariance_recursion(system, S0, ~np.isnan(y))
    mean, K, q, m = dense_states(system, Ws, S0, y)
    n_T = n0 + m
    S_T = S0 * (n0 + q) / n_T
    return mean, (S_T / S0) * K, n_T, S_T


def forecast_moments(system, m_T, C_T, V, steps, sigma_scale=1.0, future_W=None):
    """Mean and covariance of (y_{T+1..T+H}, θ_{T+1}, ..., θ_{T+H}) given θ_T ~ N(m_T, C_T).

    West & Harrison's convention (§6.3): W_{T+k} = W_{T+1} = (1/δ - 1)·G C_T G' on discounted
    blocks plus ``sigma_scale``·W on sigma blocks, for every k ≥ 1. A dense linear map of
    (θ_T, w_{T+1..T+H}, v_{T+1..T+H}); F is the system's last row (a constant F).
    ``future_W`` (H, n, n): the sigma blocks' W at each future step instead of the system's
    (zero on the discounted blocks, whose held W is added).
    """
    n = system.G.shape[0]
    held = discount_noise(system, system.G @ C_T @ system.G.T, sigma_scale)
    if future_W is None:
        Ws = [held] * steps
    else:
        Ws = [held - sigma_scale * system.W + sigma_scale * W_k for W_k in future_W]
    A = np.zeros((n, n * (steps + 1) + steps))
    A[:, :n] = np.eye(n)
    ys, thetas = [], []
    for k in range(steps):
        A = system.G @ A
        A[:, n * (k + 1) : n * (k + 2)] += np.eye(n)
        row = system.F[-1] @ A
        row[n * (steps + 1) + k] = 1.0
        ys.append(row)
        thetas.append(A.copy())
    L = np.vstack([np.array(ys), *thetas])
    z_mean = np.concatenate([m_T, np.zeros(n * steps + steps)])
    z_cov = scipy.linalg.block_diag(C_T, *Ws, V * np.eye(steps))
    return L @ z_mean, L @ z_cov @ L.T
