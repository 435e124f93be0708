r"""Dense oracles for counts and binary data on a latent DLM (no Kalman recursion).

Nothing here imports pymc_dlm or pytensor. Under the DLM prior the signal
:math:`s = (F_t\theta_t)_{t=1..T}` is jointly Gaussian: mean :math:`\mu`, covariance
:math:`S` (the finite part) and, with diffuse states of :math:`\theta_0`, flat directions
:math:`X` (:func:`tests.support.discount_oracles.dense_moments` with no observation noise).
With an observation family of log-density :math:`\ell(\eta_t)`, :math:`\eta_t = s_t + o_t`:

* the mode of :math:`p(s \mid y)` is found by Newton's method in T dimensions with dense
  matrices (:func:`dense_mode`): each step is the Gaussian conditional mean of :math:`s` given
  the pseudo-observations :math:`y^* = s + A\ell'`, :math:`A = -1/\ell''`, computed by
  generalised least squares for the flat directions (exact, no κ);
* the Laplace log-likelihood (:func:`dense_laplace`) is
  :math:`\sum_t[\ell(\hat\eta_t) - \log N(y^*_t; \hat s_t, A_t)] + \log g(y^*)` with
  :math:`\log g` the dense (diffuse) Gaussian log-density of :math:`y^* \sim N(\mu, S +
  \mathrm{diag} A)`, by ``diffuse_gaussian_closed_form``; with a proper prior it also equals
  :math:`\ell(\hat\eta) + \log N(\hat s; \mu, S) + \tfrac k2\log 2\pi - \tfrac12\log|S^{-1} +
  D|` (:func:`laplace_determinant_form`, written independently, the oracle's own check).

The families' log-densities are scipy's (``scipy.stats``), their derivatives written here.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§10.6–10.7.
"""

import numpy as np
import scipy.special
import scipy.stats

from tests.support import discount_oracles as D

LOG_2PI = np.log(2.0 * np.pi)


def logpmf(family, y, eta, param):
    """The log-probability (scipy's) of counts y at linear predictor eta."""
    if family == "poisson":
        return scipy.stats.poisson.logpmf(y, np.exp(eta))
    if family in ("binomial", "bernoulli"):
        return scipy.stats.binom.logpmf(y, param, scipy.special.expit(eta))
    # negative binomial, PyMC's (mu, alpha) is scipy's (n=alpha, p=alpha/(alpha+mu))
    mu = np.exp(eta)
    return scipy.stats.nbinom.logpmf(y, param, param / (param + mu))


def derivatives(family, y, eta, param):
    """First, second and third derivatives of the log-density in eta."""
    if family == "poisson":
        mu = np.exp(eta)
        return y - mu, -mu, -mu
    if family in ("binomial", "bernoulli"):
        p = scipy.special.expit(eta)
        return y - param * p, -param * p * (1 - p), -param * p * (1 - p) * (1 - 2 * p)
    mu = np.exp(eta)
    q = mu / (mu + param)
    w = y + param
    return y - w * q, -w * q * (1 - q), -w * q * (1 - q) * (1 - 2 * q)


def signal_moments(system):
    """Mean (T,), finite covariance (T, T) and flat directions (T, d) of the signal."""
    T = system.F.shape[0]
    return D.dense_moments(system, [system.W] * T, 0.0)


def _conditional_mean(mu, S, X, ystar, A, keep):
    """E[s | y*_keep] with s = mu + X b + N(0, S), b flat, y* = s + N(0, diag A)."""
    M = S[np.ix_(keep, keep)] + np.diag(A[keep])
    e = ystar[keep] - mu[keep]
    if X.shape[1]:
        Xo = X[keep]
        Mi_X = np.linalg.solve(M, Xo)
        b = np.linalg.solve(Xo.T @ Mi_X, Mi_X.T @ e)
        e = e - Xo @ b
        base = mu + X @ b
    else:
        base = mu
    return base + S[:, keep] @ np.linalg.solve(M, e)


def dense_mode(family, system, y, offset=0.0, param=None, tol=1e-13, max_iter=200):
    """The mode of the signal by dense Newton steps; also y*, A at the mode."""
    mu, S, X = signal_moments(system)
    keep = ~np.isnan(y)
    offset = np.broadcast_to(offset, y.shape)
    s = np.where(keep, 0.0, 0.0) + mu
    for _ in range(max_iter):
        d1, d2, _ = derivatives(family, np.where(keep, y, 0.0), s + offset, param)
        A = -1.0 / d2
        ystar = s + A * d1
        new = _conditional_mean(mu, S, X, ystar, A, keep)
        if np.max(np.abs(new - s)) < tol:
            s = new
            break
        s = new
    else:
        raise RuntimeError("dense Newton did not converge")
    d1, d2, _ = derivatives(family, np.where(keep, y, 0.0), s + offset, param)
    A = -1.0 / d2
    return s, s + A * d1, A


def dense_laplace(family, system, y, offset=0.0, param=None):
    """The Laplace log-likelihood (module doc) and the mode of the signal."""
    mu, S, X = signal_moments(system)
    keep = ~np.isnan(y)
    offset = np.broadcast_to(offset, y.shape)
    s, ystar, A = dense_mode(family, system, y, offset, param)
    exact = logpmf(
        family,
        y[keep],
        (s + offset)[keep],
        np.broadcast_to(param, y.shape)[keep] if param is not None else None,
    )
    approx = scipy.stats.norm.logpdf(ystar[keep], s[keep], np.sqrt(A[keep]))
    g = D.diffuse_gaussian_closed_form(
        np.where(keep, ystar, np.nan), mu, S + np.diag(np.where(keep, A, 1.0)), X
    )
    return float(np.sum(exact) - np.sum(approx) + g), s


def laplace_determinant_form(family, system, y, offset=0.0, param=None):
    """The same approximation as log p(y|s) + log p(s) + k/2 log 2pi - 1/2 log|H| (proper)."""
    mu, S, X = signal_moments(system)
    assert X.shape[1] == 0, "the determinant form here is for a proper prior"
    keep = ~np.isnan(y)
    offset = np.broadcast_to(offset, y.shape)
    s, _, A = dense_mode(family, system, y, offset, param)
    so, mo, So = s[keep], mu[keep], S[np.ix_(keep, keep)]
    par = np.broadcast_to(param, y.shape)[keep] if param is not None else None
    exact = np.sum(logpmf(family, y[keep], so + offset[keep], par))
    prior = scipy.stats.multivariate_normal(mo, So).logpdf(so)
    # log|S^-1 + D| = log|I + S D| - log|S|, D = diag(1/A)
    logdet_H = np.linalg.slogdet(np.eye(len(so)) + So / A[keep])[1] - np.linalg.slogdet(So)[1]
    k = int(keep.sum())
    return float(exact + prior + 0.5 * k * LOG_2PI - 0.5 * logdet_H)
