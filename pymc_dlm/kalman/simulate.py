r"""Forward simulation of a DLM with an RNG-threaded ``pytensor.scan``.

.. math::

    \theta_0 = m_0 + L_0 \varepsilon_0,\quad \theta_t = G_t \theta_{t-1} + L_{W,t} \eta_t,
    \quad y_t = F_t \theta_t + L_{V,t} \nu_t,

with standard normal :math:`\varepsilon_0, \eta_t, \nu_t`. Factors need not be square or
invertible, so singular :math:`W` and :math:`C_0` are simulated exactly.
"""

import pytensor
import pytensor.tensor as pt
from pytensor.tensor.random.basic import normal

from pymc_dlm.kalman.linalg import matvec
from pymc_dlm.kalman.prepare import system_inputs
from pymc_dlm.kalman.scanargs import scan_inputs

__all__ = ["simulate_scan", "standard_normal"]


def standard_normal(rng, shape):
    """A standard normal draw of ``shape`` and the next RNG state."""
    return normal(0.0, 1.0, size=shape, rng=rng, return_next_rng=True)


def _noise_factor(obs, obs_diag):
    if obs_diag:
        return obs[..., :, None] * pt.eye(obs.shape[-1])
    return pt.linalg.cholesky(obs, lower=True)


def simulate_scan(system, steps, batch_shape, rng):
    r"""Draw :math:`y_{1:T}` (..., T, p) and :math:`\theta_{1:T}` (..., T, n).

    Parameters
    ----------
    system : SystemMatrices
        The model with its observation noise.
    steps : scalar int tensor
        Number of time steps T.
    batch_shape : tuple of scalar tensors
        The batch shape of the draw.
    rng : RandomGeneratorType variable
        Threaded through the scan; the next state is returned.

    Returns
    -------
    next_rng, y, theta
    """
    tv = system.time_varying
    n = system.G.type.shape[-1]
    rng, eps = standard_normal(rng, (*batch_shape, system.C0_sqrt.shape[-1]))
    theta0 = pt.broadcast_to(system.m0, (*batch_shape, n)) + matvec(system.C0_sqrt, eps)
    theta0 = pt.specify_shape(theta0, (*(None,) * len(batch_shape), n))
    inputs = scan_inputs({}, system_inputs(system), tv)

    def step(*args):
        mats, (theta, rng) = inputs.unpack(args, 2)
        rng, eta = standard_normal(rng, (*batch_shape, mats["W"].shape[-1]))
        new_theta = matvec(mats["G"], theta) + matvec(mats["W"], eta)
        L_V = _noise_factor(mats["obs"], system.obs_diag)
        rng, nu = standard_normal(rng, (*batch_shape, L_V.shape[-1]))
        y = matvec(mats["F"], new_theta) + matvec(L_V, nu)
        new_theta = pt.specify_shape(new_theta, theta.type.shape)
        return new_theta, rng, y

    theta, rngs, y = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[theta0, rng, None],
        non_sequences=inputs.fixed,
        n_steps=steps,
        strict=True,
        return_updates=False,
    )
    return rngs, pt.moveaxis(y, 0, -2), pt.moveaxis(theta, 0, -2)
