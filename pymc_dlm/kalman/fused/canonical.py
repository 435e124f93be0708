r"""The kernels' inputs from a model's system matrices: one batch axis and one time axis.

:func:`canonical_inputs` turns a :class:`~pymc_dlm.model.notation.SystemMatrices` and the
observations into the eight arrays the fused kernels read (declared in
:mod:`pymc_dlm.kalman.fused.layout`), with the exact diffuse start of step 1 made in front of
them; :func:`decorrelate` turns a full observation covariance into unit, uncorrelated noise,
so that the kernels (univariate updates) apply to it. Used by the log-likelihood's node
(:mod:`pymc_dlm.kalman.fused.ops`) and by the post-processing that runs the kernels
(states, forecasts, the fixed-parameter filters).
"""

from math import prod

import numpy as np
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.diffuse import diffuse_start
from pymc_dlm.kalman.prepare import batch_shape, observation_factor

__all__ = ["canonical_inputs", "canonical_matrix", "decorrelate"]


def canonical_matrix(x, core_ndim, batch, time_varying):
    """Reshape ``x`` (..., [T,] core) to (1 or B, 1 or T, core): one batch and one time axis."""
    lead = x.ndim - core_ndim - int(time_varying)
    if not time_varying:
        x = pt.expand_dims(x, lead)
    core_shape = _shape(x)[lead:]
    if all(s == 1 for s in x.type.shape[:lead]):
        return x.reshape((1, *core_shape))
    x = pt.broadcast_to(x, (*batch, *core_shape))
    return x.reshape((prod(batch) if batch else 1, *core_shape))


def _shape(x):
    """``x.shape`` with statically known lengths as Python integers (kept by reshape)."""
    return tuple(s if s is not None else x.shape[i] for i, s in enumerate(x.type.shape))


def canonical_inputs(system, y):
    """The kernels' inputs for ``y`` (..., T, p) under ``system``: ``(inputs, batch, log_jac)``.

    ``inputs`` are y, F, G, W_sqrt, obs_sd, m0, C0, Pinf_sqrt in the layout of
    :mod:`pymc_dlm.kalman.fused.kernels` (one batch axis of length 1 or B = prod(batch), one
    time axis of length 1 or T). With diffuse states, m0, C0 and Q are the prediction of step 1
    made by :func:`~pymc_dlm.kalman.diffuse.diffuse_start` (a small graph in front of the
    kernels) and ``log_jac`` (shape ``batch``) is its log-Jacobian, to be added to the
    log-likelihood; otherwise Q has no columns and ``log_jac`` is 0.

    Returns ``None`` when the kernels do not apply (a full observation covariance or a dtype
    other than float64).
    """
    if not system.obs_diag:
        return None
    parts = [y, system.F, system.G, system.W_sqrt, system.obs, system.m0, system.C0_sqrt]
    if any(x.dtype != "float64" for x in parts):
        return None
    tv = system.time_varying
    batch = batch_shape(system, y)
    T, p = _shape(y)[-2:]
    n = system.G.type.shape[-1]
    if system.diffuse is None:
        m0, C0, Q, log_jac = system.m0, system.C0_sqrt, pt.zeros((1, n, 0)), 0.0
    else:
        m0, C0, Q, log_jac = diffuse_start(system, y)

    y_c = pt.broadcast_to(y, (*batch, T, p)).reshape((prod(batch) if batch else 1, T, p))
    canon = [
        y_c,
        canonical_matrix(system.F, 2, batch, "F" in tv),
        canonical_matrix(system.G, 2, batch, "G" in tv),
        canonical_matrix(system.W_sqrt, 2, batch, "W" in tv),
        canonical_matrix(system.obs, 1, batch, "obs" in tv),
        canonical_matrix(pt.expand_dims(m0, -2), 1, batch, True)[:, 0],
        canonical_matrix(pt.expand_dims(C0, -3), 2, batch, True)[:, 0],
        Q
        if system.diffuse is None
        else canonical_matrix(pt.expand_dims(Q, -3), 2, batch, True)[:, 0],
    ]
    return canon, batch, log_jac


def observation_cov(system):
    """The observation covariance V (..., [T,] p, p) of ``system`` (from standard deviations)."""
    if system.obs_diag:
        p = system.F.shape[-2]
        return system.obs[..., :, None] ** 2 * pt.eye(p, dtype=system.obs.dtype)
    return system.obs


def decorrelate(system, y, *, per_step=False):
    r"""The same log-likelihood with unit, uncorrelated observation noise.

    Returns ``(system, y, log_jac)``. For a full observation covariance :math:`V_t`, let
    :math:`L_t L_t^\top` be the Cholesky factorisation of :math:`V_t` restricted to the
    components observed at step t (missing components get unit variance and no correlation, as
    in
    :func:`~pymc_dlm.kalman.prepare.observation_factor`). Then :math:`y'_t = L_t^{-1} y_t` has
    observation matrix :math:`F'_t = L_t^{-1} F_t` and noise covariance :math:`I`, and
    :math:`\log p(y) = \log p(y') - \sum_t \log |L_t|` over the observed components
    (``log_jac``, batch shape). Missing components stay missing (NaN). F' varies over time.
    A covariance that is not positive definite gives a NaN ``log_jac``. With ``per_step``,
    ``log_jac`` keeps its time axis (batch shape, T): each step's term, for per-step
    log-likelihoods.

    Reference: Durbin & Koopman (2012), §6.4.3.
    """
    tv = system.time_varying
    observed = ~pt.isnan(y)
    V = system.obs if "obs" in tv else pt.expand_dims(system.obs, -3)
    L = observation_factor(V, observed, False).mT  # lower, (..., T, p, p)
    y0 = pt.switch(observed, y, 0.0)
    y_new = solve_triangular(L, y0, lower=True, b_ndim=1, check_finite=False)
    y_new = pt.switch(observed, y_new, np.nan)
    F = system.F if "F" in tv else pt.expand_dims(system.F, -3)
    F_new = solve_triangular(L, F, lower=True, b_ndim=2, check_finite=False)
    diag = pt.diagonal(L, axis1=-2, axis2=-1)
    log_jac = -pt.sum(pt.switch(observed, pt.log(diag), 0.0), axis=-1)
    log_jac = log_jac if per_step else pt.sum(log_jac, axis=-1)
    p = y.shape[-1]
    new = system._replace(
        F=F_new,
        obs=pt.ones((p,), dtype=y.dtype),
        time_varying=(tv | {"F"}) - {"obs"},
        obs_diag=True,
    )
    return new, y_new, log_jac
