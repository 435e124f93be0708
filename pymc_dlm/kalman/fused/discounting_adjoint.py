r"""The adjoints of the discounting steps, for the kernels' one backward pass.

:func:`pymc_dlm.kalman.fused.adjoint._backward` calls these when its
:class:`~pymc_dlm.kalman.fused.records.Discounting` is on; they reverse the steps of
:mod:`~pymc_dlm.kalman.fused.discounting` (Giles 2008). Adjoints are written with a bar.

The discounted prediction :math:`R_t = P_t + D \circ P_t + W_t`,
:math:`D_{ij} = B_{ij}(1/\delta_i - 1)`, with :math:`\bar R` symmetric (the discount is one
per block, so :math:`D` is symmetric where :math:`B` is not zero):

.. math::

    \bar P = \bar R \circ (1 + D), \qquad
    \bar\delta_i \mathrel{-}= \delta_i^{-2} \sum_j B_{ij} \bar R_{ij} P_{ij},

and :math:`\bar W = \bar R`; the pull-back through :math:`P_t = G C G^\top` follows.

The Student-t term of one observed scalar with the carry :math:`(n, d)`: with
:math:`\nu = \delta_V n`, :math:`d' = \delta_V d`, :math:`q = v^2/f`, the term
:math:`\ell` of :func:`~pymc_dlm.kalman.fused.density.student_log_density`,
:math:`n \leftarrow \nu + 1`, :math:`d \leftarrow d' + q`, and :math:`\psi` the digamma
function,

.. math::

    \bar q &= \bar d - \frac{\nu + 1}{2(d' + q)}, \\
    \bar\nu &= \bar n + \tfrac12\left(\psi(\tfrac{\nu+1}2) - \psi(\tfrac\nu2)
        + \log d' - \log(d' + q)\right), \\
    \bar d' &= \bar d + \frac{\nu}{2d'} - \frac{\nu + 1}{2(d' + q)}, \\
    \bar v &= 2 \bar q v / f, \quad \bar f = -\frac1{2f} - \bar q v^2/f^2,

then :math:`\bar n \leftarrow \delta_V \bar\nu`, :math:`\bar d \leftarrow \delta_V \bar d'`,
:math:`\bar\delta_V \mathrel{+}= n \bar\nu + d \bar d'`. A step with no observation only
discounts the carry.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35-44.
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6, §6.3, §10.8.
"""

import math

from pymc_dlm.kalman.fused.steps import _inline, _jit

__all__ = []


@_inline
def _digamma(x):
    """The digamma function for x > 0 (recurrence to x >= 6, then the asymptotic series)."""
    acc = 0.0
    while x < 6.0:
        acc -= 1.0 / x
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    series = inv2 * (1.0 / 12 - inv2 * (1.0 / 120 - inv2 * (1.0 / 252 - inv2 * (
        1.0 / 240 - inv2 * (1.0 / 132)))))  # fmt: skip
    return acc + math.log(x) - 0.5 * inv - series


@_jit
def _student_adjoint(dsc, t, v, f):
    r"""``(vbar, fbar)`` of the Student-t term of step t's scalar (module docstring).

    The carry's adjoints :math:`(\bar n, \bar d, \bar\delta_V)` are ``dsc.scale_bar``,
    updated in place. Called, not inlined: inlined, its code in the scalar loops of the
    fixed-W kernels (where it never runs) made them up to about 10% slower.
    """
    bar = dsc.scale_bar
    nn, dd, dV = dsc.ns[t], dsc.ds[t], dsc.scale[2]
    nu, dp, q = dV * nn, dV * dd, v * v / f
    qbar = bar[1] - (nu + 1.0) / (2.0 * (dp + q))
    psi = _digamma(0.5 * (nu + 1.0)) - _digamma(0.5 * nu)
    nubar = bar[0] + 0.5 * (psi + math.log(dp) - math.log(dp + q))
    dpbar = bar[1] + nu / (2.0 * dp) - (nu + 1.0) / (2.0 * (dp + q))
    bar[0], bar[1] = dV * nubar, dV * dpbar
    bar[2] += nn * nubar + dd * dpbar
    return qbar * 2.0 * v / f, -0.5 / f - qbar * v * v / (f * f)


@_inline
def _carry_adjoint(dsc, t):
    r"""Adjoint of :math:`n \leftarrow \delta_V n`, :math:`d \leftarrow \delta_V d`."""
    bar, dV = dsc.scale_bar, dsc.scale[2]
    bar[2] += dsc.ns[t] * bar[0] + dsc.ds[t] * bar[1]
    bar[0] *= dV
    bar[1] *= dV


@_inline
def _discount_adjoint(dsc, t, Rbar):
    r""":math:`\bar\delta` of step t's prediction; ``Rbar`` becomes :math:`\bar P` in place."""
    delta, blocks, P, delta_bar = dsc.delta, dsc.blocks, dsc.Ps[t], dsc.delta_bar
    n = Rbar.shape[0]
    for r in range(n):
        fr = 1.0 / delta[r] - 1.0
        s = 0.0
        for c in range(n):
            w = blocks[r, c]
            s += w * Rbar[r, c] * P[r, c]
            Rbar[r, c] *= 1.0 + w * fr
        delta_bar[r] -= s / (delta[r] * delta[r])


@_inline
def _replay_discounted(dsc, t, WW, R):
    """Step t's predicted covariance from the recorded :math:`P_t` (as the forward pass)."""
    delta, blocks, P = dsc.delta, dsc.blocks, dsc.Ps[t]
    n = R.shape[0]
    for r in range(n):
        fr = 1.0 / delta[r] - 1.0
        for c in range(n):
            R[r, c] = P[r, c] + blocks[r, c] * fr * P[r, c] + WW[r, c]
