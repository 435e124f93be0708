r"""The Kalman log-likelihood in covariance form, one observation component at a time.

For a diagonal observation covariance, the components of :math:`y_t` can be processed one
after the other (Durbin & Koopman 2012, §6.4). With the R ``dlm`` timing (prior on
:math:`\theta_0`), step t predicts

.. math::

    a = G_t m_{t-1}, \qquad R = G_t C_{t-1} G_t^\top + L_W L_W^\top,

then, for every observed component i with row :math:`z = F_{t,i}` and variance
:math:`h = \sigma_{t,i}^2`,

.. math::

    u = R z,\; f = z^\top u + h,\; v = y_{t,i} - z^\top a,\;
    \ell \mathrel{+}= -\tfrac12 (\log 2\pi + \log f + v^2 / f),\;
    a \mathrel{+}= u v / f,\; R \mathrel{-}= u u^\top / f,

and :math:`m_t = a`, :math:`C_t = R`. A missing component (NaN) contributes exactly 0 and
changes nothing. Where :math:`f` is not positive the log-likelihood is :math:`-\infty`, and the
gradient stays finite.

This is the same function as the square-root filter of :mod:`pymc_dlm.kalman.filter`, in
other arithmetic. It serves as the differentiable definition of the fused log-likelihood's
gradient on the backends that run graphs rather than the numba kernels (C, JAX, Python; see
:mod:`pymc_dlm.kalman.fused.ops`). Its derivative is finite wherever :math:`f > 0`, also when
the predicted covariance is singular (a zero W block, a singular stationary prior). The
derivative of the square-root filter's QR steps needs an invertible triangular factor, so it is
NaN there. Its value is not used: the square-root filter keeps the accuracy of the value
with vague priors.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §6.4.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.prepare import prepare, system_inputs
from pymc_dlm.kalman.scanargs import scan_inputs, time_first

__all__ = ["covariance_loglik"]

LOG_2PI = float(np.log(2.0 * np.pi))


def _matvec(A, x):
    return pt.sum(A * x[..., None, :], axis=-1)


def covariance_loglik(system, y):
    """Log-likelihood (batch shape) of ``y`` (..., T, p) by the univariate covariance form.

    ``system`` has a proper prior (``system.diffuse`` is ``None``) and a diagonal observation
    covariance (``system.obs_diag``); ``p`` must be known statically. Raises ``ValueError``
    otherwise.
    """
    p = y.type.shape[-1]
    if system.diffuse is not None or not system.obs_diag or p is None:
        raise ValueError(
            "covariance_loglik needs a proper prior, a diagonal observation covariance and a "
            f"static number of series; got diffuse={system.diffuse is not None}, "
            f"obs_diag={system.obs_diag}, p={p}"
        )
    _, m0, C0_factor = prepare(system, y)
    C0 = pt.matmul(mT(C0_factor), C0_factor)
    observed = ~pt.isnan(y)
    y0 = pt.switch(observed, y, 0.0)
    inputs = scan_inputs(
        {"y": time_first(y0, 1), "observed": time_first(observed, 1)},
        system_inputs(system),
        system.time_varying,
    )

    def step(*args):
        mats, (m, C) = inputs.unpack(args, 2)
        G, L = mats["G"], mats["W"]
        a = _matvec(G, m)
        R = pt.matmul(pt.matmul(G, C), mT(G)) + pt.matmul(L, mT(L))
        R = 0.5 * (R + mT(R))
        ll = pt.zeros_like(a[..., 0])
        for i in range(p):
            z = mats["F"][..., i, :]
            sd = mats["obs"][..., i]
            seen = mats["observed"][..., i]
            u = _matvec(R, z)
            f = pt.sum(z * u, axis=-1) + sd * sd
            # Missing, or f not > 0 (log-likelihood -inf): f = 1 stands in, so that neither
            # the value nor the gradient meets a NaN; the -inf itself carries no gradient.
            ok = seen & (f > 0.0)
            f = pt.switch(ok, f, 1.0)
            v = mats["y"][..., i] - pt.sum(z * a, axis=-1)
            term = -0.5 * (LOG_2PI + pt.log(f) + v * v / f)
            ll = ll + pt.switch(ok, term, pt.switch(seen, -np.inf, 0.0))
            gain = pt.switch(ok, 1.0 / f, 0.0)
            a = a + u * (v * gain)[..., None]
            R = R - u[..., :, None] * u[..., None, :] * gain[..., None, None]
        return [pt.specify_shape(a, m.type.shape), pt.specify_shape(R, C.type.shape), ll]

    n = system.G.type.shape[-1]
    m0 = pt.specify_shape(m0, (*(None,) * (m0.ndim - 1), n))
    C0 = pt.specify_shape(C0, (*(None,) * (C0.ndim - 2), n, n))
    outs = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[m0, C0, None],
        non_sequences=inputs.fixed,
        strict=True,
        return_updates=False,
    )
    return pt.sum(outs[2], axis=0)
