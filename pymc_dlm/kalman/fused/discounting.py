r"""Component discounting and a learned observation variance: their steps in the forward pass.

The helpers :func:`pymc_dlm.kalman.fused.forward._forward` calls when its
:class:`~pymc_dlm.kalman.fused.records.Discounting` is on (West & Harrison 1997, §6.3, §10.8):
the discounted prediction

.. math::

    a_t = G_t m_{t-1}, \quad P_t = G_t C_{t-1} G_t^\top, \quad
    R_t = P_t + D \circ P_t + W_t, \quad D_{ij} = B_{ij} (1/\delta_i - 1),

the update of one scalar with a learned variance (unit scale, :math:`h = 1`; the Student-t
term of :func:`~pymc_dlm.kalman.fused.density.student_log_density` and the carry
:math:`n_t = \delta_V n_{t-1} + 1`, :math:`d_t = \delta_V d_{t-1} + v^2/f`), the record the
backward pass reads (:math:`P_t` and the carry), and :func:`no_discounting`, the fixed-W
model. The adjoints of these steps are in :mod:`~pymc_dlm.kalman.fused.discounting_adjoint`.

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§4.6, §6.3, §10.8.
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.density import student_log_density
from pymc_dlm.kalman.fused.diffuse import condition
from pymc_dlm.kalman.fused.records import Discounting
from pymc_dlm.kalman.fused.specialize import call_address
from pymc_dlm.kalman.fused.steps import _inline, _jit, _predict_mean, _sandwich

__all__ = ["no_discounting", "unrecorded"]


@_inline
def _discounted_prediction(sys, work, dsc, predict_at):
    """``a = G m``, ``P = G C G'`` and ``R = P + D∘P + WW`` (exactly symmetric)."""
    C, P, R, WW, delta, blocks = work.C, dsc.P, work.R, sys.WW, dsc.delta, dsc.blocks
    _predict_mean(sys.G, work.m, work.a)
    if predict_at != 0:  # straight-line, bitwise the general routine's
        call_address(predict_at, C.ctypes.data, P.ctypes.data, dsc.Z.ctypes.data)
    else:
        _sandwich(sys.G, C, work.GC, P, WW, False)
    n = P.shape[0]
    for r in range(n):
        fr = 1.0 / delta[r] - 1.0
        for c in range(n):
            R[r, c] = P[r, c] + blocks[r, c] * fr * P[r, c] + WW[r, c]


@_inline
def _keep_discounted(dsc, t, nn, dd):
    """Record step t's :math:`P_t` and the carry (n, d) entering it (``dsc.keep``)."""
    n = dsc.P.shape[0]
    for r in range(n):
        for c in range(n):
            dsc.Ps[t, r, c] = dsc.P[r, c]
    dsc.ns[t], dsc.ds[t] = nn, dd


@_jit
def _student_step(nn, dd, dV, q, f):
    r"""One observed scalar's Student-t term and carry: ``(term, n_t, d_t)``.

    :math:`\nu = \delta_V n`, :math:`d' = \delta_V d`, the term of
    :func:`~pymc_dlm.kalman.fused.density.student_log_density` with :math:`q = v^2/f`, then
    :math:`n \leftarrow \nu + 1`, :math:`d \leftarrow d' + q`. Called, not inlined (see
    ``discounting_adjoint._student_adjoint``).
    """
    nu, dp = dV * nn, dV * dd
    return student_log_density(nu, dp, q, f), nu + 1.0, dp + q


@_inline
def _learned_update(work, f, v, nn, dd, dV):
    """Update a, R by a scalar with a learned variance: ``(Student-t term, n, d)``.

    -inf (and nothing updated) when f is not a positive number.
    """
    if not (f > 0.0) or not math.isfinite(f):
        return -np.inf, nn, dd
    condition(work.R, work.a, work.u, f, v)  # its Gaussian term is not used
    return _student_step(nn, dd, dV, v * v / f, f)


@_inline
def _learned_diffuse(informative, f, v, ll, nn, dd, dV):
    """A scalar of the diffuse period with a learned variance: ``(term, n, d)``.

    An informative scalar keeps its Gaussian term (the flat part is not scaled by V) and
    only discounts the carry; an ordinary one takes the Student-t step
    (:mod:`pymc_dlm.kalman.discount`, West & Harrison 1997, §4.10).
    """
    if informative:
        return ll, dV * nn, dV * dd
    if not (ll > -np.inf):
        return ll, nn, dd
    return _student_step(nn, dd, dV, v * v / f, f)


@_inline
def no_discounting(n):
    """The ``dsc`` argument of ``forward._forward`` for the fixed-W model (nothing discounted)."""
    return Discounting(
        on=False,
        learned=False,
        keep=False,
        delta=np.ones(n),
        blocks=np.zeros((1, 1)),
        scale=np.ones(3),
        P=np.empty((1, 1)),
        Z=np.empty((1, 1)),
        Ps=np.empty((1, 1, 1)),
        ns=np.empty(1),
        ds=np.empty(1),
        delta_bar=np.zeros(n),
        scale_bar=np.zeros(3),
        carry=np.zeros(2),
    )


@_inline
def unrecorded(dsc):
    """``dsc`` with its records off (``keep`` false): for a run whose record is not wanted."""
    return Discounting(
        on=dsc.on,
        learned=dsc.learned,
        keep=bool(0),
        delta=dsc.delta,
        blocks=dsc.blocks,
        scale=dsc.scale,
        P=dsc.P,
        Z=dsc.Z,
        Ps=dsc.Ps,
        ns=dsc.ns,
        ds=dsc.ds,
        delta_bar=dsc.delta_bar,
        scale_bar=dsc.scale_bar,
        carry=dsc.carry,
    )
