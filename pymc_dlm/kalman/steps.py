r"""One step of the square-root Kalman recursions, as small pure functions.

Covariances travel as upper-triangular right factors, :math:`C = U^\top U`, and every update
is an orthogonal triangularization of a pre-array (the array algorithms of Kailath, Sayed &
Hassibi 2000, ch. 12; Petris et al. 2009, §2.7 use the SVD for the same purpose). Neither an
inverse nor a difference of covariances is ever formed, which keeps the log-likelihood
accurate to ~1e-12 relative with vague priors (C0 = 1e7) and small variances.
"""

from typing import NamedTuple

import pytensor.tensor as pt

from pymc_dlm.kalman.constants import LOG_2PI
from pymc_dlm.kalman.linalg import lower_solve, matvec, mT, triangularize
from pymc_dlm.model.blocks import broadcast_leading

__all__ = ["Predicted", "Updated", "predict", "update", "gaussian_logpdf", "log_density"]


class Predicted(NamedTuple):
    r"""One-step state prediction :math:`\theta_t | y_{1:t-1} \sim N(a_t, U_R^\top U_R)`."""

    mean: object  # a_t (..., n)
    cov_factor: object  # U_R (..., n, n), upper triangular


class Updated(NamedTuple):
    r"""Conditioning on an observation :math:`y = F\theta + v`, :math:`v \sim N(0, V)`.

    ``mean`` and ``cov_factor`` describe :math:`\theta | y`; ``white`` is the whitened
    innovation :math:`z = U_Q^{-\top} (y - F a)`; ``forecast_factor`` is :math:`U_Q` with
    :math:`Q = F R F^\top + V = U_Q^\top U_Q`; ``gain_factor`` is :math:`U_{12}` with the
    Kalman gain :math:`K = U_{12}^\top U_Q^{-\top}`.
    """

    mean: object
    cov_factor: object
    white: object
    forecast_factor: object
    gain_factor: object


def _rows(blocks):
    """Stack row blocks (..., r_i, c) after broadcasting their batch axes."""
    return pt.concatenate(broadcast_leading(blocks, 2), axis=-2)


def _cols(blocks):
    return pt.concatenate(broadcast_leading(blocks, 2), axis=-1)


def predict(mean, cov_factor, G, W_sqrt):
    r"""Time update :math:`a = G m`, :math:`R = G C G^\top + W`.

    Parameters
    ----------
    mean : (..., n)
        :math:`m_{t-1}`.
    cov_factor : (..., c, n)
        :math:`U_C` with :math:`C_{t-1} = U_C^\top U_C`.
    G : (..., n, n)
        Transition matrix :math:`G_t`.
    W_sqrt : (..., n, k)
        Factor :math:`L_W` of :math:`W_t = L_W L_W^\top`.
    """
    a = matvec(G, mean)
    pre = _rows([pt.matmul(cov_factor, mT(G)), mT(W_sqrt)])
    return Predicted(a, triangularize(pre))


def update(mean, cov_factor, y, F, V_factor):
    r"""Measurement update by one QR of the pre-array.

    .. math::

        \begin{pmatrix} U_V & 0 \\ U_R F^\top & U_R \end{pmatrix}
        = \Theta \begin{pmatrix} U_Q & U_{12} \\ 0 & U_C \end{pmatrix},

    so that :math:`Q = U_Q^\top U_Q`, :math:`K = U_{12}^\top U_Q^{-\top}`,
    :math:`C = R - K Q K^\top = U_C^\top U_C` and :math:`m = a + U_{12}^\top z` with the
    whitened innovation :math:`z = U_Q^{-\top}(y - F a)`.

    Parameters
    ----------
    mean, cov_factor : (..., n), (..., n, n)
        Prior mean :math:`a` and upper factor :math:`U_R` (square).
    y : (..., p)
        Observation (zeros where masked out).
    F : (..., p, n)
        Observation matrix (zero rows where masked out).
    V_factor : (..., p, p)
        Upper factor :math:`U_V` of the observation noise covariance.
    """
    p = F.type.shape[-2]
    if p is None:
        p = F.shape[-2]
    zeros = pt.zeros((p, F.shape[-1]))
    pre = _rows([_cols([V_factor, zeros]), _cols([pt.matmul(cov_factor, mT(F)), cov_factor])])
    U = triangularize(pre)
    U_Q, U_12, U_C = U[..., :p, :p], U[..., :p, p:], U[..., p:, p:]
    if isinstance(p, int):
        U_Q = pt.specify_shape(U_Q, (*U_Q.type.shape[:-2], p, p))
    z = lower_solve(U_Q, y - matvec(F, mean))
    new_mean = mean + matvec(mT(U_12), z)
    return Updated(new_mean, U_C, z, U_Q, U_12)


def log_density(n_observed, logdet, quad):
    r"""The Gaussian log-density from its parts: the one formula every pytensor filter uses.

    :math:`-\tfrac12 (n_{obs} \log 2\pi + \log|Q| + e^\top Q^{-1} e)` for ``n_observed``
    observed scalars, the log-determinant ``logdet`` of their covariance and the quadratic
    form ``quad``. The numba kernels' counterpart is
    :func:`pymc_dlm.kalman.fused.diffuse.condition` (one scalar at a time).
    """
    return -0.5 * (n_observed * LOG_2PI + logdet + quad)


def gaussian_logpdf(white, forecast_factor, n_observed):
    r"""Log N(e; 0, Q) from the whitened residual and the factor of Q.

    :math:`-\tfrac12 (n_{obs} \log 2\pi + 2 \sum_i \log |U_{Q,ii}| + z^\top z)`. Masked
    components have :math:`z_i = 0` and :math:`U_{Q,ii} = \pm 1` exactly, so they contribute
    exactly zero; ``n_observed`` counts the :math:`\log 2\pi` terms.
    """
    diag = pt.diagonal(forecast_factor, axis1=-2, axis2=-1)
    logdet = 2.0 * pt.sum(pt.log(pt.abs(diag)), axis=-1)
    return log_density(n_observed, logdet, pt.sum(white**2, axis=-1))
