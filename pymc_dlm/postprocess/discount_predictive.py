r"""Posterior predictive replicates and residuals of discounted DLMs, for every draw.

At each posterior draw :math:`\psi` the discount filter of :mod:`pymc_dlm.kalman.discount`
runs on the data and gives the one-step forecasts: :math:`N(f_t, Q_t)` with a known
observation variance, and with a learned one the Student-t with
:math:`\nu_t = \delta_V n_{t-1}` degrees of freedom, location :math:`f_t` and squared scale
:math:`Q_t = S_{t-1} (F_t R^*_t F_t^\top + 1)` (West & Harrison 1997, §4.6, §10.8). From
them:

* ``kind="one_step"`` replicates are draws of that one-step predictive, exact for any
  variance discount;
* standardized residuals :math:`Q_t^{-1/2}(y_t - f_t)`, with Student-t errors mapped to the
  normal quantile of the same probability (as
  :func:`~pymc_dlm.postprocess.diagnostics.standardized_residuals` does);
* ``kind="smoothed"`` replicates :math:`y^{rep}_t = F_t \theta_t + v_t` use the FFBS path of
  :func:`~pymc_dlm.postprocess.discount_states.discounted_paths` and, with a learned
  variance, the V that path was drawn with (a joint draw of :math:`(V, \theta_{1:T}) | y`;
  with a variance discount below 1 the path :math:`V_{1:T}` and West & Harrison's
  convention for the states, see :mod:`~pymc_dlm.postprocess.discount_states`).

Times whose one-step predictive is improper (a diffuse direction visible in :math:`y_t`)
give NaN replicates and residuals.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.random.basic import gamma
from scipy import special

from pymc_dlm.kalman.diffuse import seen_diffuse
from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.simulate import standard_normal
from pymc_dlm.postprocess.diagnostics import standardize
from pymc_dlm.postprocess.discount_kernel_draws import kernel_system
from pymc_dlm.postprocess.discount_kernel_predictive import kernel_one_step, kernel_replicates
from pymc_dlm.postprocess.discount_states import (
    discounted_paths,
)
from pymc_dlm.postprocess.over_draws import compile_over_draws, evaluate_over_draws
from pymc_dlm.postprocess.posterior import params_at

__all__ = ["discounted_replicates", "discounted_residuals"]


def _previous(x, first):
    """``x`` (..., T) shifted one step later in time, ``first`` (...) at t = 1."""
    start = pt.shape_padright(first, 1) * pt.ones_like(x[..., :1])
    return pt.concatenate([start, x[..., :-1]], axis=-1)


def one_step_moments(target, values):
    """``(f, Q, dof, improper)`` at one draw: (..., T, p), (..., T, p, p), (..., T), (..., T).

    ``dof`` is infinite with a known variance; ``improper`` flags the times whose one-step
    predictive is improper (a diffuse direction seen by :math:`F_t`).
    """
    op = target.op
    params = params_at(target, values)
    system = op.system(params[:7])
    learned = LearnedScale(*params[7:10]) if op.learned else None
    y = pt.as_tensor_variable(target.data)
    y = y[..., None] if op.univariate else y
    res = discount_filter_scan(system, y, learned, return_all=True)
    tv = system.time_varying
    F = system.F if "F" in tv else system.F[..., None, :, :]
    f = matvec(F, res.predicted_mean)
    FRF = pt.matmul(pt.matmul(F, res.predicted_cov), mT(F))
    if learned is None:
        obs = system.obs
        V = (obs**2)[..., None, :] * pt.eye(obs.shape[-1]) if system.obs_diag else obs
        Q = FRF + (V if "obs" in tv else V[..., None, :, :])
        dof = pt.full_like(f[..., 0], np.inf)
    else:
        S_prev = _previous(res.scale, pt.as_tensor(learned.S0, dtype="float64"))
        Q = (FRF + 1.0) * S_prev[..., None, None]
        dof = learned.discount[..., None] * _previous(res.dof, learned.n0)
    if system.diffuse is None:
        improper = pt.zeros_like(f[..., 0], dtype="bool")
    else:
        B = res.filtered_diffuse
        A = pt.as_tensor(system.diffuse.data)
        B_prev = pt.concatenate([pt.broadcast_to(A, B[..., :1, :, :].shape), B[..., :-1, :, :]],
                                axis=-3)  # fmt: skip
        G = system.G if "G" in tv else system.G[..., None, :, :]
        improper = seen_diffuse(F, pt.matmul(G, B_prev))  # the predicted diffuse factor
    return f, Q, dof, improper


def _one_step_replicates(target, values, rng):
    f, Q, dof, improper = one_step_moments(target, values)
    rng, eps = standard_normal(rng, f.shape)
    L = pt.linalg.cholesky(0.5 * (Q + mT(Q)), lower=True)
    draw = matvec(L, eps)
    if target.op.learned:  # t_nu = N(0, 1) / sqrt(chi2_nu / nu), chi2_nu = Gamma(nu/2, scale 2)
        rng, chi2 = gamma(0.5 * dof, scale=2.0, rng=rng, return_next_rng=True)
        draw = draw / pt.sqrt(chi2 / dof)[..., None]
    return [pt.switch(improper[..., None], np.nan, f + draw)], rng


def _smoothed_replicates(target, values, rng):
    outputs, V, rng = discounted_paths(target, values, rng)
    smoothed = outputs[1]
    op = target.op
    system = op.system(params_at(target, values)[:7])
    F = system.F if "F" in system.time_varying else system.F[..., None, :, :]
    signal = matvec(F, smoothed)
    rng, eps = standard_normal(rng, signal.shape)
    if V is not None:
        noise = pt.sqrt(V)[..., None] * eps
    elif system.obs_diag:
        obs = system.obs if "obs" in system.time_varying else system.obs[..., None, :]
        noise = obs * eps
    else:
        obs = system.obs if "obs" in system.time_varying else system.obs[..., None, :, :]
        noise = matvec(pt.linalg.cholesky(obs, lower=True), eps)
    return [signal + noise], rng


def discounted_replicates(target, draws, kind, n_total, rng, chunk_size, progressbar):
    """Replicates (S, *batch, T, p) of every draw (see the module's description)."""
    system = kernel_system(target)
    if system is not None:  # the kernels (the scans below: a full V, or not float64)
        args = (n_total, rng, chunk_size, progressbar)
        return kernel_replicates(target, system, draws, kind, *args)
    draw_fn = _smoothed_replicates if kind == "smoothed" else _one_step_replicates
    compiled = compile_over_draws(target, lambda v, r: draw_fn(target, v, r), 1)
    description = f"posterior_predictive: {target.name}"
    (rep,) = evaluate_over_draws(compiled, draws, n_total, rng, chunk_size, progressbar,
                                 description)  # fmt: skip
    return rep


def discounted_residuals(target, draws, n_total, rng, chunk_size, progressbar):
    """Standardized one-step errors (S, *batch, T, p) of every draw (Student-t to N(0, 1))."""
    system = kernel_system(target)
    if system is not None:  # the kernels (the scans below: a full V, or not float64)
        f, Q, dof, improper = kernel_one_step(
            target, system, draws, n_total, chunk_size, progressbar
        )
    else:

        def fn(values, rng):
            return list(one_step_moments(target, values)), rng

        f, Q, dof, improper = evaluate_over_draws(
            compile_over_draws(target, fn, 4), draws, n_total, rng, chunk_size, progressbar,
            f"residuals: {target.name}",
        )  # fmt: skip
    y = target.data[..., None] if target.op.univariate else target.data
    y = np.broadcast_to(y, f.shape)
    z = standardize(y, f, Q, improper)
    finite = np.isfinite(dof)[..., None]
    dof = np.where(np.isfinite(dof), dof, 1.0)[..., None]
    mapped = np.sign(z) * -special.ndtri(special.stdtr(dof, -np.abs(z)))
    return np.where(finite, mapped, z)
