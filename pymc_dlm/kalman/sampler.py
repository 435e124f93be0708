r"""Forward-filtering backward-sampling (FFBS) of state paths.

Given the filter's :math:`m_t, C_t`, draw :math:`\theta_T \sim N(m_T, C_T)` and then, for
:math:`t = T-1, \dots, 1`,

.. math::

    \theta_t | \theta_{t+1}, y_{1:t} \sim N\big(m_t + J_t(\theta_{t+1} - a_{t+1}),\;
    C_t - J_t R_{t+1} J_t^\top\big), \qquad J_t = C_t G_{t+1}^\top R_{t+1}^{-1},

computed by :func:`~pymc_dlm.kalman.steps.update` with the sampled next state as the
"observation" through :math:`G_{t+1}` with noise :math:`W_{t+1}`. Singular :math:`W` is exact:
only :math:`R_{t+1}` must be positive definite.

With diffuse states, :math:`\theta_t | y_{1:t}` is improper during the diffuse period, but
:math:`\theta_t | \theta_{t+1}, y_{1:t}` is proper (the next state pins the diffuse
directions down when :math:`G_{t+1}B_t` has full column rank); those steps use the exact
conditioning of :func:`~pymc_dlm.kalman.diffuse_backward.diffuse_backward_step`, so the path is an
exact draw from :math:`p(\theta_{1:T} | y_{1:T})` under the flat prior.

References
----------
Carter & Kohn (1994), *Biometrika* 81, 541–553; Frühwirth-Schnatter (1994), *J. Time Series
Analysis* 15, 183–202; Petris, Petrone & Campagnoli (2009), §4.4.1 (``dlmBSample``).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.diffuse import diffuse_rows
from pymc_dlm.kalman.diffuse_backward import backward_pass, diffuse_backward_step
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.smoother import noise_factor
from pymc_dlm.kalman.steps import update

__all__ = ["backward_sample", "filtered_sample"]


def filtered_sample(filtered, eps):
    r"""Independent draws :math:`\theta_t \sim N(m_t, C_t)` for every t.

    ``eps`` is standard normal with the shape of ``filtered.filtered_mean`` (..., T, n).
    During a diffuse period the filtered distribution of some states is improper: those
    states (the rows of the diffuse factor :math:`B_t` that pass the filter's rank test,
    :func:`~pymc_dlm.kalman.diffuse.diffuse_rows`) are NaN.
    """
    draw = filtered.filtered_mean + matvec(mT(filtered.filtered_factor), eps)
    if filtered.filtered_diffuse is None:
        return draw
    return pt.switch(diffuse_rows(filtered.filtered_diffuse), np.nan, draw)


def backward_sample(filtered, G, W_sqrt, time_varying, eps):
    r"""One joint path :math:`\theta_{1:T} \sim p(\theta_{1:T} | y_{1:T})` per batch element.

    Parameters
    ----------
    filtered : FilterResult
        With ``filtered_mean`` (..., T, n) and ``filtered_factor`` (..., T, n, n).
    G, W_sqrt : tensors
        Transition matrix and state-noise factor (time axis if declared time-varying).
    time_varying : frozenset
        Declared time-varying matrices.
    eps : (..., T, n)
        Standard normal draws.
    """
    if filtered.filtered_diffuse is not None:
        return _diffuse_backward_sample(filtered, G, W_sqrt, time_varying, eps)
    m = time_first(filtered.filtered_mean, 1)
    C = time_first(filtered.filtered_factor, 2)
    z = time_first(eps, 1)
    W_factor = noise_factor(W_sqrt)
    last = m[-1] + matvec(mT(C[-1]), z[-1])
    inputs = scan_inputs(
        {"m": m[:-1], "C": C[:-1], "z": z[:-1]},
        [("G", G, 2), ("W", W_factor, 2)],
        time_varying,
        offset=1,
    )

    def step(*args):
        mats, (nxt,) = inputs.unpack(args, 1)
        cond = update(mats["m"], mats["C"], nxt, mats["G"], mats["W"])
        draw = cond.mean + matvec(mT(cond.cov_factor), mats["z"])
        return pt.specify_shape(draw, nxt.type.shape)

    n = G.type.shape[-1]
    last = pt.specify_shape(last, (*(None,) * (last.ndim - 1), n))
    path = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[last],
        non_sequences=inputs.fixed,
        go_backwards=True,
        strict=True,
        return_updates=False,
    )
    path = pt.concatenate([path[::-1], last[None]], axis=0)
    return pt.moveaxis(path, 0, -2)


def _diffuse_backward_sample(filtered, G, W_sqrt, time_varying, eps):

    def regular(m, C, G_t, W_t, carry, z):
        cond = update(m, C, carry[0], G_t, W_t)
        return [cond.mean + matvec(mT(cond.cov_factor), z)]

    def diffuse(m, C, B, G_t, W_t, carry, z):
        mean, U, _ = diffuse_backward_step(m, C, B, carry[0], G_t, W_t, gain=False)
        return [mean + matvec(mT(U), z)]

    n = G.type.shape[-1]
    last = filtered.filtered_mean[..., -1, :] + matvec(
        mT(filtered.filtered_factor[..., -1, :, :]), eps[..., -1, :]
    )
    last = pt.specify_shape(last, (*(None,) * (last.ndim - 1), n))
    (path,) = backward_pass(
        filtered, G, noise_factor(W_sqrt), time_varying, regular, diffuse, [last], z=eps
    )
    return pt.moveaxis(path, 0, -2)
