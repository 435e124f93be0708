r"""The univariate Kalman filter, with any number of exact diffuse states (zero included).

The one filter scan in covariance form. Observations are processed one scalar at a time
(Durbin & Koopman 2012, §6.4); a full observation covariance :math:`V_t = U_V^\top U_V` is
first whitened (:math:`U_V^{-\top} y_t`, :math:`U_V^{-\top} F_t`, which adds
:math:`-\log|U_V|` to the log-likelihood). With the R ``dlm`` timing, step 1 starts from the
prediction :math:`a_1, P_{*,1}` and the factor :math:`B_1` of :math:`P_{\infty,1} = B_1
B_1^\top`: :func:`~pymc_dlm.kalman.diffuse.diffuse_start` for a model with diffuse states,
:func:`proper_start` (:math:`B_1` with no column) otherwise. Each later step predicts
:math:`a = G m`, :math:`P_* = G C G^\top + L_W L_W^\top`, :math:`B \leftarrow G B`, then
conditions on every observed scalar :math:`y = z^\top\theta + \sigma\varepsilon`
(:func:`scalar_update`), with :math:`M = P_* z`, :math:`F_* = z^\top M + \sigma^2`,
:math:`v = y - z^\top a` and, while diffuse, :math:`u = B^\top z`, :math:`F_\infty = u^\top u`:

* informative (:math:`F_\infty > 0`, the rank test of :mod:`pymc_dlm.kalman.diffuse`):
  :math:`K = B u / F_\infty`, :math:`a \mathrel{+}= K v`, :math:`P_* \leftarrow P_* - K M^\top
  - M K^\top + F_* K K^\top` (the Joseph form of D&K's eq. 5.14, expanded), :math:`B`
  loses the direction :math:`u` exactly, and the log-likelihood gains
  :math:`-\tfrac12(\log 2\pi + \log F_\infty)`;
* ordinary: :math:`a \mathrel{+}= M v / F_*`, :math:`P_* \mathrel{-}= M M^\top / F_*`,
  gaining :math:`-\tfrac12(\log 2\pi + \log F_* + v^2/F_*)`; :math:`-\infty` where
  :math:`F_*` is not positive.

These are the numba kernels' recursions (:mod:`pymc_dlm.kalman.fused.kernels`), in the same
arithmetic. A missing scalar contributes exactly 0 and changes nothing.

Role. This scan is the definition of the log-likelihood's *gradient* on every backend that
runs graphs rather than the numba kernels (C, JAX, PyTorch, MLX, the Python linker; see
:mod:`pymc_dlm.kalman.fused.definition`), and of the value of a model with diffuse states.
Its derivative is finite wherever :math:`F_* > 0`, also when the predicted covariance is
singular (a zero W block, every state diffuse at the start): the derivative of a QR of a
rank-deficient square-root pre-array, which the square-root filter
(:mod:`pymc_dlm.kalman.filter`) needs, is NaN there. The value of a model with a proper
prior comes from the square-root filter, which keeps its digits with vague priors.

References
----------
Koopman, S. J. and Durbin, J. (2000). Fast filtering and smoothing for multivariate state
space models. *J. Time Series Analysis* 21, 281–296.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §5.2 (exact diffuse filter), §6.4 (univariate treatment), §7.2.2 (diffuse
log-likelihood).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.diffuse import (
    DIFFUSE_TOL,
    ScalarStep,
    diffuse_active,
    diffuse_start,
    eliminate,
    first_step,
    symmetrize,
)
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.prepare import (
    FilterResult,
    observation_factor,
    prepare,
    system_inputs,
    time_last,
)
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.steps import log_density

__all__ = [
    "proper_start",
    "psd_factor",
    "scalar_update",
    "univariate_filter_step",
    "univariate_filter_scan",
]


def scalar_update(a, P, B, y, z, sd, observed, tol=DIFFUSE_TOL):
    r"""Condition :math:`N(a, P_*)` (and the diffuse factor ``B``) on one scalar.

    The two branches of the module's description; ``B`` may have no column (no diffuse
    state), which the graph knows statically. Unused branches are guarded so that they stay
    finite, also in gradients. Returns a :class:`~pymc_dlm.kalman.diffuse.ScalarStep`.
    """
    d = B.type.shape[-1]
    M = matvec(P, z)
    F_star = pt.sum(z * M, axis=-1) + sd**2
    v = y - pt.sum(z * a, axis=-1)
    if d:
        u = matvec(mT(B), z)
        F_inf = pt.sum(u**2, axis=-1)
        z2 = pt.sum(z**2, axis=-1)
        informative = observed & (F_inf > tol**2 * z2 * pt.sum(B**2, axis=(-2, -1)))
    else:
        informative = pt.zeros_like(observed)
    ordinary = observed & ~informative
    ok = ordinary & (F_star > 0.0)
    F_star_s = pt.switch(ok, F_star, 1.0)
    v_ord = pt.switch(ok, v, 0.0)
    gain = pt.switch(ok, 1.0 / F_star_s, 0.0)
    new_a = a + M * (v_ord * gain)[..., None]
    new_P = P - M[..., :, None] * M[..., None, :] * gain[..., None, None]
    ll_ord = log_density(1.0, pt.log(F_star_s), v_ord * v_ord / F_star_s)
    ll = pt.switch(ok, ll_ord, pt.switch(ordinary, -np.inf, 0.0))
    new_B = B
    if d:
        first = pt.switch(pt.eq(pt.arange(d), 0), 1.0, 0.0)
        u_s = pt.switch(informative[..., None], u, first)
        F_inf_s = pt.switch(informative, F_inf, 1.0)
        K = matvec(B, u_s) / F_inf_s[..., None]
        KM = K[..., :, None] * M[..., None, :]
        P_inf = symmetrize(
            P - KM - mT(KM) + F_star[..., None, None] * K[..., :, None] * K[..., None, :]
        )
        inf_col, inf_mat = informative[..., None], informative[..., None, None]
        new_a = pt.switch(inf_col, a + K * pt.switch(informative, v, 0.0)[..., None], new_a)
        new_P = pt.switch(inf_mat, P_inf, new_P)
        new_B = pt.switch(inf_mat, eliminate(B, u_s), B)
        ll = pt.switch(informative, log_density(1.0, pt.log(F_inf_s), 0.0), ll)
    return ScalarStep(new_a, new_P, new_B, ll, None, v_ord, F_star_s, ok)


def psd_factor(P):
    r"""A square factor :math:`U` with :math:`U^\top U = P` of a PSD matrix (by ``eigh``).

    Not triangular; for the outputs of the diffuse filter (no derivative is taken of it).
    """
    w, V = pt.linalg.eigh(symmetrize(P))
    return mT(V * pt.sqrt(pt.maximum(w, 0.0))[..., None, :])


def _whiten(y, F, obs, observed, obs_diag):
    """Scalar observations with independent noise: (y, F, sd, log-Jacobian) of one time step."""
    F = pt.switch(observed[..., :, None], F, 0.0)
    y = pt.switch(observed, y, 0.0)
    if obs_diag:
        return y, F, pt.switch(observed, obs, 1.0), 0.0
    U_V = observation_factor(obs, observed, False)
    L = mT(U_V)
    y_w = solve_triangular(L, y[..., None], lower=True, b_ndim=2)[..., 0]
    F_w = solve_triangular(L, F, lower=True, b_ndim=2)
    logdet = pt.sum(pt.log(pt.abs(pt.diagonal(U_V, axis1=-2, axis2=-1))), axis=-1)
    return y_w, F_w, pt.ones_like(y_w), logdet


def univariate_filter_step(
    a, P, B, y, observed, F, G, W_sqrt, obs, obs_diag, tol=DIFFUSE_TOL, predicted=False
):
    r"""One time step of the univariate filter (exact diffuse while :math:`B \ne 0`).

    Predict (:math:`B \leftarrow G B` besides the ordinary prediction), then condition on the
    observed scalars of :math:`y_t` one by one. ``predicted`` says that ``(a, P, B)`` already
    are this step's prediction (step 1, started by :func:`diffuse_start`).

    ``P`` is the covariance of the finite part (:func:`scalar_update`). Returns
    ``(predicted, (a, P, B) filtered, loglik)``; ``predicted`` is ``(a_t, P_{*,t}, B_t)``.
    """
    if predicted:
        a_pred, P_pred, B_pred = a, P, B
    else:
        a_pred = matvec(G, a)
        P_pred = symmetrize(pt.matmul(pt.matmul(G, P), mT(G)) + pt.matmul(W_sqrt, mT(W_sqrt)))
        B_pred = pt.matmul(G, B)
    y_w, F_w, sd, logdet = _whiten(y, F, obs, observed, obs_diag)
    p = F.type.shape[-2]
    cur = ScalarStep(a_pred, P_pred, B_pred, -logdet)
    ll = cur.loglik
    for i in range(p):
        cur = scalar_update(
            cur.mean,
            cur.cov_factor,
            cur.diffuse,
            y_w[..., i],
            F_w[..., i, :],
            sd[..., i],
            observed[..., i],
            tol,
        )
        ll = ll + cur.loglik
    return (a_pred, P_pred, B_pred), (cur.mean, cur.cov_factor, cur.diffuse), ll


def proper_start(system, y):
    r"""The prediction of step 1 under a proper prior, in the form of a diffuse start.

    :math:`a_1 = G_1 m_0`, :math:`P_{*,1} = G_1 C_0 G_1^\top + W_1`, a diffuse factor with no
    column and a log-Jacobian of 0: ``(a_1, P_1, Q, log_jacobian)`` as
    :func:`~pymc_dlm.kalman.diffuse.diffuse_start` returns them, batch axes in front.
    """
    tv = system.time_varying
    batch, m0, C0_factor = prepare(system, y)
    n = system.G.type.shape[-1]
    G1 = first_step(system.G, "G" in tv)
    W1 = first_step(system.W_sqrt, "W" in tv)
    C0 = pt.matmul(mT(C0_factor), C0_factor)
    a = matvec(G1, m0)
    P = symmetrize(pt.matmul(pt.matmul(G1, C0), mT(G1)) + pt.matmul(W1, mT(W1)))
    return (
        pt.broadcast_to(a, (*batch, n)),
        pt.broadcast_to(P, (*batch, n, n)),
        pt.zeros((*batch, n, 0), dtype=P.dtype),
        pt.zeros(batch, dtype=P.dtype),
    )


def univariate_filter_scan(system, y, *, return_all=False, tol=DIFFUSE_TOL, start=None):
    """The univariate filter over ``y`` (see :func:`pymc_dlm.kalman.filter.filter_scan`).

    ``start``: ``(a_1, P_{*,1}, Q, log_jacobian)``, the prediction of step 1 with its diffuse
    factor (``Q`` with d >= 0 columns); computed here when not given, by
    :func:`~pymc_dlm.kalman.diffuse.diffuse_start` for a model with diffuse states and by
    :func:`proper_start` otherwise. When given, ``system.m0``, ``system.C0_sqrt`` and the
    diffuse mask are unused. The number of series must be known statically.
    """
    tv = system.time_varying
    batch, _, _ = prepare(system, y)
    n = system.G.type.shape[-1]
    if start is None:
        start = proper_start(system, y) if system.diffuse is None else diffuse_start(system, y)
    a1, P1, Q1, log_jac = start
    d = Q1.type.shape[-1]
    observed = ~pt.isnan(y)
    y0 = pt.switch(observed, y, 0.0)
    seqs = {"y": time_first(y0, 1), "observed": time_first(observed, 1)}
    mats = system_inputs(system)

    def run(mats, a, U, B, predicted=False):
        return univariate_filter_step(
            a,
            U,
            B,
            mats["y"],
            mats["observed"],
            mats["F"],
            mats["G"],
            mats["W"],
            mats["obs"],
            system.obs_diag,
            tol,
            predicted=predicted,
        )

    # t = 1 outside the scan: it starts from the prediction of step 1.
    at0 = {k: v[0] for k, v in seqs.items()}
    at0.update({k: time_first(v, c)[0] if k in tv else v for k, v, c in mats})
    pred1, filt1, ll1 = run(at0, a1, P1, Q1, predicted=True)
    ll1 = ll1 + log_jac
    inputs = scan_inputs({k: v[1:] for k, v in seqs.items()}, mats, tv, offset=1)

    def step(*args):
        mats, (a, U, B) = inputs.unpack(args, 3)
        pred, filt, ll = run(mats, a, U, B)
        out = [
            pt.specify_shape(filt[0], a.type.shape),
            pt.specify_shape(filt[1], U.type.shape),
            pt.specify_shape(filt[2], B.type.shape),
            ll,
        ]
        if return_all:
            out += list(pred)
        return out

    batch_none = (None,) * len(batch)
    init = [
        pt.specify_shape(pt.broadcast_to(filt1[0], (*batch, n)), (*batch_none, n)),
        pt.specify_shape(pt.broadcast_to(filt1[1], (*batch, n, n)), (*batch_none, n, n)),
        pt.specify_shape(pt.broadcast_to(filt1[2], (*batch, n, d)), (*batch_none, n, d)),
    ]
    outs = pytensor.scan(
        step,
        sequences=inputs.sequences,
        outputs_info=[*init, None] + ([None] * 3 if return_all else []),
        non_sequences=inputs.fixed,
        strict=True,
        return_updates=False,
    )
    firsts = [*init, pt.broadcast_to(ll1, batch)]
    if return_all:
        firsts += [
            pt.broadcast_to(pred1[0], (*batch, n)),
            pt.broadcast_to(pred1[1], (*batch, n, n)),
            pt.broadcast_to(pred1[2], (*batch, n, d)),
        ]
    outs = [pt.concatenate([f[None], o], axis=0) for f, o in zip(firsts, outs)]
    ms, Us, Bs, lls = outs[:4]
    loglik_t = pt.moveaxis(lls, 0, -1)
    # Fewer informative observations than diffuse states: the likelihood is improper.
    loglik = pt.switch(diffuse_active(Bs[-1]), -np.inf, pt.sum(loglik_t, axis=-1))
    result = FilterResult(loglik, loglik_t)
    if return_all:
        a, R, Bp = outs[4:]
        result = result._replace(
            predicted_mean=time_last(a, 1),
            predicted_factor=time_last(psd_factor(R), 2),
            filtered_mean=time_last(ms, 1),
            filtered_factor=time_last(psd_factor(Us), 2),
            filtered_cov=time_last(Us, 2),
            predicted_diffuse=time_last(Bp, 2),
            filtered_diffuse=time_last(Bs, 2),
        )
    return result
