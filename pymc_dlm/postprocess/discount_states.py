r"""State draws (FFBS) of discounted DLMs and DLMs with a learned observation variance.

Given the parameters, the discount's state noise :math:`W_t` is a function of the filter's
covariances, which do not depend on the values of the data (only on which are observed):
given :math:`\psi` the model is a DLM with known, time-varying :math:`W_t`, and
forward-filtering backward-sampling (:func:`pymc_dlm.kalman.sampler.backward_sample`) with
those :math:`W_t` draws exactly from :math:`p(\theta_{1:T} | y_{1:T}, \psi)`, through an exact
diffuse start too.

With a learned static variance (:math:`\delta_V = 1`) the draw is exact as well:
:math:`\phi = 1/V \sim \mathrm{Gamma}(n_T/2, d_T/2)` from its posterior, then the states given
:math:`V`. Every covariance of the filter is :math:`V` times its unit-scale value and the means
do not depend on :math:`V`, so the path is the unit-scale path with its noise multiplied by
:math:`\sqrt V`. Filtered draws take :math:`V` from :math:`\mathrm{Gamma}(n_t/2, d_t/2)` at
each time: the Student-t filtered marginals. A variance discount below 1 is refused here:
West & Harrison's retrospective analysis of a discounted variance (§10.8) is not implemented.

References
----------
West & Harrison (1997), §4.6 and §10.8; Carter & Kohn (1994); Frühwirth-Schnatter (1994).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.raise_op import CheckAndRaise
from pytensor.tensor.random.basic import gamma

from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan, discount_noise_factors
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.prepare import FilterResult
from pymc_dlm.kalman.sampler import backward_sample
from pymc_dlm.kalman.simulate import standard_normal
from pymc_dlm.kalman.univariate import psd_factor
from pymc_dlm.model.checks import fixed_value
from pymc_dlm.postprocess.posterior import dlm_parameters, params_at

__all__ = [
    "VARIANCE_DISCOUNT_STATES",
    "check_variance_discount",
    "discounted_draws",
    "discounted_paths",
    "discounted_terms",
]

VARIANCE_DISCOUNT_STATES = (
    "sample_states with LearnedVariance(discount < 1) is not implemented: drawing the states "
    "needs West & Harrison's retrospective analysis of a discounted variance (§10.8). With "
    "discount=1 (a static variance) the draws are exact."
)


def check_variance_discount(target, message):
    """Raise ``message`` now, before compiling, when a fixed variance discount is below 1.

    A symbolic one is checked in the compiled graph, at the draws that have it below 1.
    """
    if not target.op.learned:
        return
    value = fixed_value(dlm_parameters(target.rv)[9])
    if value is not None and np.any(np.asarray(value) != 1.0):
        raise ValueError(message)


def _gamma(rng, shape, scale):
    """Draws of Gamma(shape, scale) (arrays of one shape) and the next generator."""
    rng, g = gamma(shape, scale=scale, rng=rng, return_next_rng=True)
    return rng, g


def discounted_terms(target, values, rng):
    """The one-step log densities at one draw (symbolic): the filter only, no draws."""
    op = target.op
    params = params_at(target, values)
    learned = LearnedScale(*params[7:10]) if op.learned else None
    y = pt.as_tensor_variable(target.data)
    y = y[..., None] if op.univariate else y
    return [discount_filter_scan(op.system(params[:7]), y, learned).loglik_t], rng


def discounted_draws(target, values, rng):
    """Filtered draws, a smoothed path, components and one-step terms at one draw (symbolic).

    The outputs of :func:`pymc_dlm.postprocess.states.draw_paths` for a discounted target.
    """
    outputs, _, rng = discounted_paths(target, values, rng)
    return outputs, rng


def discounted_paths(target, values, rng):
    """:func:`discounted_draws`'s outputs, the variance the path was drawn with, the next rng.

    The variance is V drawn from its posterior with a learned variance (batch shape), None
    with a known one.
    """
    op = target.op
    params = params_at(target, values)
    system = op.system(params[:7])
    learned = LearnedScale(*params[7:10]) if op.learned else None
    y = pt.as_tensor_variable(target.data)
    y = y[..., None] if op.univariate else y
    res = discount_filter_scan(system, y, learned, return_all=True)
    m, C = res.filtered_mean, res.filtered_cov
    C0 = pt.matmul(system.C0_sqrt, mT(system.C0_sqrt))
    if learned is not None:
        C0 = C0 / learned.S0[..., None, None]
    B = res.filtered_diffuse if system.diffuse is not None else None
    filtered = FilterResult(
        res.loglik, res.loglik_t, filtered_mean=m, filtered_factor=psd_factor(C),
        filtered_diffuse=B,
    )  # fmt: skip
    W_factor = discount_noise_factors(system, C0, C, learned)
    rng, eps_f = standard_normal(rng, m.shape)
    rng, eps_s = standard_normal(rng, m.shape)
    V = None
    if learned is not None:
        n_t, S_t = res.dof, res.scale
        rng, phi_t = _gamma(rng, 0.5 * n_t, 2.0 / (n_t * S_t))
        rng, phi = _gamma(rng, 0.5 * n_t[..., -1], 2.0 / (n_t[..., -1] * S_t[..., -1]))
        eps_f = eps_f / pt.sqrt(phi_t)[..., None]
        eps_s = eps_s / pt.sqrt(phi)[..., None, None]
        V = 1.0 / phi
    draw = m + matvec(mT(filtered.filtered_factor), eps_f)
    if B is not None:
        draw = pt.switch(pt.any(pt.neq(B, 0.0), axis=-1), np.nan, draw)
    tv = system.time_varying | {"W"}
    smoothed = backward_sample(filtered, system.G, W_factor, tv, eps_s)
    if learned is not None:
        smoothed = CheckAndRaise(ValueError, VARIANCE_DISCOUNT_STATES)(
            smoothed, pt.all(pt.eq(learned.discount, 1.0))
        )
    F = system.F if "F" in op.time_varying else pt.shape_padaxis(system.F, system.F.ndim - 2)
    parts = [matvec(F[..., a:b], smoothed[..., a:b]) for _, a, b in op.components]
    components = pt.stack(parts, axis=-1)
    return [draw, smoothed, components, res.loglik_t], V, rng
