r"""The Gaussian log-density of the fused kernels: the one formula every numba filter uses.

:math:`\log N(e; 0, Q) = -\tfrac12 (q \log 2\pi + \log|Q| + e^\top Q^{-1} e)` for ``q``
observed scalars, written once for the covariance form (one scalar at a time, ``q = 1``),
its steady steps (whose constant part is computed once), the exact diffuse steps and the
square-root route. The pytensor filters' counterpart is :func:`pymc_dlm.kalman.steps.log_density`.
Durbin & Koopman (2012), §7.2.1; for the diffuse steps, §7.2.2 and §5.2.
"""

import numba

from pymc_dlm.kalman.constants import LOG_2PI

__all__ = ["log_density", "log_density_at", "constant_part"]

_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")


@_inline
def constant_part(n_observed, logdet):
    r""":math:`q \log 2\pi + \log|Q|`: the part of the density that does not depend on e."""
    return n_observed * LOG_2PI + logdet


@_inline
def log_density_at(constant, quad):
    r"""The log-density from its constant part (:func:`constant_part`) and the quadratic form."""
    return -0.5 * (constant + quad)


@_inline
def log_density(n_observed, logdet, quad):
    r""":math:`-\tfrac12 (q \log 2\pi + \log|Q| + e^\top Q^{-1} e)`."""
    return log_density_at(constant_part(n_observed, logdet), quad)
