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
each time: the Student-t filtered marginals.

A variance discount below 1 (West & Harrison 1997, §10.8): the precision path
:math:`\phi_{1:T}` is drawn backwards by :func:`precision_path`, exactly for the beta-gamma
evolution given the filter's :math:`(n_t, d_t)`; the states are then drawn by the same
backward pass with the noise of time t scaled by :math:`1/\sqrt{\phi_t}`. That second part
is West & Harrison's convention, not an exact conditional: their filter keeps every
covariance at unit scale times the current variance, which is not a joint model of the
states given a path of variances. The last state's margin (t = T) is exact,
:math:`t_{n_T}(m_T, S_T C^*_T)`.

References
----------
West & Harrison (1997), §4.6 and §10.8; Carter & Kohn (1994); Frühwirth-Schnatter (1994).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.random.basic import gamma

from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan, discount_noise_factors
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.prepare import FilterResult
from pymc_dlm.kalman.sampler import backward_sample
from pymc_dlm.kalman.simulate import standard_normal
from pymc_dlm.kalman.univariate import psd_factor
from pymc_dlm.postprocess.posterior import params_at

__all__ = [
    "discounted_draws",
    "discounted_paths",
    "precision_path",
    "discounted_terms",
]


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


def precision_path(rng, n, d, discount):
    r"""A draw of :math:`\phi_{1:T} | y_{1:T}` (..., T) for West & Harrison's variance discount.

    Given :math:`\phi_{t} | y_{1:t} \sim \mathrm{Ga}(n_t/2, d_t/2)` (``n``, ``d`` (..., T) of
    the filter) and the evolution :math:`\phi_{t+1} = \phi_t \gamma_{t+1} / \delta_V`,
    :math:`\gamma_{t+1} \sim \mathrm{Beta}(\delta_V n_t/2, (1-\delta_V) n_t/2)`, write
    :math:`\phi_t = X + Y` with :math:`X \sim \mathrm{Ga}(\delta_V n_t/2, d_t/2)`,
    :math:`Y \sim \mathrm{Ga}((1-\delta_V) n_t/2, d_t/2)` independent: then
    :math:`\gamma_{t+1} = X/(X+Y)` and :math:`\phi_{t+1} = X/\delta_V`, so given
    :math:`\phi_{t+1}` exactly :math:`\phi_t = \delta_V \phi_{t+1} + Y`. The path is drawn
    backwards: :math:`\phi_T \sim \mathrm{Ga}(n_T/2, d_T/2)`, then that identity (West &
    Harrison 1997, §10.8; Prado & West 2010, §4.3.7). With :math:`\delta_V = 1`,
    :math:`\phi_t = \phi_T` for every t. ``discount`` has the batch shape.
    """
    rng, phi_T = _gamma(rng, 0.5 * n[..., -1], 2.0 / d[..., -1])
    discounted = pt.lt(discount, 1.0)[..., None]
    shape = pt.switch(discounted, 0.5 * (1.0 - discount[..., None]) * n, 1.0)
    rng, Y = _gamma(rng, shape, 2.0 / d)
    Y = pt.switch(discounted, Y, 0.0)
    dV = pt.broadcast_to(discount, phi_T.shape)
    steps = pt.moveaxis(Y[..., :-1], -1, 0)[::-1]  # t = T-1 .. 1 (0-based T-2 .. 0)

    def back(y_t, phi_next, delta):
        return delta * phi_next + y_t

    earlier = pytensor.scan(back, sequences=[steps], outputs_info=[phi_T], non_sequences=[dV],
                            strict=True, return_updates=False)  # fmt: skip
    path = pt.concatenate([pt.moveaxis(earlier[::-1], 0, -1), phi_T[..., None]], axis=-1)
    return rng, path


def discounted_draws(target, values, rng):
    """Filtered draws, a smoothed path, components and one-step terms at one draw (symbolic).

    The outputs of :func:`pymc_dlm.postprocess.states.draw_paths` for a discounted target.
    """
    outputs, _, rng = discounted_paths(target, values, rng)
    return outputs, rng


def discounted_paths(target, values, rng):
    r""":func:`discounted_draws`'s outputs, the variance the path was drawn with, the next rng.

    The variance is the path :math:`V_t = 1/\phi_t` (..., T) of :func:`precision_path` with a
    learned variance (constant in time when :math:`\delta_V = 1`), None with a known one.
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
        rng, phi = precision_path(rng, n_t, n_t * S_t, learned.discount)
        eps_f = eps_f / pt.sqrt(phi_t)[..., None]
        eps_s = eps_s / pt.sqrt(phi)[..., None]
        V = 1.0 / phi
    draw = m + matvec(mT(filtered.filtered_factor), eps_f)
    if B is not None:
        draw = pt.switch(pt.any(pt.neq(B, 0.0), axis=-1), np.nan, draw)
    tv = system.time_varying | {"W"}
    smoothed = backward_sample(filtered, system.G, W_factor, tv, eps_s)
    F = system.F if "F" in op.time_varying else pt.shape_padaxis(system.F, system.F.ndim - 2)
    parts = [matvec(F[..., a:b], smoothed[..., a:b]) for _, a, b in op.components]
    components = pt.stack(parts, axis=-1)
    return [draw, smoothed, components, res.loglik_t], V, rng
