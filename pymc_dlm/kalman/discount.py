r"""The filter of discounted DLMs, with a known or a learned observation variance.

Timing (R ``dlm``): the carry starts at the prior :math:`(m_0, C_0)` at time 0 and every step
:math:`t = 1..T` predicts, then conditions on :math:`y_t`. Prediction with component
discounting (West & Harrison 1997, §6.3; :mod:`pymc_dlm.model.discount`):

.. math::

    a_t = G_t m_{t-1}, \quad P_t = G_t C_{t-1} G_t^\top, \quad
    R_t = P_t + D_t \circ P_t + L_W L_W^\top,

where :math:`(D_t)_{ij} = 1/\delta_i - 1` when states :math:`i, j` share a discounted block
and 0 otherwise. The update is the univariate filter's
(:func:`pymc_dlm.kalman.univariate.scalar_update`), exact with missing values.

Exact diffuse states: the filter carries the finite part :math:`C_{*}` and a factor
:math:`B` of the diffuse part, starting from :math:`B_0 = A` (the unit columns of the
diffuse states) and :math:`C_{*,0}` = ``C0`` without their rows and columns, and evolves
:math:`B \leftarrow G B` undiscounted; the discount acts on :math:`G C_* G^\top`. These are
the constant and the linear terms in :math:`\kappa` of the proper filter started from
:math:`C_0 = \kappa A A^\top + C_{*,0}`, so the diffuse log-likelihood is the limit of that
filter's log-likelihood plus :math:`\tfrac d2 \log\kappa`, and does not depend on a scale of
the flat prior.

Learned variance (one series; W&H §4.6 and §10.8). The recursion runs at unit scale (every
covariance divided by the observation variance :math:`V`): :math:`C_{0} / S_0`,
:math:`W / S_0` for blocks given by ``sigma``, the observation variance 1, so that
:math:`Q_t = S_{t-1} F_{*,t}` with the unit-scale :math:`F_{*,t}`; with :math:`\nu_t =
\delta_V n_{t-1}`,

.. math::

    \log p(y_t | y_{1:t-1}) = \log t_{\nu_t}(e_t; 0, S_{t-1} F_{*,t}), \quad
    n_t = \nu_t + 1, \quad d_t = \delta_V d_{t-1} + e_t^2 / F_{*,t}, \quad S_t = d_t / n_t.

A missing :math:`y_t` leaves :math:`n_t = \delta_V n_{t-1}`, :math:`d_t = \delta_V d_{t-1}`.
The flat part of a diffuse state is not scaled by :math:`V`: an observation that resolves a
diffuse direction contributes the Gaussian term :math:`-\tfrac12 (\log 2\pi + \log
F_\infty)` and leaves :math:`n, d` unchanged (W&H's reference analysis, §4.10: the degrees of
freedom count the observations beyond those that fix the diffuse states).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6, §4.10, §6.3, §10.8.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§5.2 (exact diffuse filter), §6.4 (univariate treatment).
"""

from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt

from pymc_dlm.kalman.diffuse import DIFFUSE_TOL, diffuse_active, symmetrize
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.prepare import batch_shape, system_inputs, time_last
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.univariate import psd_factor, scalar_update, univariate_filter_step
from pymc_dlm.model.blocks import lead_shape

__all__ = [
    "DiscountFilterResult",
    "LearnedScale",
    "discount_filter_scan",
    "discount_noise",
    "discount_noise_factors",
    "discount_noise_path",
    "discounted_predict",
    "student_t_logpdf",
    "time_slice",
]


class LearnedScale(NamedTuple):
    r"""A learned observation variance, as tensors over batch axes (...,).

    Prior degrees of freedom :math:`n_0`, point estimate :math:`S_0` of the variance and
    variance discount :math:`\delta_V`.
    """

    n0: object
    S0: object
    discount: object


class DiscountFilterResult(NamedTuple):
    r"""Output of :func:`discount_filter_scan`; time on the axis before the core axes.

    ``loglik`` (...,) and its terms ``loglik_t`` (..., T). With ``return_all``: the predicted
    and filtered means and covariances (finite parts; in units of the observation variance
    with a learned variance, multiply by ``scale`` at t - 1 and t), the diffuse factors, and
    with a learned variance the degrees of freedom :math:`n_t` (``dof``) and the point
    estimate :math:`S_t` of :math:`V` (``scale``), (..., T). With ``final``: the carry after
    the last step, ``(m, C, B, n, d)`` (``n``, ``d`` only with a learned variance).
    """

    loglik: object
    loglik_t: object
    predicted_mean: object = None
    predicted_cov: object = None
    filtered_mean: object = None
    filtered_cov: object = None
    filtered_diffuse: object = None
    dof: object = None
    scale: object = None
    final: object = None


def discount_noise(P, discount, blocks):
    r"""The discount's state noise :math:`D \circ P`, :math:`D_{ij} = 1/\delta_i - 1` on blocks.

    ``discount`` (..., n) holds :math:`\delta` per state (equal within a block), ``blocks``
    the (n, n) 0/1 mask of the blocks; states with :math:`\delta = 1` get no noise.
    """
    factor = 1.0 / discount - 1.0
    return P * blocks * factor[..., :, None]


def discounted_predict(m, C, B, G, W_sqrt, discount, blocks):
    r"""One prediction: :math:`a = G m`, :math:`R = P + D \circ P + L_W L_W^\top`, :math:`G B`."""
    P = symmetrize(pt.matmul(pt.matmul(G, C), mT(G)))
    R = symmetrize(P + discount_noise(P, discount, blocks) + pt.matmul(W_sqrt, mT(W_sqrt)))
    return matvec(G, m), R, pt.matmul(G, B)


def student_t_logpdf(e, dof, scale2):
    r"""Log density of Student's t with ``dof`` degrees of freedom and squared scale at ``e``.

    :math:`\log\Gamma(\tfrac{\nu+1}2) - \log\Gamma(\tfrac\nu2) - \tfrac12\log(\nu\pi s^2)
    - \tfrac{\nu+1}2 \log(1 + e^2 / (\nu s^2))`.
    """
    return (
        pt.gammaln(0.5 * (dof + 1.0))
        - pt.gammaln(0.5 * dof)
        - 0.5 * pt.log(dof * np.pi * scale2)
        - 0.5 * (dof + 1.0) * pt.log1p(e * e / (dof * scale2))
    )


def _batch(system, y, learned):
    shapes = [batch_shape(system, y), lead_shape(system.discount, system.discount.ndim - 1)]
    if learned is not None:
        shapes += [lead_shape(x, x.ndim) for x in learned]
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


def _learned_update(a, R, B, y, observed, F, scale, tol):
    """Condition on one scalar at unit scale; the Student-t term and the new (n, d)."""
    n, d, dV = scale
    step = scalar_update(a, R, B, y[..., 0], F[..., 0, :], 1.0, observed[..., 0], tol)
    dof = dV * n
    S_prev = d / n
    t_ll = student_t_logpdf(step.innovation, dof, S_prev * step.variance)
    ll = pt.switch(step.ordinary, t_ll, step.loglik)
    new_n = dof + pt.switch(step.ordinary, 1.0, 0.0)
    new_d = dV * d + pt.switch(step.ordinary, step.innovation**2 / step.variance, 0.0)
    return step, ll, new_n, new_d


def discount_filter_scan(
    system, y, learned=None, *, return_all=False, tol=DIFFUSE_TOL, start=None, final=False
):
    r"""Filter ``y`` (..., T, p) through a discounted DLM (see the module's description).

    ``system.discount`` (..., n) and ``system.blocks`` (n, n) give the discount; ``learned``,
    a :class:`LearnedScale`, replaces the known observation variance (``system.obs`` is then
    unused; ``p`` must be 1). Returns a :class:`DiscountFilterResult`; the log-likelihood is
    ``-inf`` when the data do not identify every diffuse state.

    ``start``: ``(m, C, n, d)``, the filtered mean and covariance at time 0 (a covariance, at
    unit scale with a learned variance) and the learned variance's :math:`(n_0, d_0)`, in
    place of those made from ``system.m0``, ``system.C0_sqrt`` and ``learned`` (whose
    :math:`S_0` then only scales the ``sigma`` blocks' noise). A proper start only.
    """
    tv = system.time_varying
    n = system.G.type.shape[-1]
    p = system.F.type.shape[-2]
    if learned is not None and p != 1:
        raise ValueError(f"a learned observation variance needs one series, got {p}")
    batch = _batch(system, y, learned)
    A = np.zeros((n, 0)) if system.diffuse is None else system.diffuse.data
    d = A.shape[1]
    if start is None:
        m0 = system.m0 - matvec(pt.as_tensor_variable(A @ A.T), system.m0)
        C0 = pt.matmul(system.C0_sqrt, mT(system.C0_sqrt))
        if learned is not None:
            C0 = C0 / learned.S0[..., None, None]
    else:
        m0, C0 = start[0], start[1]
    observed = ~pt.isnan(y)
    seqs = {"y": time_first(pt.switch(observed, y, 0.0), 1), "observed": time_first(observed, 1)}
    fixed = [("discount", system.discount, 1), ("blocks", pt.as_tensor(system.blocks), 2)]
    if learned is not None:
        fixed += [("S0", learned.S0, 0), ("dV", learned.discount, 0)]
    inputs = scan_inputs(seqs, system_inputs(system) + fixed, tv)
    n_carry = 5 if learned is not None else 3

    def step(*args):
        mats, carry = inputs.unpack(args, n_carry)
        m, C, B = carry[:3]
        W = mats["W"]
        if learned is not None:
            W = W / pt.sqrt(mats["S0"])[..., None, None]
        a, R, B_pred = discounted_predict(m, C, B, mats["G"], W, mats["discount"], mats["blocks"])
        F = pt.switch(mats["observed"][..., :, None], mats["F"], 0.0)
        if learned is None:
            _, filt, ll = univariate_filter_step(
                a, R, B_pred, mats["y"], mats["observed"], F, None, None, mats["obs"],
                system.obs_diag, tol, predicted=True,
            )  # fmt: skip
            new = list(filt)
        else:
            scale = (carry[3], carry[4], mats["dV"])
            upd, ll, n_t, d_t = _learned_update(a, R, B_pred, mats["y"], mats["observed"], F,
                                                scale, tol)  # fmt: skip
            new = [upd.mean, upd.cov_factor, upd.diffuse, n_t, d_t]
        new = [pt.specify_shape(x, c.type.shape) for x, c in zip(new, carry)]
        return [*new, ll] + ([a, R] if return_all else [])

    none = (None,) * len(batch)
    init = [
        pt.specify_shape(pt.broadcast_to(m0, (*batch, n)), (*none, n)),
        pt.specify_shape(pt.broadcast_to(C0, (*batch, n, n)), (*none, n, n)),
        pt.specify_shape(pt.broadcast_to(pt.as_tensor(A), (*batch, n, d)), (*none, n, d)),
    ]
    if learned is not None:
        n_0, d_0 = (learned.n0, learned.n0 * learned.S0) if start is None else start[2:]
        init += [
            pt.broadcast_to(n_0, batch).astype("float64"),
            pt.broadcast_to(d_0, batch).astype("float64"),
        ]
    outs = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[*init, None] + ([None, None] if return_all else []),
        non_sequences=inputs.fixed,
        strict=True,
        return_updates=False,
    )
    lls = outs[n_carry]
    loglik_t = pt.moveaxis(lls, 0, -1)
    Bs = outs[2]
    loglik = pt.switch(diffuse_active(Bs[-1]), -np.inf, pt.sum(loglik_t, axis=-1))
    result = DiscountFilterResult(loglik, loglik_t)
    if final:
        result = result._replace(final=tuple(x[-1] for x in outs[:n_carry]))
    if return_all:
        a, R = outs[n_carry + 1 :]
        result = result._replace(
            predicted_mean=time_last(a, 1),
            predicted_cov=time_last(R, 2),
            filtered_mean=time_last(outs[0], 1),
            filtered_cov=time_last(outs[1], 2),
            filtered_diffuse=time_last(Bs, 2),
        )
        if learned is not None:
            ns, ds = outs[3], outs[4]
            result = result._replace(dof=time_last(ns, 0), scale=time_last(ds / ns, 0))
    return result


def time_slice(system, span):
    """``system`` with its time-varying matrices restricted to the steps ``span`` (a slice)."""
    axes = {"F": ("F", -3), "G": ("G", -3), "W_sqrt": ("W", -3), "obs": ("obs", -2)}
    if not system.obs_diag:
        axes["obs"] = ("obs", -3)
    new = {}
    for field, (name, axis) in axes.items():
        x = getattr(system, field)
        if name in system.time_varying:
            index = [slice(None)] * x.ndim
            index[x.ndim + axis] = span
            new[field] = x[tuple(index)]
    return system._replace(**new)


def discount_noise_factors(system, C0, C, learned=None):
    r"""Lower factors (..., T, n, n) of the state noise :math:`W_t`, t = 1..T, of a filter run.

    :math:`W_t = D \circ (G_t C_{t-1} G_t^\top) + L_W L_W^\top` from the prior ``C0`` (finite
    part) and the filtered covariances ``C`` (..., T, n, n) of :func:`discount_filter_scan`
    (finite parts; unit scale with a learned variance, when the ``sigma`` blocks' noise is
    divided by :math:`S_0` too). Given the parameters the model is then a DLM with these
    known, time-varying :math:`W_t` (for the state draws and the smoother). By ``eigh``: no
    derivative is taken of it.
    """
    C_prev = pt.concatenate([pt.broadcast_to(C0[..., None, :, :], C[..., :1, :, :].shape),
                             C[..., :-1, :, :]], axis=-3)  # fmt: skip
    tv = system.time_varying
    G = system.G if "G" in tv else system.G[..., None, :, :]
    L = system.W_sqrt if "W" in tv else system.W_sqrt[..., None, :, :]
    if learned is not None:
        L = L / pt.sqrt(learned.S0)[..., None, None, None]
    P = pt.matmul(pt.matmul(G, C_prev), mT(G))
    W = discount_noise(P, system.discount[..., None, :], system.blocks) + pt.matmul(L, mT(L))
    return mT(psd_factor(0.5 * (W + mT(W))))


def discount_noise_path(system, steps, batch, obs_var=None):
    r"""Factors :math:`L_t` (..., T, n, n) of the state noise of a fully observed series.

    :math:`W_t = L_t L_t^\top` of a discounted DLM observed at every step (by ``eigh``: for
    simulation, not for derivatives).

    Given the parameters, the covariances :math:`C_t` do not depend on the values of the
    data, only on which are observed; this recursion assumes all are, as a simulation does:
    :math:`R_t` as in :func:`discounted_predict`, :math:`Q_t = F_t R_t F_t^\top + V_t`,
    :math:`C_t = R_t - R_t F_t^\top Q_t^{-1} F_t R_t` (a Cholesky solve). ``obs_var`` (...,)
    replaces ``system.obs`` by a scalar variance. A proper prior only.
    """
    tv = system.time_varying
    n = system.G.type.shape[-1]
    C0 = pt.matmul(system.C0_sqrt, mT(system.C0_sqrt))
    fixed = [("discount", system.discount, 1), ("blocks", pt.as_tensor(system.blocks), 2)]
    if obs_var is not None:
        fixed.append(("V", obs_var, 0))
    inputs = scan_inputs({}, system_inputs(system) + fixed, tv)

    def step(*args):
        mats, (C,) = inputs.unpack(args, 1)
        G, F = mats["G"], mats["F"]
        P = symmetrize(pt.matmul(pt.matmul(G, C), mT(G)))
        W = discount_noise(P, mats["discount"], mats["blocks"]) + pt.matmul(
            mats["W"], mT(mats["W"])
        )
        R = symmetrize(P + W)
        if obs_var is not None:
            V = mats["V"][..., None, None] * pt.eye(F.shape[-2])
        elif system.obs_diag:
            V = mats["obs"][..., :, None] ** 2 * pt.eye(F.shape[-2])
        else:
            V = mats["obs"]
        Q = symmetrize(pt.matmul(pt.matmul(F, R), mT(F)) + V)
        L = pt.linalg.cholesky(Q, lower=True)
        K = pt.linalg.solve_triangular(L, pt.matmul(F, R), lower=True, b_ndim=2)
        new_C = symmetrize(R - pt.matmul(mT(K), K))
        return pt.specify_shape(new_C, C.type.shape), mT(psd_factor(W))

    none = (None,) * len(batch)
    init = pt.specify_shape(pt.broadcast_to(C0, (*batch, n, n)), (*none, n, n))
    _, W = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[init, None],
        non_sequences=inputs.fixed,
        n_steps=steps,
        strict=True,
        return_updates=False,
    )
    return time_last(W, 2)
