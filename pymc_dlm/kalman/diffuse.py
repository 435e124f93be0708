r"""Exact diffuse initialisation: the univariate exact diffuse Kalman filter and its inverse.

Some states have an improper flat prior, :math:`\theta_0 = m_0 + A\delta + L_0\eta` with
:math:`\delta` flat and :math:`A` the unit columns of the diffuse states. The predicted state
covariance is then :math:`P_t = \kappa P_{\infty,t} + P_{*,t}` with :math:`\kappa \to \infty`
(Durbin & Koopman 2012, ch. 5). Here :math:`P_{\infty,t} = B_t B_t^\top` travels as a factor
:math:`B_t` (n, d). The filter carries :math:`P_{*,t}` as a covariance matrix updated in Joseph
form (:func:`scalar_step_cov`): :math:`P_*` is singular early on (zero when every state is
diffuse) and the QR of a rank-deficient square-root pre-array has no derivative, so the
square-root form would give NaN gradients. The backward pass, which is not differentiated,
uses square-root factors (:func:`scalar_step`).

Observations are processed one scalar at a time (Koopman & Durbin 2000); a full observation
covariance :math:`V_t = U_V^\top U_V` is first whitened (:math:`U_V^{-\top} y_t`,
:math:`U_V^{-\top} F_t`, which adds :math:`-\log|U_V|` to the log-likelihood). For a scalar
:math:`y = z^\top\theta + \varepsilon`, :math:`\varepsilon \sim N(0, \sigma^2)`, with
:math:`u = B^\top z`, :math:`F_\infty = u^\top u`, :math:`g = U z`,
:math:`F_* = g^\top g + \sigma^2` and :math:`v = y - z^\top a`:

* :math:`F_\infty > 0` (informative about the diffuse part):
  :math:`K_\infty = B u / F_\infty`, :math:`a \leftarrow a + K_\infty v`,
  :math:`P_* \leftarrow (I - K_\infty z^\top) P_* (I - K_\infty z^\top)^\top +
  \sigma^2 K_\infty K_\infty^\top` (the Joseph form of D&K's eq. 5.14),
  :math:`P_\infty \leftarrow P_\infty - P_\infty z z^\top P_\infty / F_\infty`, and the
  log-likelihood gains :math:`-\tfrac12(\log 2\pi + \log F_\infty)`;
* :math:`F_\infty = 0`: the ordinary scalar update with :math:`P_*`, gaining
  :math:`-\tfrac12(\log 2\pi + \log F_* + v^2/F_*)`.

The :math:`P_\infty` update is done exactly in factor form: a Householder reflection maps
:math:`u` onto the axis of its largest entry, and that column of :math:`B H` (which is
:math:`P_\infty z / \sqrt{F_\infty}`) is set to zero. Each informative observation zeroes one
column, so :math:`P_\infty` becomes *exactly* zero after :math:`d` of them, the end of the
diffuse period; afterwards every step is the ordinary one.

Rank test. :math:`F_\infty > 0` is decided as :math:`\|u\| > \tau \|z\| \|B\|_F` with
:math:`\tau` = :data:`DIFFUSE_TOL` = 1e-10. A direction already eliminated leaves round-off in
:math:`u` of order :math:`n\epsilon \|z\|\|B\| \approx 10^{-14}` relative, four orders below
:math:`\tau`; a genuinely informative observation smaller than :math:`10^{-10}` relative is
treated as uninformative (statsmodels compares :math:`F_\infty` with a fixed absolute
tolerance instead, which is not scale invariant). The same relative test with :math:`F_*`
decides whether a noiseless constraint in the backward pass carries information.

The log-likelihood is the diffuse log-likelihood of Durbin & Koopman (2012, §7.2.2),
statsmodels' value with exact diffuse initialisation: every observed scalar counts its
:math:`\tfrac12\log 2\pi`. KFAS's ``logLik`` omits that term for the :math:`d` informative
diffuse observations, so ``KFAS = ours + d/2·log(2π)``. With a proper prior
:math:`C_0 = \kappa I` on the same states instead,
:math:`\ell_{proper}(\kappa) + \tfrac d2 \log\kappa \to \ell_{diffuse}` as :math:`\kappa\to\infty`
(error :math:`O(1/\kappa)`).

References
----------
Koopman, S. J. (1997). Exact initial Kalman filtering and smoothing for nonstationary time
series models. *JASA* 92, 1630–1638.
Koopman, S. J. and Durbin, J. (2000). Fast filtering and smoothing for multivariate state
space models. *J. Time Series Analysis* 21, 281–296.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§5.2 (filter), §6.4 (univariate treatment), §7.2.2 (diffuse log-likelihood).
"""

from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.linalg import matvec, mT, triangularize
from pymc_dlm.kalman.prepare import (
    FilterResult,
    observation_factor,
    prepare,
    system_inputs,
    time_last,
)
from pymc_dlm.kalman.scanargs import scan_inputs, time_first
from pymc_dlm.kalman.steps import LOG_2PI, update
from pymc_dlm.model.blocks import broadcast_leading

__all__ = [
    "DIFFUSE_TOL",
    "ScalarStep",
    "diffuse_filter_step",
    "diffuse_active",
    "scalar_step",
    "scalar_step_cov",
]

#: Relative tolerance of the rank tests (see the module docstring).
DIFFUSE_TOL = 1e-10


class ScalarStep(NamedTuple):
    r"""State after conditioning on one scalar.

    Mean, upper factor of :math:`P_*`, factor :math:`B` of :math:`P_\infty`, log-likelihood
    term and the gain-tracking matrix.
    """

    mean: object
    cov_factor: object
    diffuse: object
    loglik: object
    tracked: object = None


def _rows(blocks):
    return pt.concatenate(broadcast_leading(blocks, 2), axis=-2)


def _eliminate(B, u):
    r"""Exact rank-one removal :math:`B \to B (I - u u^\top / u^\top u)` in factor form.

    A Householder reflection :math:`H` with :math:`H u = \pm\|u\| e_k`, :math:`k` the largest
    entry of :math:`u`, makes :math:`z^\top B H` vanish except in column :math:`k`, which is
    then set to exactly zero. Columns that are already zero stay zero. ``u`` must be nonzero.
    """
    d = B.type.shape[-1]
    k = pt.argmax(pt.abs(u), axis=-1)
    e = pt.eq(pt.arange(d), k[..., None])
    uk = pt.sum(pt.switch(e, u, 0.0), axis=-1)
    norm = pt.sqrt(pt.sum(u**2, axis=-1))
    sign = pt.switch(uk >= 0, 1.0, -1.0)
    v = u + (sign * norm)[..., None] * pt.switch(e, 1.0, 0.0)
    vtv = pt.sum(v**2, axis=-1)
    BH = B - (2.0 / vtv)[..., None, None] * matvec(B, v)[..., :, None] * v[..., None, :]
    return pt.switch(e[..., None, :], 0.0, BH)


def scalar_step(a, U, B, y, z, sd, observed, tol=DIFFUSE_TOL, tracked=None, index=None):
    r"""Condition on one scalar :math:`y = z^\top\theta + \sigma\varepsilon` (exact diffuse).

    Parameters
    ----------
    a : (..., N)
        Mean (the finite part's).
    U : (..., N, N)
        Upper factor of :math:`P_*`.
    B : (..., N, d)
        Factor of :math:`P_\infty` (zero columns once eliminated).
    y, sd : (...)
        The observation and its noise standard deviation (0 allowed: a noiseless constraint).
    z : (..., N)
        Observation row.
    observed : (...) bool
        False skips the observation (missing value).
    tol : float
        Relative tolerance of the rank tests.
    tracked : (..., N, q), optional
        Derivative of ``a`` with respect to a vector ``x`` whose entry ``index`` is ``y``;
        updated alongside (the backward pass uses it for the smoother's gain).
    index : int, optional
        Which entry of ``x`` this observation is.
    """
    d = B.type.shape[-1]
    u = matvec(mT(B), z)
    F_inf = pt.sum(u**2, axis=-1)
    z2 = pt.sum(z**2, axis=-1)
    scale_inf = z2 * pt.sum(B**2, axis=(-2, -1))
    informative = observed & (F_inf > tol**2 * scale_inf)
    g = matvec(U, z)
    F_star = pt.sum(g**2, axis=-1) + sd**2
    scale_star = z2 * pt.sum(U**2, axis=(-2, -1))
    ordinary = observed & ~informative & ((sd > 0) | (F_star > tol**2 * scale_star))
    v = y - pt.sum(z * a, axis=-1)

    # Informative branch (guarded so that the unused branch stays finite, also in gradients).
    first = pt.switch(pt.eq(pt.arange(d), 0), 1.0, 0.0)
    u_s = pt.switch(informative[..., None], u, first)
    F_inf_s = pt.switch(informative, F_inf, 1.0)
    K_inf = matvec(B, u_s) / F_inf_s[..., None]
    a_inf = a + K_inf * v[..., None]
    joseph = _rows(
        [U - g[..., :, None] * K_inf[..., None, :], (sd[..., None] * K_inf)[..., None, :]]
    )
    U_inf = triangularize(joseph)
    B_inf = _eliminate(B, u_s)
    ll_inf = -0.5 * (LOG_2PI + pt.log(F_inf_s))

    # Ordinary branch: one QR of the (N + 1)-square pre-array.
    sd_s = pt.switch(ordinary & (sd <= 0), 0.0, sd)
    y_s = pt.switch(ordinary, y, pt.sum(z * a, axis=-1))
    upd = update(a, U, y_s[..., None], z[..., None, :], sd_s[..., None, None])
    uq = upd.forecast_factor[..., 0, 0]
    uq_s = pt.switch(ordinary, uq, 1.0)
    white = pt.switch(ordinary, upd.white[..., 0], 0.0)
    ll_ord = -0.5 * (LOG_2PI + 2.0 * pt.log(pt.abs(uq_s)) + white**2)

    inf_col = informative[..., None]
    ord_col = ordinary[..., None]
    new_a = pt.switch(inf_col, a_inf, pt.switch(ord_col, upd.mean, a))
    inf_mat = informative[..., None, None]
    ord_mat = ordinary[..., None, None]
    new_U = pt.switch(inf_mat, U_inf, pt.switch(ord_mat, upd.cov_factor, U))
    new_B = pt.switch(inf_mat, B_inf, B)
    ll = pt.switch(informative, ll_inf, pt.switch(ordinary, ll_ord, 0.0))
    new_tracked = None
    if tracked is not None:
        K_ord = upd.gain_factor[..., 0, :] / uq_s[..., None]
        K = pt.switch(inf_col, K_inf, pt.switch(ord_col, K_ord, 0.0))
        unit = np.zeros(tracked.type.shape[-1])
        unit[index] = 1.0
        resid = unit - matvec(mT(tracked), z)  # d v / d x
        new_tracked = tracked + K[..., :, None] * resid[..., None, :]
    return ScalarStep(new_a, new_U, new_B, ll, new_tracked)


def _sym(P):
    return 0.5 * (P + mT(P))


def scalar_step_cov(a, P, B, y, z, sd, observed, tol=DIFFUSE_TOL):
    r"""The filter's form of :func:`scalar_step`: :math:`P_*` as a covariance matrix.

    Same branches and log-likelihood terms; both covariance updates are in Joseph form,
    :math:`P_* \leftarrow (I - K z^\top) P_* (I - K z^\top)^\top + \sigma^2 K K^\top`, with
    :math:`K = K_\infty` or :math:`P_* z / F_*`. The covariance form keeps the gradient finite
    while :math:`P_*` is singular (it starts at zero when every state is diffuse), where the
    QR of a rank-deficient pre-array has no derivative.
    """
    d = B.type.shape[-1]
    n = P.type.shape[-1]
    u = matvec(mT(B), z)
    F_inf = pt.sum(u**2, axis=-1)
    z2 = pt.sum(z**2, axis=-1)
    informative = observed & (F_inf > tol**2 * z2 * pt.sum(B**2, axis=(-2, -1)))
    M = matvec(P, z)
    F_star = pt.sum(z * M, axis=-1) + sd**2
    trace = pt.sum(pt.diagonal(P, axis1=-2, axis2=-1), axis=-1)
    ordinary = observed & ~informative & ((sd > 0) | (F_star > tol**2 * z2 * trace))
    v = y - pt.sum(z * a, axis=-1)

    first = pt.switch(pt.eq(pt.arange(d), 0), 1.0, 0.0)
    u_s = pt.switch(informative[..., None], u, first)
    F_inf_s = pt.switch(informative, F_inf, 1.0)
    F_star_s = pt.switch(ordinary, F_star, 1.0)
    v_s = pt.switch(informative | ordinary, v, 0.0)
    K = pt.switch(
        informative[..., None],
        matvec(B, u_s) / F_inf_s[..., None],
        pt.switch(ordinary[..., None], M / F_star_s[..., None], 0.0),
    )
    A = pt.eye(n) - K[..., :, None] * z[..., None, :]
    new_P = _sym(
        pt.matmul(pt.matmul(A, P), mT(A))
        + (sd**2)[..., None, None] * K[..., :, None] * K[..., None, :]
    )
    new_P = pt.switch((informative | ordinary)[..., None, None], new_P, P)
    new_a = a + K * v_s[..., None]
    new_B = pt.switch(informative[..., None, None], _eliminate(B, u_s), B)
    ll_inf = -0.5 * (LOG_2PI + pt.log(F_inf_s))
    ll_ord = -0.5 * (LOG_2PI + pt.log(F_star_s) + v_s**2 / F_star_s)
    ll = pt.switch(informative, ll_inf, pt.switch(ordinary, ll_ord, 0.0))
    return ScalarStep(new_a, new_P, new_B, ll)


def psd_factor(P):
    r"""A square factor :math:`U` with :math:`U^\top U = P` of a PSD matrix (by ``eigh``).

    Not triangular; for the outputs of the diffuse filter (no derivative is taken of it).
    """
    w, V = pt.linalg.eigh(_sym(P))
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


def orthonormalize(a, P, B):
    r"""Re-express a partly diffuse distribution with an orthonormal diffuse factor.

    The distribution is :math:`N(a, U^\top U)` plus a flat part over :math:`\{B\delta\}`; the
    new finite part is orthogonal to the diffuse directions.

    With :math:`B^\top B = L L^\top` (Cholesky), :math:`Q = B L^{-\top}` is an orthonormal basis
    of :math:`\mathrm{range}\,B` and :math:`\Pi = I - Q Q^\top`. The flat part absorbs any
    component of the finite part along :math:`\mathrm{range}\,B`, so :math:`(\Pi a,
    \Pi P_* \Pi, Q Q^\top)` is the same improper distribution; only the reference measure of
    :math:`\delta` changes, by the Jacobian :math:`|\det L|`, returned as ``log_jacobian``
    (to be added to the log-likelihood so that it stays that of the flat prior on
    :math:`\delta`). ``B`` must have full column rank.

    ``P`` is the finite part's covariance. Returns ``(a, P, Q, log_jacobian)``.
    """
    L = pt.linalg.cholesky(pt.matmul(mT(B), B), lower=True)
    Qt = solve_triangular(L, mT(B), lower=True, b_ndim=2)  # (d, n)
    n = B.type.shape[-2]
    proj = pt.eye(n) - pt.matmul(mT(Qt), Qt)
    log_jac = -pt.sum(pt.log(pt.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
    return matvec(proj, a), _sym(pt.matmul(pt.matmul(proj, P), proj)), mT(Qt), log_jac


def diffuse_filter_step(
    a, P, B, y, observed, F, G, W_sqrt, obs, obs_diag, tol=DIFFUSE_TOL, predicted=False
):
    r"""One time step of the exact diffuse filter.

    Predict (:math:`B \leftarrow G B` besides the ordinary prediction), then condition on the
    observed scalars of :math:`y_t` one by one. ``predicted`` says that ``(a, P, B)`` already
    are this step's prediction (step 1, started by :func:`diffuse_start`).

    ``P`` is the covariance of the finite part (:func:`scalar_step_cov`). Returns
    ``(predicted, (a, P, B) filtered, loglik)``; ``predicted`` is ``(a_t, P_{*,t}, B_t)``.
    """
    if predicted:
        a_pred, P_pred, B_pred = a, P, B
    else:
        a_pred = matvec(G, a)
        P_pred = _sym(pt.matmul(pt.matmul(G, P), mT(G)) + pt.matmul(W_sqrt, mT(W_sqrt)))
        B_pred = pt.matmul(G, B)
    y_w, F_w, sd, logdet = _whiten(y, F, obs, observed, obs_diag)
    p = F.type.shape[-2]
    cur = ScalarStep(a_pred, P_pred, B_pred, -logdet)
    ll = cur.loglik
    for i in range(p):
        cur = scalar_step_cov(
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


def diffuse_active(B):
    r"""Whether a factor (..., n, d) of :math:`P_\infty` is still nonzero (...)."""
    return pt.any(pt.neq(B, 0.0), axis=(-2, -1))


def _first(x, time_varying):
    """The matrix of time step 1 of a possibly time-varying system matrix."""
    return time_first(x, 2)[0] if time_varying else x


def diffuse_start(system, y):
    r"""The prediction of step 1 with an orthonormal diffuse factor (:func:`orthonormalize`).

    :math:`a_1 = G_1 m_{0*}`, :math:`P_{*,1} = G_1 C_{0*} G_1^\top + W_1`, :math:`B_1 = G_1 A`,
    re-expressed as ``(a_1, P_1, Q, log_jacobian)`` with :math:`Q^\top Q = I_d`; batch axes
    in front. For diffuse blocks (``G`` block diagonal) this gives :math:`P_{\infty,1}` = the
    identity on the diffuse blocks, :math:`P_{*,1}` and :math:`a_1` zero on them:
    statsmodels' and KFAS's diffuse initialisation, so that the moments of the diffuse period
    are theirs. The exact diffuse log-likelihood is ``log_jacobian`` plus that of the filter
    started there (:func:`diffuse_filter_scan` with ``start``).
    """
    tv = system.time_varying
    batch, m0, C0_factor = prepare(system, y)
    n = system.G.type.shape[-1]
    A = pt.as_tensor_variable(system.diffuse)
    d = A.type.shape[-1]
    m0 = m0 - matvec(pt.matmul(A, mT(A)), m0)
    B0 = pt.broadcast_to(A, (*batch, n, d))
    G1 = _first(system.G, "G" in tv)
    W1 = _first(system.W_sqrt, "W" in tv)
    C0 = pt.matmul(mT(C0_factor), C0_factor)
    a = matvec(G1, m0)
    P = _sym(pt.matmul(pt.matmul(G1, C0), mT(G1)) + pt.matmul(W1, mT(W1)))
    a, P, Q, log_jac = orthonormalize(a, P, pt.matmul(G1, B0))
    return (
        pt.broadcast_to(a, (*batch, n)),
        pt.broadcast_to(P, (*batch, n, n)),
        pt.broadcast_to(Q, (*batch, n, d)),
        pt.broadcast_to(log_jac, batch),
    )


def diffuse_filter_scan(system, y, *, return_all=False, tol=DIFFUSE_TOL, start=None):
    """The exact diffuse filter over ``y`` (see :func:`pymc_dlm.kalman.filter.filter_scan`).

    ``start``: ``(a_1, P_{*,1}, Q, log_jacobian)`` of :func:`diffuse_start` (computed here
    when not given); ``system.m0``, ``system.C0_sqrt`` and the diffuse mask are then unused.
    """
    tv = system.time_varying
    batch, _, _ = prepare(system, y)
    n = system.G.type.shape[-1]
    a1, P1, Q1, log_jac = diffuse_start(system, y) if start is None else start
    d = Q1.type.shape[-1]
    observed = ~pt.isnan(y)
    y0 = pt.switch(observed, y, 0.0)
    seqs = {"y": time_first(y0, 1), "observed": time_first(observed, 1)}
    mats = system_inputs(system)

    def run(mats, a, U, B, predicted=False):
        return diffuse_filter_step(
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

    # t = 1 outside the scan: it starts from the prediction made by diffuse_start.
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
