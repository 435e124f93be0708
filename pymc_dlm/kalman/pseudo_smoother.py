r"""The smoother of one system run many times on new pseudo-observations and variances.

The mode search for non-Gaussian observations (:mod:`pymc_dlm.laplace.mode`) and the
importance sampler (:mod:`pymc_dlm.laplace.importance`) smooth the same state model again
and again with new data :math:`y^*` and new observation variances :math:`A_t` (one series).
The kernels' inputs depend on neither but for two arrays, so they are laid out once
(:func:`~pymc_dlm.kalman.fixed_filter.kernel_inputs`, with a unit observation noise) and
each run replaces the data and the standard deviations and calls the kernels' forward and
backward passes (:func:`~pymc_dlm.kalman.fused.moments.moments_into`) directly. A member the
kernels do not compute to full accuracy (their status is not OK) is smoothed by
:func:`~pymc_dlm.kalman.fixed_filter.run` instead (the scans).
"""

import threading

import numpy as np

from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.blas_threads import one_blas_thread
from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.fused import native
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.moments import moment_outputs, moments_into
from pymc_dlm.kalman.fused.records import Gradients, Inputs

__all__ = ["PseudoSmoother"]

#: The adjoint kernel's flags (bit i: input i of ``layout.NAMES``): the gradient with respect
#: to the data (0), which only needs the adjoints of the means, and the noise's (4).
_NEED_Y = 1 << 0
_NEED_Y_NOISE = _NEED_Y | (1 << 4)

#: The compiled layouts (``fixed_filter.kernel_inputs``'s ``function``) by structure.
_LAYOUTS = {}
_LAYOUTS_LOCK = threading.Lock()


class PseudoSmoother:
    """Smooth ``y*`` (..., T) with noise standard deviations ``sd`` (..., T) under ``values``.

    Parameters
    ----------
    values : dict of str to numpy.ndarray
        ``F, G, W_sqrt, m0, C0_sqrt`` of one series (F is (..., [T,] 1, n)).
    shape : tuple of int
        The data's shape (..., T); runs may add leading axes to it (a batch of draws).
    time_varying : frozenset of str
        The declared time-varying matrices.
    diffuse : numpy.ndarray of bool
        The diffuse states.
    """

    def __init__(self, values, shape, *, time_varying, diffuse):
        self.values = {k: values[k] for k in ("F", "G", "W_sqrt", "m0", "C0_sqrt")}
        self.time_varying = frozenset(time_varying)
        self.diffuse = np.asarray(diffuse, dtype=bool)
        self.shape = tuple(shape)
        probe = {**self.values, "obs": np.ones(1)}
        # The compiled layout of this structure, found once (the mode search builds a
        # smoother at every log-density evaluation).
        key = (
            tuple((k, v.shape, v.dtype.str) for k, v in self.values.items()),
            self.shape, self.time_varying, self.diffuse.tobytes(),
        )  # fmt: skip
        canon, self.log_jac, function = fixed_filter.kernel_inputs(
            probe, np.zeros((*shape, 1)), time_varying=self.time_varying, diffuse=self.diffuse,
            function=_LAYOUTS.get(key),
        )  # fmt: skip
        with _LAYOUTS_LOCK:
            _LAYOUTS[key] = function
            while len(_LAYOUTS) > fixed_filter.CACHE_SIZE:
                _LAYOUTS.pop(next(iter(_LAYOUTS)))
        self.canon = canon
        self._outputs = {}  # the adjoint kernel's outputs by batch size, reused by every run

    def _layout(self, pseudo, sd):
        """The kernels' inputs with these data and noise: ``(canon, lead, B, T)``."""
        lead = pseudo.shape[:-1]
        B, T = int(np.prod(lead)) if lead else 1, pseudo.shape[-1]
        extra = len(lead) - (len(self.shape) - 1)
        canon = list(self.canon)
        if extra:  # a batch of draws in front of the model's batch: repeat the inputs
            reps = int(np.prod(lead[:extra]))
            canon = [c if c.shape[0] == 1 else np.concatenate([c] * reps) for c in canon]
        # Writable C-contiguous float64 (``layout.kernel_array``): a read-only array (the
        # broadcast noise of one series) is a type of its own, for which numba would compile
        # the forward pass and every caller of it a second time.
        canon[0] = kernel_array(pseudo.reshape(B, T, 1))
        canon[4] = kernel_array(np.broadcast_to(sd, pseudo.shape).reshape(B, T, 1))
        return canon, lead, B, T

    def run(self, pseudo, sd):
        """Smoothed means (..., T, n), covariances (..., T, n, n) and log-likelihoods (...)."""
        canon, lead, B, T = self._layout(pseudo, sd)
        n, d = canon[2].shape[-1], canon[7].shape[-1]
        out = moment_outputs(B, T, n, d)
        with one_blas_thread():
            moments_into(Inputs(*canon), out, 0, B)
        if np.any(out.status != OK):
            return self._scans(pseudo, sd)
        sm, sC, ll = out.sm, out.sC, out.ll_t
        log_jac = np.broadcast_to(self.log_jac, lead if lead else ()).reshape(-1)
        loglik = ll.sum(-1) + log_jac
        return sm.reshape(*lead, T, n), sC.reshape(*lead, T, n, n), loglik.reshape(lead)

    def signal_mean(self, pseudo, sd, variance=True):
        r"""Smoothed signal mean and variance at the observed steps, by the adjoint kernel.

        For :math:`y^*_t = s_t + \varepsilon_t`, :math:`\varepsilon_t \sim N(0, A_t)`, the
        derivatives of the Gaussian log-likelihood :math:`\ell = \log g(y^*)` in its data and
        noise give the smoothed moments of the signal:
        :math:`E[s_t \mid y^*] = y^*_t + A_t\,\partial\ell/\partial y^*_t` and
        :math:`\mathrm{Var}[s_t \mid y^*] = 2A_t^2\,\partial\ell/\partial A_t + A_t -
        (y^*_t - E[s_t \mid y^*])^2` (differentiate :math:`\log\int N(y^*; s, A)\,p(s)\,ds`).
        The log-likelihood's adjoint kernel (:func:`~pymc_dlm.kalman.fused.adjoint.
        loglik_grad_into`, exact diffuse starts, through the compiled entry of
        :mod:`~pymc_dlm.kalman.fused.native`) computes both in a third of a smoother run's
        time. Returns ``(mean, variance, loglik)`` with NaN at missing steps, or
        ``None`` where the log-likelihood is not finite (then :meth:`run` decides). With
        ``variance=False`` the variance is ``None``: the kernel's backward pass then carries
        the adjoints of the means alone (the pass takes about two thirds of the time for 13
        states: 0.26 against 0.40 ms), and the mean is the same to the last bit.
        """
        canon, lead, B, _ = self._layout(pseudo, sd)
        var = np.broadcast_to(sd, pseudo.shape) ** 2
        # The compiled entry of the fused kernels (the graphs' own, compiled once per machine),
        # not the kernel called from Python, which numba would compile a second time.
        native.register()
        out = self._outputs.get(B)
        if out is None or out.d_y.shape != canon[0].shape:
            # The kernel overwrites every output at every call (zeros where not wanted).
            out = Gradients(np.empty(B), *(np.zeros_like(c) for c in canon))
            self._outputs[B] = out
        with one_blas_thread():
            need = _NEED_Y_NOISE if variance else _NEED_Y
            native.call_loglik_grad(Inputs(*canon), np.ones(B), need, (0, 0), out)
        if not np.all(np.isfinite(out.loglik)):
            return None
        log_jac = np.broadcast_to(self.log_jac, lead if lead else ()).reshape(-1)
        signal = pseudo + var * out.d_y[..., 0].reshape(pseudo.shape)
        if not variance:
            return signal, None, (out.loglik + log_jac).reshape(lead)
        d_var = out.d_obs_sd[..., 0].reshape(pseudo.shape) / (2.0 * np.sqrt(var))
        variance = 2.0 * var**2 * d_var + var - (pseudo - signal) ** 2
        return signal, variance, (out.loglik + log_jac).reshape(lead)

    def _scans(self, pseudo, sd):
        system = {**self.values, "obs": np.broadcast_to(sd, pseudo.shape)[..., None]}
        res = fixed_filter.run(
            system, pseudo[..., None], time_varying=self.time_varying | {"obs"}, obs_diag=True,
            diffuse=self.diffuse, smooth=True,
        )  # fmt: skip
        return res["smoothed_mean"], res["smoothed_cov"], np.asarray(res["loglik"])
