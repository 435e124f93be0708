r"""Forecast draws of discounted DLMs and DLMs with a learned observation variance.

West & Harrison's convention for the future evolution (1997, §6.3): the state noise implied
by the discounts at the forecast origin, :math:`D \circ (G_{T+1} C_T G_{T+1}^\top)`, is held
for every future step, so the k-step forecast covariance grows as in a model with that fixed
W; the blocks given by ``sigma`` add their own noise at each step (their future values when
their W is time-varying, given through ``new_data``).

With a learned static variance each draw first takes :math:`\phi = 1/V \sim
\mathrm{Gamma}(n_T/2, d_T/2)` from its posterior at T, then the states and observations given
:math:`V` (every covariance is :math:`V` times its unit-scale value): the paths' margins are
Student-t with :math:`n_T` degrees of freedom, the parameters' uncertainty included through
the posterior draws. A variance discount below 1 is refused (its future evolution, W&H §10.8,
is not implemented).

``origin=k`` (backtesting): the filter runs on the first k observations and the forecast
follows the same convention from k, with the in-sample matrices of the times after it.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace
from pytensor.raise_op import CheckAndRaise
from pytensor.tensor.random.basic import gamma

from pymc_dlm.kalman.discount import (
    LearnedScale,
    discount_filter_scan,
    discount_noise,
    time_slice,
)
from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.kalman.univariate import psd_factor
from pymc_dlm.postprocess.posterior import compile_over_draws, dlm_parameters, freeze_shared

__all__ = ["VARIANCE_DISCOUNT_FORECAST", "discounted_forecast_graph"]

VARIANCE_DISCOUNT_FORECAST = (
    "forecast with LearnedVariance(discount < 1) is not implemented: the future evolution of a "
    "discounted variance (West & Harrison §10.8) is not drawn here. With discount=1 (a static "
    "variance) the forecast draws are exact."
)


def _first(x, time_varying):
    return x[..., 0, :, :] if time_varying else x


def discounted_forecast_graph(target, future, steps, origin=None):
    """The forecast draws of a discounted target, compiled over posterior draws.

    ``future``: the parameters of the future steps (past the end of the data). With
    ``origin`` (an int) the filter uses the first ``origin`` observations and the forecast
    runs over the in-sample times after them, with their matrices (``future`` unused); the
    draws are NaN where the diffuse part is not resolved at the origin (an improper
    forecast).
    """
    op = target.op
    params = dlm_parameters(target.rv)

    def draw(values, rng):
        repl = dict(zip(target.inputs, values))
        now = freeze_shared(graph_replace(params, repl, strict=False) if repl else params)
        system = op.system(now[:7])
        learned = LearnedScale(*now[7:10]) if op.learned else None
        y = pt.as_tensor_variable(target.data)
        y = y[..., None] if op.univariate else y
        if origin is None:
            later = freeze_shared(graph_replace(future, repl, strict=False) if repl else future)
            ahead = op.system(later[:7])
        else:
            ahead = time_slice(system, slice(origin, origin + steps))
            system, y = time_slice(system, slice(None, origin)), y[..., :origin, :]
        res = discount_filter_scan(system, y, learned, return_all=True)
        m_T, C_T = res.filtered_mean[..., -1, :], res.filtered_cov[..., -1, :, :]
        tv = op.time_varying
        G1 = _first(ahead.G, "G" in tv)
        L = ahead.W_sqrt  # the sigma blocks' noise: its future values where time-varying
        if learned is not None:
            L = L / pt.sqrt(learned.S0)[(..., *(None,) * (2 + ("W" in tv)))]
        P = pt.matmul(pt.matmul(G1, C_T), mT(G1))
        held = discount_noise(P, ahead.discount, ahead.blocks)
        if "W" in tv:
            held = held[..., None, :, :]
        W = held + pt.matmul(L, mT(L))
        W_factor = mT(psd_factor(0.5 * (W + mT(W))))
        C_factor = mT(psd_factor(C_T))
        obs, obs_diag = ahead.obs, ahead.obs_diag
        if learned is not None:
            n_T, S_T = res.dof[..., -1], res.scale[..., -1]
            rng, phi = gamma(0.5 * n_T, scale=2.0 / (n_T * S_T), rng=rng, return_next_rng=True)
            sd = 1.0 / pt.sqrt(phi)
            W_factor = W_factor * sd[(..., *(None,) * (2 + ("W" in tv)))]
            C_factor = C_factor * sd[..., None, None]
            obs, obs_diag = sd[..., None], True
        system_ahead = ahead._replace(
            W_sqrt=W_factor,
            obs=obs,
            obs_diag=obs_diag,
            m0=m_T,
            C0_sqrt=C_factor,
            diffuse=None,
            time_varying=tv - ({"obs"} if learned is not None else set()),
        )
        batch = tuple(m_T.shape[i] for i in range(m_T.ndim - 1))
        next_rng, y_new, theta = simulate_scan(system_ahead, steps, batch, rng)
        if system.diffuse is not None:  # unresolved at the origin: an improper forecast
            open_ = pt.any(pt.neq(res.filtered_diffuse[..., -1, :, :], 0.0), axis=(-2, -1))
            y_new = pt.switch(open_[..., None, None], np.nan, y_new)
            theta = pt.switch(open_[..., None, None], np.nan, theta)
        if op.univariate:
            y_new = y_new[..., 0]
        if learned is not None:
            y_new = CheckAndRaise(ValueError, VARIANCE_DISCOUNT_FORECAST)(
                y_new, pt.all(pt.eq(learned.discount, 1.0))
            )
        return [y_new, theta], next_rng

    return compile_over_draws(target, draw, 2)
