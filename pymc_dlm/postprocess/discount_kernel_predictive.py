r"""Replicates, residuals and one-step terms of discounted DLMs by the numba kernels.

The kernels' route of :mod:`pymc_dlm.postprocess.discount_predictive` (whose module doc
states what is drawn) for every chunk of posterior draws, laid out by
:func:`~pymc_dlm.postprocess.discount_kernel_draws.over_chunks`:

* the one-step predictive of every time from the kernels' forward pass with the discounting
  (:func:`~pymc_dlm.postprocess.discount_moments.run_kernel`,
  :func:`~pymc_dlm.postprocess.discount_moments.kernel_outputs`): location :math:`f_t`,
  squared scale :math:`Q_t` and degrees of freedom (infinite with a known variance,
  :math:`\delta_V n_{t-1}` with a learned one; West & Harrison 1997, §4.6, §10.8), and the
  times where it is improper (a diffuse direction seen by :math:`F_t`);
* ``kind="smoothed"`` replicates :math:`F_t \theta_t + v_t` from the joint draws of
  :func:`~pymc_dlm.postprocess.discount_kernel_draws.kernel_paths`, :math:`v_t` at the
  variance that path was drawn with.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed., §4.6,
§10.8.
"""

import numpy as np

from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.fused.observed import seen_diffuse
from pymc_dlm.postprocess.discount_kernel_draws import kernel_paths, over_chunks
from pymc_dlm.postprocess.discount_moments import kernel_outputs, run_kernel
from pymc_dlm.postprocess.one_step import one_step_draws

__all__ = ["kernel_one_step", "kernel_replicates", "kernel_terms"]


def _one_step(chunk, learned):
    """``(f, Q, dof, improper)`` (M, T, p), (M, T, p, p), (M, T), (M, T) of one chunk.

    In the space of the observations: the model's F and V (:class:`Chunk`), whatever the
    kernel ran on.
    """
    inp, dinp = chunk.inp, chunk.dinp
    out, carry = run_kernel(inp, dinp, learned)
    res = kernel_outputs(inp, dinp, out, carry, learned, (chunk.F, chunk.V))
    f, Q = res["forecast_mean"], res["forecast_cov"]
    dof = res["forecast_dof"] if learned else np.full(f.shape[:2], np.inf)
    improper = np.zeros(f.shape[:2], dtype=bool)
    if inp.Pinf_sqrt.shape[2]:
        improper = seen_diffuse(chunk.F, out.pPinf_f)
    failed = out.status != OK  # NaN moments (a unit Q keeps the draws' factorisation defined)
    f[failed] = np.nan
    Q[failed] = np.eye(Q.shape[-1])
    return f, Q, dof, improper


def kernel_one_step(target, system, draws, n_total, chunk_size, progressbar):
    """``(f, Q, dof, improper)`` of every draw, (S, *batch, T, ...) (module doc)."""
    learned = target.op.learned
    chunking = (n_total, chunk_size, progressbar, f"residuals: {target.name}")
    return over_chunks(target, system, draws, chunking, lambda chunk: _one_step(chunk, learned))


def kernel_terms(target, system, draws, n_total, chunk_size, progressbar, description):
    r"""Every one-step log density :math:`\log p(y_t | y_{1:t-1}, \psi)` (S, *batch, T)."""

    def terms(chunk):
        out, _ = run_kernel(chunk.inp, chunk.dinp, target.op.learned)
        return [np.where((out.status != OK)[:, None], np.nan, out.ll_t + chunk.step_jac)]

    chunking = (n_total, chunk_size, progressbar, description)
    (ll,) = over_chunks(target, system, draws, chunking, terms)
    return ll


def _one_step_draws(chunk, learned, gen):
    f, Q, dof, improper = _one_step(chunk, learned)
    return [one_step_draws(f, Q, dof if learned else None, improper, gen)]


def _smoothed_draws(chunk, learned, gen):
    inp = chunk.inp
    M, T, p = inp.y.shape
    eps = gen.standard_normal((2, M, T, inp.G.shape[-1]))
    res = kernel_paths(inp, chunk.dinp, learned, chunk.diffuse, eps, gen)
    signal = np.matmul(chunk.F, res.path[..., None])[..., 0]
    noise = np.matmul(np.linalg.cholesky(chunk.V), gen.standard_normal((M, T, p))[..., None])
    if learned:  # V at unit scale (the identity) times the variance the path was drawn with
        noise = np.sqrt(res.V)[..., None, None] * noise
    return [signal + noise[..., 0]]


def kernel_replicates(target, system, draws, kind, n_total, rng, chunk_size, progressbar):
    """Replicates (S, *batch, T, p) of every draw, ``kind`` "one_step" or "smoothed"."""
    gen = np.random.default_rng(rng.integers(2**63))
    learned = target.op.learned

    def run(chunk):
        if kind == "smoothed":
            return _smoothed_draws(chunk, learned, gen)
        return _one_step_draws(chunk, learned, gen)

    chunking = (n_total, chunk_size, progressbar, f"posterior_predictive: {target.name}")
    (rep,) = over_chunks(target, system, draws, chunking, run)
    return rep
