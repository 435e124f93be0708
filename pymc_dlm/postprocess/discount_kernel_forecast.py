r"""Forecast draws of discounted DLMs by the numba kernels: the route of ``forecast``.

West & Harrison's convention (1997, §6.3; :mod:`pymc_dlm.postprocess.discount_forecast`
states it and is the scans' version): the state noise implied by the discounts at the
forecast origin T,

.. math::

    W_{T+k} = D \circ (G_{T+1} C_T G_{T+1}^\top) + L_{W,T+k} L_{W,T+k}^\top,

is held for every future step (the ``sigma`` blocks adding their own noise, their future
values when their W is time-varying). For every chunk of posterior draws the kernels' forward
pass with the discounting (:func:`~pymc_dlm.postprocess.discount_moments.run_kernel`) gives
:math:`C_{1:T}` and the in-sample :math:`W_t`; the forecast kernel of the fixed-W models
(:func:`~pymc_dlm.kalman.fused.states.forecast_into`) filters the data with those
:math:`W_t`, draws :math:`\theta_T \sim N(m_T, C_T)` and simulates the future with
:math:`W_{T+k}`.

With a learned variance the path is drawn at unit scale and its deviations from the mean
path (the same kernel with zero noise) are multiplied at step k by :math:`\sqrt{V_{T+k}}`,
:math:`V_{T+k} = 1/\phi_{T+k}` from :func:`precisions_ahead`. ``origin=k``: the data and
matrices before k filter, those from k on are the future.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed., §4.6,
§6.3, §10.8.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.discount import LearnedScale
from pymc_dlm.kalman.fused.discounted_ops import discounted_inputs
from pymc_dlm.kalman.fused.records import ForecastOutputs, Future
from pymc_dlm.kalman.fused.states import forecast_into
from pymc_dlm.model.priors import psd_factor
from pymc_dlm.postprocess.discount_kernel_draws import (
    batch_shape,
    fixed_inputs,
    lay_out,
    n_members,
    now_outputs,
)
from pymc_dlm.postprocess.discount_moments import learned_path, run_kernel
from pymc_dlm.postprocess.fused_states import in_threads, members, observed, over_draws
from pymc_dlm.postprocess.posterior import params_at
from pymc_dlm.postprocess.progress import chunked

__all__ = [
    "forecast_paths",
    "kernel_forecast_draws",
    "kernel_forecast_function",
    "precisions_ahead",
]

#: The future's arrays in the discounted kernel's layout: F, G, the sigma blocks' W_sqrt,
#: the observation standard deviations, the discount factors.
_AHEAD = (1, 2, 3, 4, 7)


def kernel_forecast_function(target, future, steps):
    """The kernel's inputs now and ahead as a function of the draws, or ``None``.

    ``future``: the target's parameters over the ``steps`` future times, or ``None`` to
    forecast from an origin inside the sample. Returns ``(fn, batched)`` of
    :func:`~pymc_dlm.postprocess.fused_states.over_draws`: the twelve outputs of
    :func:`~pymc_dlm.postprocess.discount_kernel_draws.now_outputs` (a full observation
    covariance is not decorrelated: ``None``), then with ``future`` the five arrays of
    :data:`_AHEAD` for the steps ahead.
    """
    op = target.op
    values = [v.type() for v in target.inputs]
    outputs = now_outputs(target, values)
    if outputs is None:
        return None
    if future is not None:
        repl = dict(zip(target.inputs, values))
        later = graph_replace(future, repl, strict=False) if repl else future
        params = params_at(target, values)
        learned = LearnedScale(*params[7:10]) if op.learned else None
        y = observed(target)
        y_ahead = pt.zeros((*(y.shape[i] for i in range(y.ndim - 2)), steps, y.shape[-1]))
        ahead = discounted_inputs(op.system(later[:7]), y_ahead, learned)
        if ahead is None:
            return None
        outputs += [ahead[0][i] for i in _AHEAD]
    return over_draws(values, outputs)


def precisions_ahead(gen, n, S, discount, steps):
    r""":math:`\phi_{T+1..T+H}` (M, H) from :math:`\phi_T \sim \mathrm{Ga}(n/2, nS/2)`.

    West & Harrison's beta-gamma evolution (1997, §10.8):
    :math:`\phi_{T+k} = \phi_{T+k-1} \gamma_k / \delta_V`, :math:`\gamma_k \sim
    \mathrm{Beta}(\delta_V^k n/2, (1-\delta_V)\delta_V^{k-1} n/2)` (the scans' version is
    :func:`pymc_dlm.kalman.variance_path.precisions_ahead`). ``n``, ``S``, ``discount``
    (M,); with :math:`\delta_V = 1` every :math:`\phi_{T+k} = \phi_T`.
    """
    phi = gen.gamma(0.5 * n, 2.0 / (n * S))
    k = np.arange(1, steps + 1, dtype=np.float64)
    dV = np.broadcast_to(discount, n.shape)[:, None]
    discounted = np.broadcast_to(dV < 1.0, (n.size, steps))
    a = np.where(discounted, 0.5 * dV**k * n[:, None], 1.0)
    b = np.where(discounted, 0.5 * (1.0 - dV) * dV ** (k - 1.0) * n[:, None], 1.0)
    growth = np.where(discounted, np.log(gen.beta(a, b)) - np.log(dV), 0.0)
    return phi[:, None] * np.exp(np.cumsum(growth, axis=-1))


def _split(inp, dinp, ahead, origin, steps, time_varying):
    """In-sample inputs before ``origin`` and the future after it (origin None: as given)."""
    if origin is None:
        return inp, ahead
    cut = {"F": "F", "G": "G", "W_sqrt": "W", "obs_sd": "obs"}
    now = {"y": inp.y[:, :origin]}
    later = []
    for field in ("F", "G", "W_sqrt", "obs_sd"):
        x = getattr(inp, field)
        tv = cut[field] in time_varying
        now[field] = x[:, :origin] if tv else x
        later.append(np.ascontiguousarray(x[:, origin : origin + steps]) if tv else x)
    now = {k: np.ascontiguousarray(v) for k, v in now.items()}
    return inp._replace(**now), [*later, dinp.discount]


def _held_noise(C_T, ahead, blocks):
    """Factors (M, 1 or H, n, n) of :math:`W_{T+k}` (module doc) from :math:`C_T` (M, n, n)."""
    F, G, L, sd, discount = ahead
    G1 = G[:, 0]
    P = np.matmul(np.matmul(G1, C_T), np.swapaxes(G1, -1, -2))
    held = (1.0 / discount - 1.0)[:, :, None] * blocks * P
    W = held[:, None] + np.matmul(L, np.swapaxes(L, -1, -2))
    return psd_factor(0.5 * (W + np.swapaxes(W, -1, -2)))


def _simulate(fixed, future, eps, M, steps, p):
    n = fixed.G.shape[-1]
    out = ForecastOutputs(y=np.empty((M, steps, p)), theta=np.empty((M, steps, n)),
                          status=np.empty(M, dtype=np.int64))  # fmt: skip
    in_threads(lambda lo, hi: forecast_into(fixed, future, eps, out, lo, hi), M)
    return out


def _chunk(target, compiled, values, S, steps, origin, gen):
    op = target.op
    fn, batched = compiled
    outs = fn(*values) if values else fn()
    inp, dinp, _, diffuse, _ = lay_out(target, outs, batched, S)
    M, B = inp.y.shape[0], n_members(target)
    ahead = None
    if origin is None:  # every future array has a member axis
        ahead = [members(x, b, S, B) for x, b in zip(outs[12:], batched[12:])]
        ahead = [np.ascontiguousarray(np.broadcast_to(x, (M, *x.shape[1:]))) for x in ahead]
    inp, ahead = _split(inp, dinp, ahead, origin, steps, op.time_varying)
    n, p = inp.G.shape[-1], inp.y.shape[-1]
    eps = gen.standard_normal((M, n + steps * (n + p)))
    return forecast_paths(inp, dinp, ahead, op.learned, diffuse, eps, gen)


def forecast_paths(inp, dinp, ahead, learned, diffuse, eps, gen):
    r"""Future observations (M, H, p) and states (M, H, n) of M members (module doc).

    ``inp``, ``dinp``: the discounted kernel's inputs up to the origin; ``ahead``: the
    future F, G, ``sigma`` blocks' factor, observation standard deviations (member axis
    first, then 1 or H) and discount factors; ``diffuse``: the boolean mask (n,) of diffuse
    states; ``eps`` (M, n + H (n + p)): standard normal draws, :math:`\theta_T`'s then
    the state and observation noise of each step (the draws are affine in them with a known
    variance); ``gen``: a numpy Generator for a learned variance's precisions. NaN for a
    member whose filter fails or is still diffuse at the origin.
    """
    (M, width), n, p = eps.shape, inp.G.shape[-1], inp.y.shape[-1]
    steps = (width - n) // (n + p)
    out, carry = run_kernel(inp, dinp, learned)
    fixed, failed = fixed_inputs(inp, dinp, out, diffuse)
    W = _held_noise(np.where(failed[:, None, None], 0.0, out.fC[:, -1]), ahead, dinp.blocks)
    future = Future(F=ahead[0], G=ahead[1], W_sqrt=np.ascontiguousarray(W), obs_sd=ahead[3])
    res = _simulate(fixed, future, eps, M, steps, p)
    y, theta = res.y, res.theta
    if learned:  # unit scale: deviations from the mean path scaled by sqrt(V_{T+k})
        mean = _simulate(fixed, future, np.zeros_like(eps), M, steps, p)
        n_t, S_t, _, _ = learned_path(inp, dinp, out, carry)
        n_T = np.where(failed, 1.0, n_t[:, -1])
        S_T = np.where(failed, 1.0, S_t[:, -1])
        sd = 1.0 / np.sqrt(precisions_ahead(gen, n_T, S_T, dinp.scale[:, 2], steps))
        y = mean.y + (y - mean.y) * sd[..., None]
        theta = mean.theta + (theta - mean.theta) * sd[..., None]
    bad = failed | (res.status != OK)
    y[bad], theta[bad] = np.nan, np.nan
    return y, theta


def kernel_forecast_draws(target, compiled, draws, steps, origin, run):
    """Future observations (S, *batch, H[, p]) and states (S, *batch, H, n) of every draw.

    ``compiled``: :func:`kernel_forecast_function`'s result; ``run``: ``(n_total, rng,
    chunk_size, progressbar)``.
    """
    n_total, rng, chunk_size, progressbar = run
    gen = np.random.default_rng(rng.integers(2**63))
    batch = batch_shape(target)
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, f"forecast: {target.name}"):
        y, theta = _chunk(target, compiled, [v[lo:hi] for v in draws], hi - lo, steps, origin,
                          gen)  # fmt: skip
        y = y.reshape(hi - lo, *batch, *y.shape[1:])
        pieces.append((y[..., 0] if target.op.univariate else y,
                       theta.reshape(hi - lo, *batch, *theta.shape[1:])))  # fmt: skip
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]
