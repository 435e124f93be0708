r"""The log-densities of the fused kernels: the one formula of each that every numba filter uses.

:math:`\log N(e; 0, Q) = -\tfrac12 (q \log 2\pi + \log|Q| + e^\top Q^{-1} e)` for ``q``
observed scalars, written once for the covariance form (one scalar at a time, ``q = 1``),
its steady steps (whose constant part is computed once), the exact diffuse steps and the
square-root route. The pytensor filters' counterpart is :func:`pymc_dlm.kalman.steps.log_density`.
Durbin & Koopman (2012), §7.2.1; for the diffuse steps, §7.2.2 and §5.2.

With a learned observation variance (West & Harrison 1997, §4.6, §10.8) one observed scalar
with innovation :math:`v`, forecast variance :math:`f` in unit scale, :math:`\nu = \delta_V
n_{t-1}` and :math:`d' = \delta_V d_{t-1}`, :math:`q = v^2/f`, has the Student-t term
(:func:`student_log_density`, :math:`\log t_\nu(v; 0, S_{t-1} f)`,
:math:`S_{t-1} = d_{t-1}/n_{t-1}`)

.. math::

    \log\Gamma(\tfrac{\nu+1}2) - \log\Gamma(\tfrac\nu2) - \tfrac12\log\pi
    + \tfrac\nu2 \log d' - \tfrac{\nu+1}2 \log(d' + q) - \tfrac12 \log f.
"""

import math

import numba

from pymc_dlm.kalman.constants import LOG_2PI

__all__ = ["log_density", "log_density_at", "constant_part", "student_log_density"]

_LOG_PI = math.log(math.pi)

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


@_inline
def student_log_density(nu, dp, q, f):
    r"""The Student-t term of one observed scalar with a learned variance (module docstring)."""
    return (
        math.lgamma(0.5 * (nu + 1.0))
        - math.lgamma(0.5 * nu)
        - 0.5 * _LOG_PI
        + 0.5 * nu * math.log(dp)
        - 0.5 * (nu + 1.0) * math.log(dp + q)
        - 0.5 * math.log(f)
    )
