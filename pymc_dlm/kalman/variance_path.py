r"""A draw of the observation precision path under West & Harrison's variance discounting.

From :math:`\phi_0 \sim \mathrm{Ga}(n/2, d/2)`, :math:`d = nS`, the beta-gamma evolution
(West & Harrison 1997, §10.8) :math:`\phi_k = \phi_{k-1}\gamma_k/\delta_V`,
:math:`\gamma_k \sim \mathrm{Beta}(\delta_V^k n/2, (1-\delta_V)\delta_V^{k-1} n/2)`, gives
:math:`\phi_k \sim \mathrm{Ga}(\delta_V^k n/2, \delta_V^k d/2)` at every k: each margin is the
one of West & Harrison's k-step forecast with no observation in between. With
:math:`\delta_V = 1` every :math:`\phi_k = \phi_0`.

Used from the filter's posterior at T by forecast paths
(:mod:`pymc_dlm.postprocess.discount_forecast`) and from the prior (n0, S0) by the
simulator of a DLM with a learned variance (:mod:`pymc_dlm.distribution_discounted`).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§10.8 (variance discounting).
"""

import pytensor.tensor as pt
from pytensor.tensor.random.basic import beta, gamma

from pymc_dlm.kalman.simulate import simulate_scan

__all__ = ["precisions_ahead", "scaled_by_precisions"]


def precisions_ahead(rng, n, S, discount, steps):
    r""":math:`\phi_{1..H}` (..., H) from :math:`\phi_0 \sim \mathrm{Ga}(n/2, nS/2)` (module doc).

    ``n``, ``S`` and ``discount`` (:math:`\delta_V`) share the batch shape (...); returns
    ``(next rng, phi)``.
    """
    rng, phi_0 = gamma(0.5 * n, scale=2.0 / (n * S), rng=rng, return_next_rng=True)
    k = pt.arange(1, steps + 1, dtype="float64")
    dV = discount[..., None]
    discounted = pt.lt(dV, 1.0)
    a = pt.switch(discounted, 0.5 * dV**k * n[..., None], 1.0)
    b = pt.switch(discounted, 0.5 * (1.0 - dV) * dV ** (k - 1.0) * n[..., None], 1.0)
    rng, g = beta(a, b, rng=rng, return_next_rng=True)
    growth = pt.switch(discounted, pt.log(g) - pt.log(dV), 0.0)
    return rng, phi_0[..., None] * pt.exp(pt.cumsum(growth, axis=-1))


def scaled_by_precisions(system, steps, batch, rng, y, theta, n, S, discount):
    r"""Draws ``y``, ``theta`` of ``system`` with their deviations from its mean path scaled.

    The mean path is ``system`` run with no noise (``simulate_scan`` with zero factors); at
    step k the deviations are multiplied by :math:`1/\sqrt{\phi_k}`, :math:`\phi_{1..H}` from
    :func:`precisions_ahead` with ``n``, ``S`` and ``discount``. Returns
    ``(next rng, y, theta)``.
    """
    still = system._replace(
        W_sqrt=pt.zeros_like(system.W_sqrt),
        C0_sqrt=pt.zeros_like(system.C0_sqrt),
        obs=pt.zeros_like(system.obs),
    )
    rng, y_mean, theta_mean = simulate_scan(still, steps, batch, rng)
    rng, phi = precisions_ahead(rng, n, S, discount, steps)
    sd = 1.0 / pt.sqrt(phi)[..., None]
    return rng, y_mean + (y - y_mean) * sd, theta_mean + (theta - theta_mean) * sd
