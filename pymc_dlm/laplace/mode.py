r"""The posterior mode of the signal by the approximating Gaussian model, at fixed values.

For an observation family with log-density :math:`\ell(\eta_t)` (:mod:`pymc_dlm.model.family`)
and a Gaussian DLM prior on the signal :math:`s_t = F_t\theta_t` (:math:`\eta_t = s_t + o_t`),
Newton's method for the mode of :math:`p(s \mid y)` is a Kalman smoother run (Durbin &
Koopman 2012, §10.6): at the current :math:`\tilde s`, the approximating model has the
pseudo-observations and variances

.. math::

    A_t = -1/\ell''(\tilde\eta_t), \qquad y^*_t = \tilde s_t + A_t\,\ell'(\tilde\eta_t),

:math:`y^*_t = s_t + \varepsilon_t`, :math:`\varepsilon_t \sim N(0, A_t)`, and the next
iterate is its smoothed signal :math:`E_g[s_t \mid y^*]`. Every step is O(T n²) on the numba
kernels (exact diffuse starts, missing values), never a dense T-dimensional system: the
smoothed signal's mean and variance come from the derivatives of the approximating model's
log-likelihood in its data and noise (the adjoint kernel,
:meth:`~pymc_dlm.kalman.pseudo_smoother.PseudoSmoother.signal_mean`); a smoother run with
covariances gives the states where they are asked for. The families are log-concave, so
the mode is unique; the iteration stops when no signal moves by more than ``tol`` (relative
to 1 + |s|): Newton's quadratic convergence puts the last linearisation point that close to
the mode. Only that last step needs the variances: the steps before it carry the adjoints
of the means alone (about two thirds of the time), and the step after a change below
:math:`\sqrt{\mathrm{tol}}` is expected to be the last. Its smoother run also gives the
quantities the exact gradient of the Laplace log-likelihood needs (:mod:`pymc_dlm.laplace.loglik`):

* the smoothed signal variances :math:`V_t = \mathrm{Var}_g(s_t \mid y^*)`, the diagonal of
  :math:`H^{-1}`, :math:`H = -\nabla^2 \log p(s \mid y)` at the mode;
* :math:`c_t = \tfrac12 V_t\,\ell'''(\hat\eta_t)`, the derivative of the Laplace
  log-likelihood in :math:`\hat s_t` (through :math:`-\tfrac12\log|H|`);
* :math:`w = H^{-1} c`, by linearity of the smoothed mean in the data: the smoothed signal
  at :math:`y^* + A c` minus the one at :math:`y^*`.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§10.6 (mode estimation), §10.7 (the approximating model's loglikelihood).
Shephard, N. and Pitt, M. K. (1997). Likelihood analysis of non-Gaussian measurement time
series. *Biometrika* 84, 653–667.
"""

from typing import NamedTuple

import numpy as np

from pymc_dlm.kalman.pseudo_smoother import PseudoSmoother
from pymc_dlm.model.family import NUMPY

__all__ = ["Mode", "ModeNotFound", "approximating_model", "posterior_mode", "signal_rows"]

#: Relative change of the signal below which the iteration has converged.
TOL = 1e-11

#: Newton steps allowed before the search is declared failed.
MAX_ITER = 100


class ModeNotFound(RuntimeError):
    """The Newton iteration for the mode did not converge (or left the finite numbers)."""


class Mode(NamedTuple):
    r"""The mode and what the gradient needs, each (..., T); NaN/0 where y is missing.

    ``signal`` :math:`\hat s_t`; ``variance`` :math:`V_t`; ``slope`` :math:`c_t`; ``solve``
    :math:`w = H^{-1}c`; ``pseudo`` :math:`y^*_t` and ``noise`` :math:`A_t` of the
    approximating model at the mode; ``loglik_gaussian`` its log-likelihood of
    :math:`y^*` (batch shape); ``smoothed_mean``/``smoothed_cov`` its smoothed states; and
    ``iterations``, the number of smoother runs.
    """

    signal: np.ndarray
    variance: np.ndarray
    slope: np.ndarray
    solve: np.ndarray
    pseudo: np.ndarray
    noise: np.ndarray
    loglik_gaussian: np.ndarray
    smoothed_mean: np.ndarray
    smoothed_cov: np.ndarray
    iterations: int


def approximating_model(family, y, signal, offset, param):
    """Pseudo-observations :math:`y^*` and variances :math:`A` at ``signal`` (NaN: missing)."""
    observed = ~np.isnan(y)
    y0 = np.where(observed, y, 0.0)
    d = family.derivatives(y0, signal + offset, param, NUMPY)
    with np.errstate(divide="ignore", invalid="ignore"):
        A = -1.0 / d.second
        pseudo = signal + A * d.first
    A = np.where(observed, A, 1.0)
    pseudo = np.where(observed, pseudo, np.nan)
    return pseudo, A, d


def signal_rows(F, tv_F):
    """The rows :math:`F_t` (..., T or 1, n) of a one-series F (..., [T,] 1, n)."""
    return F[..., 0, :] if tv_F else F[..., None, 0, :]


def _signal(F, means, tv_F):
    """:math:`F_t m_t` for means (..., T, n) and F (..., [T,] 1, n)."""
    return np.sum(signal_rows(F, tv_F) * means, axis=-1)


def _signal_var(F, covs, tv_F):
    row = signal_rows(F, tv_F)
    return np.einsum("...i,...ij,...j->...", row, covs, row)


def _smoothed(smoother, values, pseudo, A, tv_F, variance=True):
    """Smoothed signal mean and variance (and loglik) by the adjoint kernel, else a full run.

    Returns ``(mean, variance, loglik, means, covs)``; the state moments ``means, covs`` only
    from a full run (``None`` otherwise). With ``variance=False`` the kernel's route gives
    no variance (``None``) and takes about two thirds of the time.
    """
    fast = smoother.signal_mean(pseudo, np.sqrt(A), variance)
    if fast is not None:
        return (*fast, None, None)
    means, covs, loglik = smoother.run(pseudo, np.sqrt(A))
    mean = _signal(values["F"], means, tv_F)
    return mean, _signal_var(values["F"], covs, tv_F), loglik, means, covs


def _change(new, old, observed):
    """Largest relative move of the signal over the observed steps."""
    rel = np.abs(new - old) / (1.0 + np.abs(old))
    return np.max(np.where(observed, rel, 0.0), initial=0.0)


def posterior_mode(
    values,
    y,
    family,
    offset,
    param,
    *,
    time_varying,
    diffuse,
    start=None,
    tol=TOL,
    max_iter=MAX_ITER,
    states=True,
    solve=True,
):
    """Find the mode of the signal; raise :class:`ModeNotFound` when the search fails.

    Parameters
    ----------
    values : dict of str to numpy.ndarray
        ``F, G, W_sqrt, m0, C0_sqrt`` as :func:`~pymc_dlm.kalman.fixed_filter.
        numeric_system` gives them (one series: F is (..., [T,] 1, n)).
    y : numpy.ndarray, shape (..., T)
        Observations, NaN for missing values.
    family : Family
        The observation family.
    offset : numpy.ndarray, broadcastable to y
        Known offset :math:`o_t` of the linear predictor.
    param : numpy.ndarray or float
        The family's parameter (trials, dispersion) at its value.
    time_varying : frozenset of str
        Declared time-varying matrices.
    diffuse : numpy.ndarray of bool
        The diffuse states.
    start : numpy.ndarray, optional
        Starting signal (..., T); by default the family's start from the data, with the
        mean of the observed starts at missing values.
    states : bool
        Also the smoothed states of the approximating model at the mode (one smoother run
        with covariances); without them ``smoothed_mean``/``smoothed_cov`` are ``None`` and
        the signal at missing steps is the starting value (the log-likelihood needs neither).
    solve : bool
        Also :math:`w = H^{-1}c` (one more smoother run); without it ``solve`` is zero. The
        log-likelihood's gradient needs it only where the family's parameter or the offset
        depend on a model parameter.
    """
    tv_F = "F" in time_varying
    observed = ~np.isnan(y)
    smoother = PseudoSmoother(values, y.shape, time_varying=time_varying, diffuse=diffuse)
    if start is None:
        eta0 = family.start(np.where(observed, y, 0.0), param)
        fill = np.nanmean(np.where(observed, eta0, np.nan), axis=-1, keepdims=True)
        start = np.where(observed, eta0, np.nan_to_num(fill)) - offset
    signal = np.broadcast_to(start, y.shape).astype("float64").copy()
    last = False  # whether this pass is expected to be the last (it then gives the variance)
    for iteration in range(1, max_iter + 1):
        pseudo, A, d = approximating_model(family, y, signal, offset, param)
        if not (np.all(np.isfinite(pseudo[observed])) and np.all(A[observed] > 0)):
            raise ModeNotFound(
                "the approximating model left the finite numbers (a linear predictor too "
                "large or too small for the family)"
            )
        new, variance, loglik, means, covs = _smoothed(
            smoother, values, pseudo, A, tv_F, variance=last
        )
        new = np.where(observed, new, signal)
        change = _change(new, signal, observed)
        if not np.isfinite(change):
            raise ModeNotFound("the smoothed signal is not finite")
        if change < tol:
            # Newton converges quadratically: ``signal`` is within about ``change`` of the
            # mode, and this run is the approximating model there.
            if variance is None:  # not foreseen: the variance at this same point
                _, variance, loglik, means, covs = _smoothed(smoother, values, pseudo, A, tv_F)
            break
        # The next change is about change**2 (quadratic convergence): below tol, the next
        # pass is the last, so it also computes the variance.
        last = change * change < tol
        signal = new
    else:
        raise ModeNotFound(f"no convergence of the mode in {max_iter} Newton steps")
    if states and means is None:
        means, covs, loglik = smoother.run(pseudo, np.sqrt(A))
    if means is not None:  # the smoothed signal at missing steps too
        signal = np.where(observed, signal, _signal(values["F"], means, tv_F))
    slope = np.where(observed, 0.5 * variance * d.third, 0.0)
    if solve:
        moved = np.where(observed, pseudo + A * slope, np.nan)
        shifted = _smoothed(smoother, values, moved, A, tv_F, variance=False)[0]
        solved = np.where(observed, shifted - new, 0.0)
    else:
        solved = np.zeros_like(slope)
    return Mode(
        signal=signal,
        variance=variance,
        slope=slope,
        solve=solved,
        pseudo=pseudo,
        noise=A,
        loglik_gaussian=np.asarray(loglik),
        smoothed_mean=means,
        smoothed_cov=covs,
        iterations=iteration,
    )


def laplace_value(mode, y, family, offset, param):
    r"""The Laplace log-likelihood at a found mode, numerically.

    :math:`\log p(y \mid \hat s) - \log g(y^* \mid \hat s) + \log g(y^*)`: the family's
    log-density at the mode, minus the approximating model's observation density there, plus
    the approximating model's log-likelihood (Durbin & Koopman 2012, §10.7). It equals
    :math:`\log p(y\mid\hat s) + \log p(\hat s) + \tfrac{k}{2}\log 2\pi - \tfrac12\log|H|`.
    """
    observed = ~np.isnan(y)
    y0 = np.where(observed, y, 0.0)
    exact = family.logpdf(y0, mode.signal + offset, param, NUMPY)
    resid = np.where(observed, mode.pseudo - mode.signal, 0.0)
    gauss = -0.5 * (np.log(2 * np.pi * mode.noise) + resid**2 / mode.noise)
    terms = np.where(observed, exact - gauss, 0.0)
    return np.sum(terms, axis=-1) + mode.loglik_gaussian
