r"""The gradient's record over the square-root steps, taken at the square-root filter's moments.

Where the accuracy guard fires (a proper prior vague against the noise), the value of the
first steps comes from the square-root filter (:func:`~pymc_dlm.kalman.fused.sqrtform.
_sqrt_head`). The backward pass (:mod:`~pymc_dlm.kalman.fused.adjoint`) differentiates
covariance steps from their record: the moments entering each step and the gain
:math:`u = R z`, variance :math:`f = z^\top R z + h` and innovation :math:`v` of each scalar
update. :func:`record_head` records step :math:`t` by one covariance step started from the
square-root filter's filtered moments :math:`(m_{t-1}, C_{t-1} = U_{t-1}^\top U_{t-1})`,
not from the covariance form's own :math:`C_{t-1}`, whose update :math:`R - uu^\top/f` cancels
digits under a vague prior. The adjoint of each step is then the derivative of the step at
the point the value was computed at (Giles 2008); before, it was the derivative of the
covariance-form recursion from the prior, whose moments differ by that form's round-off:
7e-7 relative on the gradient of the vague trend + ``Seasonal(4)`` case of the tests
(``tests/kernels/test_vague_gradient.py``, against 60-digit central differences).

A step with several observed scalars updates them one after the other; the scalars after the
first start from the covariance form's intermediate :math:`R`, so their record keeps that
form's round-off.

References
----------
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§6.3 (square-root filtering), §7.3.3 (score).
"""

import numpy as np

from pymc_dlm.kalman.fused.forward import _forward, no_moments
from pymc_dlm.kalman.fused.records import Moments
from pymc_dlm.kalman.fused.steps import _copy_state, _inline, _jit

__all__ = ["head_moments", "record_head"]


@_inline
def head_moments(T, n, d):
    """A :class:`~.records.Moments` that records the filtered moments (and terms) of every step."""
    return Moments(
        pa=np.empty((0, n)),
        pR=np.empty((0, n, n)),
        pPinf_f=np.empty((0, n, d)),
        fm=np.empty((T, n)),
        fC=np.empty((T, n, n)),
        fPinf_f=np.empty((T, n, d)),
        ll_t=np.empty(T),
        fU=np.empty((0, n, n)),
        n_sqrt=np.empty(0, dtype=np.int64),
    )


@_jit
def record_head(inp, b, buf, spec, head, t0):
    """Record steps ``0 .. t0 - 1`` of member ``b`` for the backward pass; False on a -inf step.

    ``head``: the :class:`~.records.Moments` of the square-root steps (:func:`head_moments`),
    whose filtered moments start every step after the first; the first starts from the prior.
    ``buf``: the :class:`~.records.PassBuffers` of the pass (its record is written; its
    moments and the learned variance's carry are restored to those the square-root steps
    handed over). A learned variance's carry entering step t is the one the square-root
    steps recorded (``buf.dsc.ns``, ``buf.dsc.ds``).
    """
    n, d = inp.G.shape[-1], inp.Pinf_sqrt.shape[2]
    none = no_moments(n, d)
    dsc = buf.dsc
    handed_n, handed_d = dsc.carry[0], dsc.carry[1]
    finite = True
    for t in range(t0):
        if t > 0:
            _copy_state(head.fm[t - 1], head.fC[t - 1], buf.work.m, buf.work.C)
            if dsc.keep:
                dsc.carry[0], dsc.carry[1] = dsc.ns[t], dsc.ds[t]
        step = _forward(inp, b, buf, none, spec, (t, t + 1), bool(1), bool(0))
        if not (step.loglik > -np.inf):
            finite = False
            break
    dsc.carry[0], dsc.carry[1] = handed_n, handed_d
    return finite
