r"""What the kernels' records say about the observation: one-step moments, diffuse steps.

The forward pass (:func:`~pymc_dlm.kalman.fused.moments.moments_into` and its discounted
twin) records the predicted state moments :math:`a_t = E[\theta_t \mid y_{1:t-1}]`,
:math:`R_t = \mathrm{Var}[\theta_t \mid y_{1:t-1}]` and, with diffuse states, the predicted
diffuse factor :math:`B_t` (:math:`P_{\infty,t} = B_t B_t^\top`). The observation's
one-step moments follow from them (West & Harrison 1997, §4.3; Durbin & Koopman 2012,
§4.3), in numpy, for every post-processing route that runs the kernels:

.. math:: f_t = F_t a_t, \qquad Q_t = F_t R_t F_t^\top + V_t.

The timing is the filter's: :math:`f_t, Q_t` are the moments of :math:`y_t` given
:math:`y_{1:t-1}`. :func:`seen_diffuse` is the kernels' rank test, by which a step whose
observation sees a diffuse direction is one whose one-step density is improper; its
pytensor twin is :func:`pymc_dlm.kalman.diffuse.seen_diffuse` (one per backend).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed., §4.3.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd
ed., §4.3, §5.2.
"""

import numpy as np

from pymc_dlm.kalman.constants import DIFFUSE_TOL

__all__ = ["one_step_moments", "seen_diffuse"]


def one_step_moments(F, a, R, V):
    r"""``(f, Q)``: :math:`f_t = F_t a_t` (..., p) and :math:`Q_t = F_t R_t F_t^\top + V_t`.

    ``F`` (..., p, n), ``a`` (..., n), ``R`` (..., n, n), ``V`` (..., p, p) or a scalar
    (1.0 for a learned variance's unit scale); the leading axes broadcast.
    """
    f = np.matmul(F, a[..., None])[..., 0]
    Q = np.matmul(np.matmul(F, R), np.swapaxes(F, -1, -2)) + V
    return f, Q


def seen_diffuse(F, Pinf_f):
    r"""Whether a step's observation sees a diffuse direction (..., bool): the kernels' test.

    ``F`` (..., p, n), ``Pinf_f`` (..., n, d) the predicted diffuse factor :math:`B`: some
    row :math:`z` of F has :math:`\|B^\top z\| > \tau \|z\| \|B\|_F`,
    :math:`\tau` = :data:`~pymc_dlm.kalman.constants.DIFFUSE_TOL`, the rank test by which
    the kernels' forward pass takes a step as a diffuse one
    (:mod:`~pymc_dlm.kalman.fused.diffuse`). An exact zero test would take the round-off of
    a direction F does not see (1e-16) for a diffuse step.
    """
    out = np.zeros(np.broadcast_shapes(F.shape[:-2], Pinf_f.shape[:-2]), dtype=bool)
    other = tuple(i for i in range(Pinf_f.ndim) if i != Pinf_f.ndim - 3)
    active = np.flatnonzero(np.any(Pinf_f != 0.0, axis=other))  # B is exactly 0 after
    if not active.size:
        return out
    end = active[-1] + 1
    F = F[..., :end, :, :] if F.shape[-3] > 1 else F
    B = Pinf_f[..., :end, :, :]
    seen = np.sum(np.matmul(F, B) ** 2, axis=-1)
    rows = np.sum(F * F, axis=-1)
    size = np.sum(B * B, axis=(-2, -1))[..., None]
    out[..., :end] = np.any(seen > DIFFUSE_TOL * DIFFUSE_TOL * rows * size, axis=-1)
    return out
