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
matrices before k filter, those from k on are the future. The future's observations are
simulated with unit noise as :math:`y'_{T+k} = L^{-1} F \theta_{T+k} + e`,
:math:`L L^\top = V_{T+k}`, and returned as :math:`L y'_{T+k}` (a full V, as in the
log-density's decorrelation; exact for any V).

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
from pymc_dlm.kalman.fused.canonical import canonical_matrix
from pymc_dlm.kalman.fused.discounted_ops import discounted_inputs
from pymc_dlm.kalman.fused.records import ForecastOutputs, Future
from pymc_dlm.kalman.fused.states import forecast_into
from pymc_dlm.model.priors import psd_factor
from pymc_dlm.postprocess.diagnostics import cholesky_each
from pymc_dlm.postprocess.discount_kernel_draws import fixed_inputs, now_outputs, over_chunks
from pymc_dlm.postprocess.discount_moments import learned_path, model_cov, run_kernel
from pymc_dlm.postprocess.fused_states import in_threads, observed, over_draws
from pymc_dlm.postprocess.posterior import params_at

__all__ = [
    "forecast_paths",
    "kernel_forecast_draws",
    "kernel_forecast_function",
    "precisions_ahead",
    "split_at_origin",
]

#: The future's arrays in the discounted kernel's layout, G, the sigma blocks' W_sqrt and the
#: discount factors (beside them, the model's F and V).
_AHEAD = (2, 3, 7)


def kernel_forecast_function(target, future, steps):
    """The kernel's inputs now and ahead as a function of the draws, or ``None``.

    ``future``: the target's parameters over the ``steps`` future times, or ``None`` to
    forecast from an origin inside the sample. Returns ``(fn, batched)`` of
    :func:`~pymc_dlm.postprocess.fused_states.over_draws`: the outputs of
    :func:`~pymc_dlm.postprocess.discount_kernel_draws.now_outputs`, then with ``future``
    the model's F, G, the ``sigma`` blocks' W_sqrt, the model's V and the discount factors
    for the steps ahead.
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
        model = op.system(later[:7])
        unit = model  # the kernel's future: unit noise (a learned variance's is already)
        if learned is None:
            ones = pt.ones((y.shape[-1],), dtype="float64")
            unit = model._replace(
                obs=ones, obs_diag=True, time_varying=model.time_varying - {"obs"}
            )
        found = discounted_inputs(unit, y_ahead, learned)
        if found is None:
            return None
        canon, _, batch = found
        G, W_sqrt, discount = (canon[i] for i in _AHEAD)
        tv = op.time_varying
        F = canonical_matrix(model.F, 2, batch, "F" in tv)
        V = canonical_matrix(model_cov(model, learned), 2, batch, "obs" in tv and not learned)
        outputs += [F, G, W_sqrt, V, discount]
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


def split_at_origin(chunk, origin, steps, time_varying):
    """In-sample inputs before ``origin`` and the future's model arrays (module doc).

    Returns ``(inp, ahead)``, ``ahead`` the future's F, G, ``sigma`` blocks' W_sqrt, V and
    discount factors with a member axis of length M. ``origin`` None: the chunk's ``ahead``;
    else the in-sample arrays from ``origin`` on (the model's F and V, not the kernel's).
    """
    inp, M = chunk.inp, chunk.inp.y.shape[0]
    if origin is None:
        return inp, [np.broadcast_to(x, (M, *x.shape[1:])) for x in chunk.ahead]
    cut = {"F": "F", "G": "G", "W_sqrt": "W", "obs_sd": "obs"}
    now = {"y": inp.y[:, :origin]}
    for field in ("F", "G", "W_sqrt", "obs_sd"):
        x = getattr(inp, field)
        now[field] = x[:, :origin] if cut[field] in time_varying else x
    later = []
    for x, key in ((chunk.F, "F"), (inp.G, "G"), (inp.W_sqrt, "W"), (chunk.V, "obs")):
        x = x[:, origin : origin + steps] if key in time_varying and x.shape[1] > 1 else x
        later.append(np.broadcast_to(x, (M, *x.shape[1:])))
    now = {k: np.ascontiguousarray(v) for k, v in now.items()}
    return inp._replace(**now), [*later, chunk.dinp.discount]


def _held_noise(C_T, ahead, blocks):
    """Factors (M, 1 or H, n, n) of :math:`W_{T+k}` (module doc) from :math:`C_T` (M, n, n)."""
    _, G, L, _, discount = ahead
    G1 = G[:, 0]
    P = np.matmul(np.matmul(G1, C_T), np.swapaxes(G1, -1, -2))
    held = (1.0 / discount - 1.0)[:, :, None] * blocks * P
    W = held[:, None] + np.matmul(L, np.swapaxes(L, -1, -2))
    return psd_factor(0.5 * (W + np.swapaxes(W, -1, -2)))


def _unit_noise(F, V):
    r"""``(F', L, ok)``: :math:`L L^\top = V`, :math:`F' = L^{-1} F` (M, 1 or H, ...).

    ``ok`` (M,): V positive definite at every step (elsewhere L is the identity).
    """
    L, ok = cholesky_each(V)
    F_unit = np.linalg.solve(L, F)  # L triangular: a solve, no inverse
    return np.ascontiguousarray(F_unit), L, np.all(ok, axis=-1)


def _simulate(fixed, future, eps, M, steps, p):
    n = fixed.G.shape[-1]
    out = ForecastOutputs(y=np.empty((M, steps, p)), theta=np.empty((M, steps, n)),
                          status=np.empty(M, dtype=np.int64))  # fmt: skip
    in_threads(lambda lo, hi: forecast_into(fixed, future, eps, out, lo, hi), M)
    return out


def forecast_paths(inp, dinp, ahead, learned, diffuse, eps, gen):
    r"""Future observations (M, H, p) and states (M, H, n) of M members (module doc).

    ``inp``, ``dinp``: the discounted kernel's inputs up to the origin; ``ahead``: the
    future's model F, G, ``sigma`` blocks' factor, V (member axis first, then 1 or H) and
    discount factors; ``diffuse``: the boolean mask (n,) of diffuse
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
    F_unit, L, ok = _unit_noise(ahead[0], ahead[3])
    failed |= ~ok
    future = Future(F=F_unit, G=np.ascontiguousarray(ahead[1]), W_sqrt=np.ascontiguousarray(W),
                    obs_sd=np.ones((M, 1, p)))  # fmt: skip
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
    y = np.matmul(L, y[..., None])[..., 0]
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
    op = target.op

    def paths(chunk):
        inp, ahead = split_at_origin(chunk, origin, steps, op.time_varying)
        (M, _, p), n = inp.y.shape, inp.G.shape[-1]
        eps = gen.standard_normal((M, n + steps * (n + p)))
        y, theta = forecast_paths(inp, chunk.dinp, ahead, op.learned, chunk.diffuse, eps, gen)
        return [y[..., 0] if op.univariate else y, theta]

    chunking = (n_total, chunk_size, progressbar, f"forecast: {target.name}")
    return over_chunks(target, compiled, draws, chunking, paths)
