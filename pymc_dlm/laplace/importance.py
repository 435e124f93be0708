r"""Exact log-likelihood and state draws by importance sampling from the approximating model.

With the approximating Gaussian model at the mode (:mod:`pymc_dlm.laplace.mode`: pseudo-
observations :math:`y^*`, variances :math:`A`, log-likelihood :math:`\log g(y^*)`),

.. math::

    p(y) = g(y^*)\, E_g\!\left[w(s)\right], \qquad
    w(s) = \prod_{t\ \text{observed}} \frac{p(y_t \mid s_t + o_t)}{N(y^*_t; s_t, A_t)},

the expectation under :math:`g(s \mid y^*)`. Draws of the states from :math:`g(\theta \mid
y^*)` come from the simulation smoother by mean correction (Durbin & Koopman 2002): simulate
:math:`(\theta^+, y^+)` from the approximating model, smooth :math:`y^+`, and take
:math:`\hat\theta + \theta^+ - \hat\theta^+`; the smoother runs on all draws at once as a
batch. Diffuse states of :math:`\theta_0` start at 0 in the simulation: the smoothed mean
moves with them, so the difference does not depend on them. Each draw is paired with its
antithetic :math:`2\hat\theta - \tilde\theta` (Durbin & Koopman 2012, §11.4.3); the estimate
is :math:`\log g(y^*) + \log \bar w` and its Monte Carlo standard error
:math:`\mathrm{sd}(\bar w_{\text{pair}}) / (\sqrt{N/2}\, \bar w)` (delta method over the
independent pairs).

References
----------
Durbin, J. and Koopman, S. J. (2002). A simple and efficient simulation smoother for state
space time series analysis. *Biometrika* 89, 603–615.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§11.4 (importance sampling, antithetic variables), §11.5 (the log-likelihood).
"""

from typing import NamedTuple

import numpy as np
import scipy.special

from pymc_dlm.kalman.pseudo_smoother import PseudoSmoother
from pymc_dlm.laplace.mode import signal_rows
from pymc_dlm.model.family import NUMPY

__all__ = ["ImportanceResult", "importance_draws", "simulate_states"]


class ImportanceResult(NamedTuple):
    r"""Importance draws and the estimate of :math:`\log p(y)`.

    State draws (N, ..., T, n), their signals (N, ..., T), log-weights (N, ...), and the
    estimate with its standard error (batch shape).
    """

    states: np.ndarray
    signal: np.ndarray
    log_weights: np.ndarray
    loglik: np.ndarray
    loglik_se: np.ndarray


def _at(x, t, tv):
    return x[..., t, :, :] if tv else x


def simulate_states(values, time_varying, shape, rng):
    r"""Draw :math:`\theta_{1:T}` (``shape`` + (T, n)) from the state equation and prior.

    ``shape`` is (draws, batch...) and T is taken from ``values["T"]``; a diffuse state
    starts at its ``m0`` (its factor row in ``C0_sqrt`` is zero).
    """
    G, W, C0 = values["G"], values["W_sqrt"], values["C0_sqrt"]
    T, n = values["T"], G.shape[-1]
    start = rng.standard_normal((*shape, C0.shape[-1]))
    theta = values["m0"] + np.einsum("...ij,...j->...i", C0, start)
    out = np.empty((*shape, T, n))
    for t in range(T):
        Gt, Wt = _at(G, t, "G" in time_varying), _at(W, t, "W" in time_varying)
        noise = np.einsum("...ij,...j->...i", Wt, rng.standard_normal((*shape, Wt.shape[-1])))
        theta = np.einsum("...ij,...j->...i", Gt, theta) + noise
        out[..., t, :] = theta
    return out


def importance_draws(
    values, y, family, offset, param, mode, *, time_varying, diffuse, n, rng, states=True
):
    """``n`` (even) importance draws of the states and the log-likelihood estimate.

    With ``states=False`` only the signals are drawn (enough for the weights and the
    log-likelihood): the smoothed signals of the simulated data then come from the adjoint
    kernel (:meth:`~pymc_dlm.kalman.pseudo_smoother.PseudoSmoother.signal_mean`) instead of a
    smoother run with covariances, and ``states`` of the result is ``None``.
    """
    if n < 2 or n % 2:
        raise ValueError(f"n_importance must be a positive even number, got {n}")
    half = n // 2
    observed = ~np.isnan(y)
    T = y.shape[-1]
    rows = signal_rows(values["F"], "F" in time_varying)
    theta_plus = simulate_states({**values, "T": T}, time_varying, (half, *y.shape[:-1]), rng)
    signal_plus = np.sum(rows * theta_plus, axis=-1)
    sd = np.sqrt(mode.noise)
    y_plus = signal_plus + sd * rng.standard_normal(signal_plus.shape)
    y_plus = np.where(observed, y_plus, np.nan)
    smoother = PseudoSmoother(values, y.shape, time_varying=time_varying, diffuse=diffuse)
    sd_plus = np.broadcast_to(sd, y_plus.shape)
    fast = None if states else smoother.signal_mean(y_plus, sd_plus, variance=False)
    if fast is None:
        smoothed, _, _ = smoother.run(y_plus, sd_plus)
        deviation = theta_plus - smoothed
        centre = mode.smoothed_mean
        if centre is None:  # a mode found without its states
            centre, _, _ = smoother.run(mode.pseudo, sd)
        states = np.concatenate([centre + deviation, centre - deviation])
        signal = np.sum(rows * states, axis=-1)
    else:
        deviation = np.where(observed, signal_plus - fast[0], 0.0)  # unused where missing
        signal = np.concatenate([mode.signal + deviation, mode.signal - deviation])
        states = None
    y0 = np.where(observed, y, 0.0)
    exact = family.logpdf(y0, signal + offset, param, NUMPY)
    resid = mode.pseudo - signal
    gauss = -0.5 * (np.log(2 * np.pi * mode.noise) + resid**2 / mode.noise)
    log_w = np.sum(np.where(observed, exact - gauss, 0.0), axis=-1)
    # Pairs (a draw and its antithetic) are independent of one another.
    top = np.max(log_w, axis=0)
    pairs = 0.5 * (np.exp(log_w[:half] - top) + np.exp(log_w[half:] - top))
    mean = np.mean(pairs, axis=0)
    se = np.std(pairs, axis=0, ddof=1) / np.sqrt(half) / mean
    loglik = mode.loglik_gaussian + top + np.log(mean)
    return ImportanceResult(states, signal, log_w, loglik, se)


def resample(result, rng):
    """One state path per batch member, drawn with probability proportional to its weight."""
    weights = scipy.special.softmax(result.log_weights, axis=0)
    n = weights.shape[0]
    flat_w = weights.reshape(n, -1)
    picks = np.array([rng.choice(n, p=flat_w[:, j]) for j in range(flat_w.shape[1])])
    states = result.states.reshape(n, flat_w.shape[1], *result.states.shape[-2:])
    chosen = states[picks, np.arange(flat_w.shape[1])]
    return chosen.reshape(result.states.shape[1:])
