r"""Forecast draws of discounted DLMs and DLMs with a learned observation variance.

West & Harrison's convention for the future evolution (1997, §6.3): the state noise implied
by the discounts at the forecast origin, :math:`D \circ (G_{T+1} C_T G_{T+1}^\top)`, is held
for every future step, so the k-step forecast covariance grows as in a model with that fixed
W; the blocks given by ``sigma`` add their own noise at each step (their future values when
their W is time-varying, given through ``new_data``).

With a learned variance the path is drawn at unit scale and its deviations from the mean
path are multiplied at step k by :math:`\sqrt{V_{T+k}}`, :math:`V_{T+k} = 1/\phi_{T+k}`
drawn by :func:`~pymc_dlm.kalman.variance_path.precisions_ahead`: :math:`\phi_T` from its
posterior at T, then West & Harrison's beta-gamma evolution (§10.8). With a static
variance (:math:`\delta_V = 1`) every :math:`\phi_{T+k} = \phi_T` and the draw is exact: the
paths are jointly Student-t with :math:`n_T` degrees of freedom (every covariance is V times
its unit-scale value). With
:math:`\delta_V < 1` each step's margin is exact, :math:`t_{\delta_V^k n_T}(f_T(k), S_T
Q^*_T(k))` (W&H's k-step forecast); the dependence between steps follows the per-step
scaling, West & Harrison's convention rather than a joint model of a variance path.

``origin=k`` (backtesting): the filter runs on the first k observations and the forecast
follows the same convention from k, with the in-sample matrices of the times after it.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

from pymc_dlm.kalman.discount import (
    LearnedScale,
    discount_filter_scan,
    discount_noise,
    time_slice,
)
from pymc_dlm.kalman.linalg import mT
from pymc_dlm.kalman.simulate import simulate_scan
from pymc_dlm.kalman.univariate import psd_factor
from pymc_dlm.kalman.variance_path import scaled_by_precisions
from pymc_dlm.postprocess.over_draws import compile_over_draws, freeze_shared
from pymc_dlm.postprocess.posterior import dlm_parameters

__all__ = ["discounted_forecast_graph"]


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
            obs, obs_diag = pt.ones_like(m_T[..., :1]), True
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
        rng, y_new, theta = simulate_scan(system_ahead, steps, batch, rng)
        if learned is not None:  # unit scale: deviations from the mean path scaled by V_{T+k}
            rng, y_new, theta = scaled_by_precisions(
                system_ahead, steps, batch, rng, y_new, theta, res.dof[..., -1],
                res.scale[..., -1], learned.discount,
            )  # fmt: skip
        if system.diffuse is not None:  # unresolved at the origin: an improper forecast
            open_ = pt.any(pt.neq(res.filtered_diffuse[..., -1, :, :], 0.0), axis=(-2, -1))
            y_new = pt.switch(open_[..., None, None], np.nan, y_new)
            theta = pt.switch(open_[..., None, None], np.nan, theta)
        if op.univariate:
            y_new = y_new[..., 0]
        return [y_new, theta], rng

    return compile_over_draws(target, draw, 2)
