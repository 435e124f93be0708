r"""Backward recursions: the Rauch–Tung–Striebel smoother in square-root form.

Each backward step conditions :math:`\theta_t | y_{1:t}` on the next state through
:math:`\theta_{t+1} = G_{t+1}\theta_t + w_{t+1}`, reusing :func:`~pymc_dlm.kalman.steps.update`
with :math:`G_{t+1}` as the observation matrix and :math:`W_{t+1}` as its noise:

.. math::

    J_t = C_t G_{t+1}^\top R_{t+1}^{-1},\quad s_t = m_t + J_t (s_{t+1} - a_{t+1}),\quad
    S_t = (C_t - J_t R_{t+1} J_t^\top) + J_t S_{t+1} J_t^\top.

Requires :math:`R_{t+1}` positive definite (true whenever :math:`C_0` is, :math:`G_t` is
invertible, or W covers the null space); W itself may be singular.

References
----------
Durbin & Koopman (2012), §4.4; Särkkä (2013), *Bayesian Filtering and Smoothing*, §8.2.
"""

from typing import NamedTuple

import pytensor
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.diffuse_backward import backward_pass, diffuse_backward_step
from pymc_dlm.kalman.linalg import mT, triangularize
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.steps import update

__all__ = ["SmootherResult", "noise_factor", "smoother_scan"]


class SmootherResult(NamedTuple):
    r""":math:`s_t = E[\theta_t | y_{1:T}]` (..., T, n) and upper factors of :math:`S_t`."""

    smoothed_mean: object
    smoothed_factor: object


def noise_factor(W_sqrt):
    r"""Square upper factor :math:`U_W` (..., n, n) with :math:`U_W^\top U_W = L_W L_W^\top`."""
    n = W_sqrt.shape[-2]
    pad = pt.zeros((n, n))
    Lt = mT(W_sqrt)
    pad = pt.broadcast_to(pad, (*(Lt.shape[i] for i in range(Lt.ndim - 2)), n, n))
    return triangularize(pt.concatenate([Lt, pad], axis=-2))


def backward_step(mean, cov_factor, next_mean, next_factor, G, W_factor):
    r"""One smoothing step: moments of :math:`\theta_t | y_{1:T}` from those of t+1."""
    cond = update(mean, cov_factor, next_mean, G, W_factor)
    X = solve_triangular(cond.forecast_factor, cond.gain_factor, lower=False)
    spread = pt.matmul(next_factor, X)
    rows = pt.concatenate(
        [cond.cov_factor, pt.broadcast_to(spread, cond.cov_factor.shape)], axis=-2
    )
    return cond.mean, triangularize(rows)


def smoother_scan(filtered, G, W_sqrt, time_varying):
    """Run the backward pass over filter output (see :class:`~pymc_dlm.kalman.FilterResult`).

    With a diffuse filter (``filtered.filtered_diffuse`` not ``None``) the steps of the diffuse
    period condition exactly on the next state with
    :func:`~pymc_dlm.kalman.diffuse_backward.diffuse_backward_step`: the smoothed moments are
    proper there once the data identify every diffuse state.
    """
    if filtered.filtered_diffuse is not None:
        return _diffuse_smoother(filtered, G, W_sqrt, time_varying)
    m = time_first(filtered.filtered_mean, 1)
    C = time_first(filtered.filtered_factor, 2)
    W_factor = noise_factor(W_sqrt)
    inputs = scan_inputs(
        {"m": m[:-1], "C": C[:-1]}, [("G", G, 2), ("W", W_factor, 2)], time_varying, offset=1
    )

    def step(*args):
        mats, (s_next, S_next) = inputs.unpack(args, 2)
        s, S = backward_step(mats["m"], mats["C"], s_next, S_next, mats["G"], mats["W"])
        return pt.specify_shape(s, s_next.type.shape), pt.specify_shape(S, S_next.type.shape)

    n = G.type.shape[-1]
    last_C = pt.specify_shape(C[-1], (*(None,) * (C.ndim - 3), n, n))
    last_m = pt.specify_shape(m[-1], (*(None,) * (m.ndim - 2), n))
    s, S = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[last_m, last_C],
        non_sequences=inputs.fixed,
        go_backwards=True,
        strict=True,
        return_updates=False,
    )
    s = pt.concatenate([s[::-1], m[-1:]], axis=0)
    S = pt.concatenate([S[::-1], last_C[None]], axis=0)
    return SmootherResult(pt.moveaxis(s, 0, -2), pt.moveaxis(S, 0, -3))


def _diffuse_smoother(filtered, G, W_sqrt, time_varying):

    def regular(m, C, G_t, W_t, carry):
        return list(backward_step(m, C, carry[0], carry[1], G_t, W_t))

    def diffuse(m, C, B, G_t, W_t, carry):
        mean, U, J = diffuse_backward_step(m, C, B, carry[0], G_t, W_t)
        spread = pt.matmul(carry[1], mT(J))
        rows = pt.concatenate([U, pt.broadcast_to(spread, U.shape)], axis=-2)
        return [mean, triangularize(rows)]

    n = G.type.shape[-1]
    m_last = filtered.filtered_mean[..., -1, :]
    C_last = filtered.filtered_factor[..., -1, :, :]
    init = [
        pt.specify_shape(m_last, (*(None,) * (m_last.ndim - 1), n)),
        pt.specify_shape(C_last, (*(None,) * (C_last.ndim - 2), n, n)),
    ]
    s, S = backward_pass(filtered, G, noise_factor(W_sqrt), time_varying, regular, diffuse, init)
    return SmootherResult(pt.moveaxis(s, 0, -2), pt.moveaxis(S, 0, -3))
