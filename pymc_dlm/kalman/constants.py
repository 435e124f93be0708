"""Tolerances and codes of the Kalman recursions, declared once for both backends.

The pytensor scans (:mod:`pymc_dlm.kalman`) and the numba kernels
(:mod:`pymc_dlm.kalman.fused`) read these names; numba compiles a module's globals into
its machine code as constants, and the kernels' cache key (:data:`pymc_dlm.kalman.fused.
native.VERSION`) includes this module's source, so a changed value recompiles them.
"""

import math

__all__ = [
    "LOG_2PI",
    "DIFFUSE_TOL",
    "STEADY_TOL",
    "CANCELLATION_LIMIT",
    "SKIPPED",
    "ORDINARY",
    "INFORMATIVE",
    "OK",
    "FAILED",
    "NOT_IDENTIFIED",
]

#: :math:`\log 2\pi`, the constant of every Gaussian log-density.
LOG_2PI = math.log(2.0 * math.pi)

#: Relative tolerance of the diffuse rank tests: an observation row ``z`` is informative
#: about the diffuse part when :math:`\|B^\top z\| > \tau \|z\| \|B\|_F`
#: (:mod:`pymc_dlm.kalman.diffuse`).
DIFFUSE_TOL = 1e-10

#: Steady state of the kernels: once a filtered covariance differs from the previous one by
#: at most this much (relative, largest entry), the remaining steps reuse the last gains.
STEADY_TOL = 1e-14

#: The kernels' accuracy guard: when :math:`z^\top R z / h` exceeds this ratio the covariance
#: update loses about :math:`\log_{10}` of it in digits, and the value is recomputed by
#: square-root steps.
CANCELLATION_LIMIT = 1e6

#: Kind of one scalar of the diffuse period: missing, ordinary update, informative update.
SKIPPED, ORDINARY, INFORMATIVE = 0, 1, 2

#: Status of a fixed-parameter filter call or state draw run by the kernels: done; failed
#: (a forecast variance not positive); a diffuse state not identified by the data (the
#: caller reruns the scans).
OK, FAILED, NOT_IDENTIFIED = 0, 1, 2
