r"""Exact diffuse steps for the fused kernels: the univariate diffuse update and its adjoint.

The filter of :mod:`pymc_dlm.kalman.diffuse` (the definition) in the kernels' covariance form.
During the diffuse period the predicted covariance is :math:`\kappa P_\infty + P_*`,
:math:`\kappa \to \infty`, with :math:`P_\infty = B B^\top` carried as its factor :math:`B`
(n, d; ``Pinf_f`` in the code). For an observed scalar with row :math:`z`, variance
:math:`h`, innovation :math:`v = y - z^\top a`, and :math:`u = B^\top z`,
:math:`F_\infty = u^\top u`, :math:`M_\infty = B u = P_\infty z`, :math:`M = P_* z`,
:math:`F_* = z^\top M + h`:

* informative (:math:`F_\infty > \tau^2 \|z\|^2 \|B\|_F^2`, :math:`\tau` = 1e-10 as in the
  definition): :math:`K = M_\infty / F_\infty`,

  .. math::

      a \mathrel{+}= K v, \quad
      P_* \leftarrow P_* - K M^\top - M K^\top + F_* K K^\top, \quad
      P_\infty \leftarrow P_\infty - F_\infty K K^\top, \quad
      \ell \mathrel{+}= -\tfrac12 (\log 2\pi + \log F_\infty);

  the :math:`P_*` update is the expanded Joseph form of the definition (Durbin & Koopman
  2012, eq. 5.14), and :math:`P_\infty` is updated exactly in factor form: a Householder
  reflection maps :math:`u` onto its largest axis and that column of :math:`B` is set to
  zero, so :math:`P_\infty` is exactly zero after the last informative observation;
* otherwise the ordinary update with :math:`P_*` (skipped, contributing nothing, when the
  scalar is noiseless and carries no information, as in the definition).

The prediction adds :math:`B \leftarrow G B`.

Adjoint of the informative update, for symmetric adjoints :math:`\bar a, \bar P_*, \bar
P_\infty` of the outputs (reverse mode, Giles 2008):

.. math::

    \bar v = K^\top \bar a,\quad
    \bar K = v \bar a - 2 \bar P_* M + 2 F_* \bar P_* K - 2 F_\infty \bar P_\infty K,\quad
    \bar F_* = K^\top \bar P_* K,\quad \bar M = -2 \bar P_* K + \bar F_* z,

    \bar F_\infty = -K^\top \bar P_\infty K - \tfrac{1}{2 F_\infty} - K^\top \bar K / F_\infty,
    \quad \bar M_\infty = \bar K / F_\infty + \bar F_\infty z,

and then :math:`\bar P_* \mathrel{+}= \mathrm{sym}(\bar M z^\top)`,
:math:`\bar P_\infty \mathrel{+}= \mathrm{sym}(\bar M_\infty z^\top)`,
:math:`\bar a \mathrel{-}= \bar v z`, :math:`\bar y = \bar v`, :math:`\bar h = \bar F_*`, and
:math:`\bar z = \bar F_\infty M_\infty + P_\infty \bar M_\infty + \bar F_* M + P_* \bar M -
\bar v a` (the last with the moments before the update). The factor form of the
:math:`P_\infty` update has the same derivative as its covariance form, because every later
quantity depends on :math:`B` only through :math:`B B^\top`.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§5.2, §6.4 (univariate treatment), §7.2.2 (diffuse log-likelihood).
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
"""

import math

import numba
import numpy as np

from pymc_dlm.kalman.constants import DIFFUSE_TOL, INFORMATIVE, ORDINARY, SKIPPED
from pymc_dlm.kalman.fused.density import log_density
from pymc_dlm.kalman.fused.records import ScalarBar

_inline = numba.njit(cache=True, nogil=True, error_model="numpy", inline="always")
_cold = numba.njit(cache=True, nogil=True, error_model="numpy")


@_inline
def mirror(R):
    """Copy the upper triangle of a square matrix onto its lower triangle."""
    n = R.shape[0]
    for r in range(n):
        for c in range(r + 1, n):
            R[c, r] = R[r, c]


@_inline
def predict_factor(Gp, Pinf_f, out):
    """``out = G Pinf_f`` through the sparse rows of G (pattern ``Gp``)."""
    G_cnt, G_idx, G_val = Gp.cnt, Gp.idx, Gp.val
    n, d = Pinf_f.shape
    for r in range(n):
        for j in range(d):
            s = 0.0
            for k in range(G_cnt[r]):
                s += G_val[r, k] * Pinf_f[G_idx[r, k], j]
            out[r, j] = s


@_inline
def outer_factor(Pinf_f, out):
    """``out = Pinf_f Pinf_f'`` (a covariance from its factor)."""
    n, d = Pinf_f.shape
    for r in range(n):
        for c in range(r, n):
            s = 0.0
            for j in range(d):
                s += Pinf_f[r, j] * Pinf_f[c, j]
            out[r, c] = s
    mirror(out)


@_inline
def any_nonzero(Pinf_f):
    """Whether the diffuse factor still has a nonzero entry (the diffuse period goes on)."""
    n, d = Pinf_f.shape
    for r in range(n):
        for j in range(d):
            if Pinf_f[r, j] != 0.0:
                return True
    return False


@_inline
def _eliminate(Pinf_f, ud, Pinf_fv):
    r"""Exact rank-one removal :math:`B \to B (I - u u^\top / u^\top u)`, one column zeroed.

    ``Pinf_f`` is the factor :math:`B`; ``Pinf_fv`` scratch (n,).
    """
    n, d = Pinf_f.shape
    k = 0
    norm2 = 0.0
    for j in range(d):
        norm2 += ud[j] * ud[j]
        if abs(ud[j]) > abs(ud[k]):
            k = j
    sign = 1.0 if ud[k] >= 0.0 else -1.0
    ud[k] += sign * math.sqrt(norm2)  # the Householder vector, in place
    vtv = 0.0
    for j in range(d):
        vtv += ud[j] * ud[j]
    for r in range(n):
        s = 0.0
        for j in range(d):
            s += Pinf_f[r, j] * ud[j]
        Pinf_fv[r] = 2.0 * s / vtv
    for r in range(n):
        for j in range(d):
            Pinf_f[r, j] = 0.0 if j == k else Pinf_f[r, j] - Pinf_fv[r] * ud[j]


@_inline
def diffuse_update(moments, z, i, y, h, scratch):
    r"""One scalar of the diffuse period: returns (kind, f, v, F_inf, loglik term).

    The scalar's row is row ``i`` of the sparse pattern ``z`` (a
    :class:`~pymc_dlm.kalman.fused.records.Sparse`), its observation ``y`` and noise
    variance ``h``. ``moments = (R, a, Pinf_f)``: :math:`P_*`, the mean and the factor
    :math:`B` of :math:`P_\infty`, updated in place. ``scratch = (u, K, ud, Pinf_fv)``:
    leaves :math:`M = P_* z` in ``u`` and, for an informative scalar, the gain :math:`K` in
    ``K`` (``ud``, ``Pinf_fv``: work).
    """
    R, a, Pinf_f = moments
    u, K, ud, Pinf_fv = scratch
    z_cnt, z_idx, z_val = z.cnt, z.idx, z.val
    n, d = Pinf_f.shape
    cnt = z_cnt[i]
    z2 = 0.0
    v = y
    for j in range(cnt):
        z2 += z_val[i, j] * z_val[i, j]
        v -= z_val[i, j] * a[z_idx[i, j]]
    B2 = 0.0
    for r in range(n):
        for j in range(d):
            B2 += Pinf_f[r, j] * Pinf_f[r, j]
    f_inf = 0.0
    for j in range(d):
        s = 0.0
        for k in range(cnt):
            s += Pinf_f[z_idx[i, k], j] * z_val[i, k]
        ud[j] = s
        f_inf += s * s
    trace = 0.0
    for r in range(n):
        trace += R[r, r]
        s = 0.0
        for j in range(cnt):
            s += R[r, z_idx[i, j]] * z_val[i, j]
        u[r] = s
    f = h
    for j in range(cnt):
        f += z_val[i, j] * u[z_idx[i, j]]
    tol2 = DIFFUSE_TOL * DIFFUSE_TOL
    if f_inf > tol2 * z2 * B2:
        for r in range(n):
            s = 0.0
            for j in range(d):
                s += Pinf_f[r, j] * ud[j]
            K[r] = s / f_inf
        for r in range(n):
            a[r] += K[r] * v
            for c in range(r, n):
                R[r, c] += -K[r] * u[c] - u[r] * K[c] + f * K[r] * K[c]
        mirror(R)
        _eliminate(Pinf_f, ud, Pinf_fv)
        return INFORMATIVE, f, v, f_inf, log_density(1, math.log(f_inf), 0.0)
    if not (h > 0.0 or f > tol2 * z2 * trace):
        return SKIPPED, f, v, 0.0, 0.0
    return ORDINARY, f, v, 0.0, condition(R, a, u, f, v)


@_inline
def condition(R, a, u, f, v):
    r"""Ordinary scalar update :math:`a \mathrel{+}= u v / f`, :math:`R \mathrel{-}= uu^\top/f`.

    Whole matrix, exactly symmetric. Returns its log-likelihood term; -inf (and nothing updated)
    when :math:`f` is not a positive number.
    """
    if not (f > 0.0) or not math.isfinite(f):
        return -np.inf
    n = a.shape[0]
    inv = 1.0 / f
    vf = v * inv
    for r in range(n):
        a[r] += u[r] * vf
    for r in range(n):  # whole rows (SIMD); u_r u_c = u_c u_r keeps R exactly symmetric
        ur = u[r]
        for c in range(n):
            R[r, c] -= (ur * u[c]) * inv
    return log_density(1, math.log(f), v * vf)


@_inline
def replay_informative(a, R, Pinf, K, u, f, f_inf, v):
    """Re-apply a stored informative update in covariance form (for the backward pass)."""
    n = a.shape[0]
    for r in range(n):
        a[r] += K[r] * v
        for c in range(r, n):
            R[r, c] += -K[r] * u[c] - u[r] * K[c] + f * K[r] * K[c]
            Pinf[r, c] -= f_inf * K[r] * K[c]
    mirror(R)
    mirror(Pinf)


@_cold
def informative_adjoint(aw, rec, dw, z, t, i, k):
    r"""Adjoint of the k-th informative update, scalar i of step t (module docstring), in place.

    The scalar's row is row ``i`` of the sparse pattern ``z``; its M, f, v are in ``rec``
    (a :class:`~pymc_dlm.kalman.fused.records.Record`), its gain K and :math:`F_\infty` in
    ``dw`` (a ``DiffuseWork``). The adjoints of ``aw`` (an ``AdjointWork``): ``abar``,
    ``Rbar`` (:math:`\bar P_*`), ``Pinf_bar`` (:math:`\bar P_\infty`) come in as the
    adjoints after the update and leave as those before it. Returns
    :math:`(\bar v, \bar F_*, \bar F_\infty)`; ``aw.ubar`` and ``aw.Kbar`` are left holding
    :math:`\bar M` and :math:`\bar M_\infty` (for :math:`\bar z`).
    """
    abar, Rbar, Pinf_bar, Kbar, Mbar = aw.abar, aw.Rbar, aw.Pinf_bar, aw.Kbar, aw.ubar
    K, f_inf = dw.Ks[k], dw.f_infs[k]
    M, f, v = rec.us[t, i], rec.fs[t, i], rec.vs[t, i]
    z_cnt, z_idx, z_val = z.cnt, z.idx, z.val
    n = abar.shape[0]
    vbar = 0.0
    fbar = 0.0
    KIK = 0.0
    for r in range(n):
        vbar += K[r] * abar[r]
        sP_M = 0.0
        sP_K = 0.0
        sI_K = 0.0
        for c in range(n):
            sP_M += Rbar[r, c] * M[c]
            sP_K += Rbar[r, c] * K[c]
            sI_K += Pinf_bar[r, c] * K[c]
        Kbar[r] = v * abar[r] - 2.0 * sP_M + 2.0 * f * sP_K - 2.0 * f_inf * sI_K
        Mbar[r] = -2.0 * sP_K
        fbar += K[r] * sP_K
        KIK += K[r] * sI_K
    KKbar = 0.0
    for r in range(n):
        KKbar += K[r] * Kbar[r]
    finf_bar = -KIK - 0.5 / f_inf - KKbar / f_inf
    for r in range(n):
        Kbar[r] = Kbar[r] / f_inf  # now the adjoint of M_inf, without its z term
    cnt = z_cnt[i]
    for j in range(cnt):
        c = z_idx[i, j]
        Mbar[c] += fbar * z_val[i, j]
        Kbar[c] += finf_bar * z_val[i, j]
        abar[c] -= vbar * z_val[i, j]
    for j in range(cnt):
        c = z_idx[i, j]
        zc = 0.5 * z_val[i, j]
        for r in range(n):
            Rbar[r, c] += Mbar[r] * zc
            Rbar[c, r] += Mbar[r] * zc
            Pinf_bar[r, c] += Kbar[r] * zc
            Pinf_bar[c, r] += Kbar[r] * zc
    return ScalarBar(vbar=vbar, fbar=fbar, finf_bar=finf_bar)
