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
import scipy.integrate
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


def dense_importance(family, system, y, n, seed, offset=0.0, param=None):
    """Log p(y) by importance sampling from the dense Gaussian posterior of the signal.

    Draws s_obs ~ N(mode, S_oo - S_oo (S_oo + A)^-1 S_oo) (the approximating model's posterior,
    proper prior) with plain Monte Carlo (no antithetics); returns (estimate, standard error).
    """
    mu, S, X = signal_moments(system)
    assert X.shape[1] == 0, "proper prior only"
    keep = ~np.isnan(y)
    offset = np.broadcast_to(offset, y.shape)
    s, ystar, A = dense_mode(family, system, y, offset, param)
    So, Ao = S[np.ix_(keep, keep)], A[keep]
    cov = So - So @ np.linalg.solve(So + np.diag(Ao), So)
    draws = np.random.default_rng(seed).multivariate_normal(s[keep], cov, size=n)
    par = np.broadcast_to(param, y.shape)[keep] if param is not None else None
    exact = logpmf(family, y[keep], draws + offset[keep], par).sum(axis=1)
    approx = scipy.stats.norm.logpdf(ystar[keep], draws, np.sqrt(Ao)).sum(axis=1)
    log_w = exact - approx
    top = log_w.max()
    w = np.exp(log_w - top)
    g = scipy.stats.multivariate_normal(mu[keep], So + np.diag(Ao)).logpdf(ystar[keep])
    return float(g + top + np.log(w.mean())), float(w.std(ddof=1) / np.sqrt(n) / w.mean())


def static_level_loglik(family, y, m0, C0, param=None):
    """Exact log p(y) when every eta_t is one Gaussian theta ~ N(m0, C0), by quadrature."""
    keep = ~np.isnan(y)

    def integrand(theta):
        eta = np.full(int(keep.sum()), theta)
        par = None if param is None else np.broadcast_to(param, y.shape)[keep]
        return np.exp(
            np.sum(logpmf(family, y[keep], eta, par))
            + scipy.stats.norm.logpdf(theta, m0, np.sqrt(C0))
        )

    width = 12 * np.sqrt(C0)
    value, _ = scipy.integrate.quad(
        integrand, m0 - width, m0 + width, epsabs=0, epsrel=1e-12, limit=200
    )
    return float(np.log(value))


def static_level_posterior_mean(family, y, m0, C0, fn, param=None, x=1.0, offset=0.0):
    """E[fn(theta) | y] when eta_t = x_t theta + o_t, theta ~ N(m0, C0), by quadrature."""
    keep = ~np.isnan(y)
    par = None if param is None else np.broadcast_to(param, y.shape)[keep]
    x = np.broadcast_to(x, y.shape)[keep]
    offset = np.broadcast_to(offset, y.shape)[keep]

    def density(theta):
        eta = x * theta + offset
        return np.exp(
            np.sum(logpmf(family, y[keep], eta, par))
            + scipy.stats.norm.logpdf(theta, m0, np.sqrt(C0))
        )

    width = 12 * np.sqrt(C0)
    lo, hi = m0 - width, m0 + width
    total = scipy.integrate.quad(density, lo, hi, epsabs=0, epsrel=1e-12, limit=200)[0]
    first = scipy.integrate.quad(
        lambda t: fn(t) * density(t), lo, hi, epsabs=0, epsrel=1e-12, limit=200
    )[0]
    return first / total
