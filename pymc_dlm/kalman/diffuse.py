r"""Exact diffuse initialisation: the diffuse start and the square-root scalar step.

Some states have an improper flat prior, :math:`\theta_0 = m_0 + A\delta + L_0\eta` with
:math:`\delta` flat and :math:`A` the unit columns of the diffuse states. The predicted state
covariance is then :math:`P_t = \kappa P_{\infty,t} + P_{*,t}` with :math:`\kappa \to \infty`
(Durbin & Koopman 2012, ch. 5). Here :math:`P_{\infty,t} = B_t B_t^\top` travels as a factor
:math:`B_t` (n, d). This module holds the start of the diffuse filter
(:func:`diffuse_start`) and the conditioning on one scalar with :math:`P_*` as a
square-root factor (:func:`scalar_step`), which the backward passes use; the filter itself,
with :math:`P_*` a covariance, is :mod:`pymc_dlm.kalman.univariate`.

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
import pytensor.tensor as pt
from pytensor.tensor.linalg import solve_triangular

from pymc_dlm.kalman.constants import DIFFUSE_TOL
from pymc_dlm.kalman.linalg import matvec, mT, triangularize
from pymc_dlm.kalman.prepare import (
    prepare,
)
from pymc_dlm.kalman.scanargs import time_first
from pymc_dlm.kalman.steps import log_density, update
from pymc_dlm.model.blocks import broadcast_leading

__all__ = [
    "DIFFUSE_TOL",
    "ScalarStep",
    "diffuse_active",
    "diffuse_rows",
    "diffuse_start",
    "eliminate",
    "first_step",
    "orthonormalize",
    "scalar_step",
    "seen_diffuse",
    "symmetrize",
]


class ScalarStep(NamedTuple):
    r"""State after conditioning on one scalar.

    Mean, upper factor of :math:`P_*`, factor :math:`B` of :math:`P_\infty`, log-likelihood
    term and the gain-tracking matrix. The univariate filter's update also gives the
    innovation :math:`v` and its variance :math:`F_*` of an ordinary update (0 and 1
    elsewhere) and where the update was ordinary with :math:`F_* > 0` (``ordinary``).
    """

    mean: object
    cov_factor: object
    diffuse: object
    loglik: object
    tracked: object = None
    innovation: object = None
    variance: object = None
    ordinary: object = None


def _rows(blocks):
    return pt.concatenate(broadcast_leading(blocks, 2), axis=-2)


def eliminate(B, u):
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
    B_inf = eliminate(B, u_s)
    ll_inf = log_density(1.0, pt.log(F_inf_s), 0.0)

    # Ordinary branch: one QR of the (N + 1)-square pre-array.
    sd_s = pt.switch(ordinary & (sd <= 0), 0.0, sd)
    y_s = pt.switch(ordinary, y, pt.sum(z * a, axis=-1))
    upd = update(a, U, y_s[..., None], z[..., None, :], sd_s[..., None, None])
    uq = upd.forecast_factor[..., 0, 0]
    uq_s = pt.switch(ordinary, uq, 1.0)
    white = pt.switch(ordinary, upd.white[..., 0], 0.0)
    ll_ord = log_density(1.0, 2.0 * pt.log(pt.abs(uq_s)), white**2)

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


def symmetrize(P):
    """``(P + P') / 2``: a matrix made exactly symmetric."""
    return 0.5 * (P + mT(P))


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
    return matvec(proj, a), symmetrize(pt.matmul(pt.matmul(proj, P), proj)), mT(Qt), log_jac


def diffuse_active(B):
    r"""Whether a factor (..., n, d) of :math:`P_\infty` is still nonzero (...)."""
    return pt.any(pt.neq(B, 0.0), axis=(-2, -1))


def seen_diffuse(F, B, tol=DIFFUSE_TOL):
    r"""Whether an observation :math:`F` (..., p, n) sees a factor :math:`B` (..., n, d) (...).

    The rank test of :func:`scalar_step`, for every row :math:`z` of :math:`F` at once: some
    row has :math:`\|B^\top z\| > \tau \|z\| \|B\|_F`. With :math:`B` the predicted
    factor of :math:`P_\infty`, true where the one-step predictive of that observation is
    improper. An exact zero test would take the round-off of a direction that :math:`F`
    does not see (about 1e-16) for a diffuse one.
    """
    seen = pt.sum(pt.matmul(F, B) ** 2, axis=-1)
    size = pt.sum(B**2, axis=(-2, -1))[..., None]
    return pt.any(seen > tol * tol * pt.sum(F * F, axis=-1) * size, axis=-1)


def diffuse_rows(B, tol=DIFFUSE_TOL):
    r"""Whether each state is still diffuse (..., n), from a factor :math:`B` (..., n, d).

    The rank test of :func:`seen_diffuse` for the observation of one state,
    :math:`\|B^\top e_r\| > \tau \|B\|_F`: round-off left in a row by a direction that
    does not touch the state is not taken for a diffuse part.
    """
    rows = pt.sum(B**2, axis=-1)
    return rows > tol * tol * pt.sum(B**2, axis=(-2, -1))[..., None]


def first_step(x, time_varying):
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
    started there (:func:`pymc_dlm.kalman.univariate.univariate_filter_scan` with ``start``).
    """
    tv = system.time_varying
    batch, m0, C0_factor = prepare(system, y)
    n = system.G.type.shape[-1]
    A = pt.as_tensor_variable(system.diffuse)
    d = A.type.shape[-1]
    m0 = m0 - matvec(pt.matmul(A, mT(A)), m0)
    B0 = pt.broadcast_to(A, (*batch, n, d))
    G1 = first_step(system.G, "G" in tv)
    W1 = first_step(system.W_sqrt, "W" in tv)
    C0 = pt.matmul(mT(C0_factor), C0_factor)
    a = matvec(G1, m0)
    P = symmetrize(pt.matmul(pt.matmul(G1, C0), mT(G1)) + pt.matmul(W1, mT(W1)))
    a, P, Q, log_jac = orthonormalize(a, P, pt.matmul(G1, B0))
    return (
        pt.broadcast_to(a, (*batch, n)),
        pt.broadcast_to(P, (*batch, n, n)),
        pt.broadcast_to(Q, (*batch, n, d)),
        pt.broadcast_to(log_jac, batch),
    )
