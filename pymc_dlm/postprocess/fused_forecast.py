r"""The fused route of :func:`pymc_dlm.forecast`: the numba filter and forward simulation.

For every posterior draw, :func:`~pymc_dlm.kalman.fused.states.forecast_into` filters the
data, draws :math:`\theta_T \sim N(m_T, C_T)` and simulates the model forward with the future
matrices (``new_data`` in place of the ``pm.Data`` regressors). The matrices now and in the
future are evaluated by one small vectorised function per chunk of draws
(:func:`~pymc_dlm.postprocess.fused_states.over_draws`); the kernel is compiled once and
cached on disk, so no model-specific graph goes through numba.

A full observation covariance :math:`V_t = L_t L_t^\top` runs on the decorrelated model
(:func:`~pymc_dlm.kalman.fused.canonical.decorrelate`: :math:`L_t^{-1} F_t` and unit noise), which
has the same states; the kernel's future observations :math:`y'_t = L_t^{-1} F_t \theta_t +
e_t`, :math:`e_t \sim N(0, I)`, become :math:`y_t = L_t y'_t = F_t \theta_t + L_t e_t`.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace

from pymc_dlm.kalman.fused import layout
from pymc_dlm.kalman.fused.canonical import canonical_inputs, decorrelate
from pymc_dlm.kalman.fused.records import ForecastOutputs, Future, Inputs
from pymc_dlm.kalman.fused.states import forecast_into
from pymc_dlm.postprocess.fused_states import in_threads, kernel_inputs, observed, over_draws
from pymc_dlm.postprocess.posterior import system_at
from pymc_dlm.postprocess.progress import chunked

__all__ = ["fused_forecast_function", "fused_forecast_draws"]

#: The kernel's inputs now (:data:`~pymc_dlm.kalman.fused.layout.INPUTS`), then the future
#: F, G, W_sqrt and observation standard deviations.
_N_NOW = len(layout.INPUTS)
_N_AHEAD = 4


def fused_forecast_function(target, future, steps):
    """Compile the kernel's inputs now and ahead (``future``), or ``None``.

    ``future`` holds the target's six distribution parameters (F, G, W, obs, m0, C0) over the
    ``steps`` future times. ``None`` when the fused route does not apply (another dtype).
    The last output is the lower factor :math:`L_t` of the future observation covariance
    (batch, steps, p, p) that turns the kernel's decorrelated observations into the model's,
    or an empty array for a diagonal one.
    """
    op = target.op
    values = [v.type() for v in target.inputs]
    repl = dict(zip(target.inputs, values))
    later = graph_replace(future, repl, strict=False) if repl else future
    system = system_at(target, values)
    y = observed(target)
    if not system.obs_diag and y.dtype == "float64" and system.obs.dtype == "float64":
        system, y, _ = decorrelate(system, y)
    found = canonical_inputs(system, y)
    if found is None:
        return None
    canon, batch, _ = found
    n = system.G.type.shape[-1]
    zeros = pt.zeros((n,), dtype="float64")
    ahead = op.system(later)._replace(
        m0=zeros, C0_sqrt=pt.zeros((n, n), dtype="float64"), diffuse=None
    )
    y_ahead = pt.zeros((*(y.shape[i] for i in range(y.ndim - 2)), steps, y.shape[-1]))
    chol = pt.zeros((0,), dtype="float64")
    if not op.obs_diag:
        V = ahead.obs if "obs" in op.time_varying else pt.expand_dims(ahead.obs, -3)
        chol = pt.linalg.cholesky(pt.broadcast_to(V, (*batch, steps, *V.shape[-2:])))
        ahead, y_ahead, _ = decorrelate(ahead, y_ahead)
    found_ahead = canonical_inputs(ahead, y_ahead)
    if found_ahead is None:
        return None
    future_F_G_W_sd = found_ahead[0][1:5]  # y, then F, G, W_sqrt, obs_sd of the steps ahead
    fn, batched = over_draws(values, [*canon, *future_F_G_W_sd, pt.zeros(batch), chol])
    return fn, batched


def fused_forecast_draws(target, compiled, draws, steps, n_total, rng, chunk_size, progressbar):
    """Future observations (S, *batch, H[, p]) and states (S, *batch, H, n) of every draw."""
    fn, batched = compiled
    gen = np.random.default_rng(rng.integers(2**63))
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, f"forecast: {target.name}"):
        S = hi - lo
        outs = fn(*[v[lo:hi] for v in draws]) if draws else fn()
        batch = np.shape(outs[-2])[1 if batched[-2] else 0 :]
        B = int(np.prod(batch))
        n_in = _N_NOW + _N_AHEAD
        inputs = kernel_inputs(outs[:n_in], batched[:n_in], S, B)
        M = S * B
        y, _, G = inputs[:3]
        W_ahead = inputs[_N_NOW + 2]
        n, k, p = G.shape[-1], W_ahead.shape[-1], y.shape[-1]
        eps = gen.standard_normal((M, n + steps * (k + p)))
        y_out = np.empty((M, steps, p))
        theta = np.empty((M, steps, n))
        status = np.empty(M, dtype=np.int64)
        inp, future = Inputs(*inputs[:_N_NOW]), Future(*inputs[_N_NOW:])
        out = ForecastOutputs(y=y_out, theta=theta, status=status)
        in_threads(lambda a, b: forecast_into(inp, future, eps, out, a, b), M)
        y_out = y_out.reshape(S, *batch, steps, p)
        chol = outs[-1]
        if chol.size:  # a full V: y = L y' (L with or without the draw axis)
            y_out = np.einsum("...ij,...j->...i", chol, y_out)
        if target.op.univariate:
            y_out = y_out[..., 0]
        pieces.append((y_out, theta.reshape(S, *batch, steps, n)))
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]
