r"""Fused numba kernels: the Kalman log-likelihood and its exact reverse-mode gradient.

These kernels are what the DLM log-likelihood runs on pytensor's numba backend (see
:mod:`pymc_dlm.kalman.fused.ops`); the scan of :mod:`pymc_dlm.kalman.filter` stays the
definition and runs on every other backend.

Recursion (R ``dlm`` timing, prior on :math:`\theta_0`; observation components processed one
at a time, which is exact for a diagonal :math:`V_t`; Durbin & Koopman 2012, §6.4):

.. math::

    a = G_t m_{t-1}, \quad R = G_t C_{t-1} G_t^\top + L_W L_W^\top,

then for every observed component :math:`i` with row :math:`z = F_{t,i}` and variance
:math:`h = \sigma_{t,i}^2`:

.. math::

    u = R z,\; f = z^\top u + h,\; v = y_{t,i} - z^\top a,\;
    \ell \mathrel{+}= -\tfrac12 (\log 2\pi + \log f + v^2 / f),\;
    a \mathrel{+}= u\, v / f,\; R \mathrel{-}= u u^\top / f,

and finally :math:`m_t = a`, :math:`C_t = R`. Missing components (NaN) are skipped: they
contribute exactly zero.

The gradient is the adjoint (reverse mode) of exactly this recursion, derived by hand and run
backwards in one pass (Giles 2008 for the matrix adjoint rules). With a symmetric adjoint
:math:`\bar R`, the rules used are: from :math:`R \mathrel{-}= uu^\top/f`,
:math:`\bar u \mathrel{-}= 2\bar R u / f`, :math:`\bar f \mathrel{+}= u^\top \bar R u / f^2`; from
:math:`u = R z`, :math:`\bar R \mathrel{+}= \operatorname{sym}(\bar u z^\top)`,
:math:`\bar z \mathrel{+}= R \bar u`; from the prediction, :math:`\bar m = G^\top \bar a`,
:math:`\bar C = G^\top \bar R G`, :math:`\bar G = \bar a m^\top + 2 \bar R G C`,
:math:`\bar L_W = 2 \bar R L_W`. Inputs whose gradient is not wanted (``need`` flags) are
skipped, and their forward intermediates are not stored: in the common case (constant F and
G) the backward pass keeps only :math:`u, f, v` per observation.

Structure is exploited at run time, for any model: G, the rows of F and the columns of
:math:`L_W` are applied through their non-zero entries only, so a sum of sparse components
(polynomial trends, dummy seasonals, regressions) costs far less than dense
:math:`n^3` per step. Symmetric matrices stay exactly symmetric: they are computed on one
triangle and mirrored, or (the rank-one update) from products :math:`u_r u_c` that do not
depend on the order. Inner loops run along contiguous rows, so that the compiler can
vectorise them; a constant noise factor's covariance :math:`L_W L_W^\top` is formed once per
series, and the adjoint of a constant W is summed over time and multiplied by its factor
once.

Array layout: every input has one leading batch axis of length 1 (shared) or B, and the
time-varying ones a time axis of length 1 (constant) or T:
``y (B, T, p)``, ``F (B, TF, p, n)``, ``G (B, TG, n, n)``, ``W (B, TW, n, k)`` (the factor
:math:`L_W`), ``sd (B, TV, p)`` (observation standard deviations), ``m0 (B, n)``,
``C0 (B, n, c)`` (the factor :math:`L_0`).

Accuracy: this is the covariance form. With ordinary priors it agrees with the square-root
scan to ~1e-13 relative; with a vague prior (C0 = 1e7) and tiny observation variances it
loses digits to cancellation in :math:`R - uu^\top/f` (measured in the tests), which the
square-root scan does not.

Modules: the per-step routines and the forward pass are in
:mod:`~pymc_dlm.kalman.fused.forward`, the square-root route and the per-member driver in
:mod:`~pymc_dlm.kalman.fused.sqrtform`, the backward pass in
:mod:`~pymc_dlm.kalman.fused.adjoint`, the exact diffuse steps in
:mod:`~pymc_dlm.kalman.fused.diffuse`, and the straight-line sandwiches of a constant G in
:mod:`~pymc_dlm.kalman.fused.specialize`. This module holds the value kernels and re-exports
the gradient kernels.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§4.3, §6.4 (univariate treatment), §7.3.3 (score).
Giles, M. (2008). Collected matrix derivative results for forward and reverse mode
algorithmic differentiation. In *Advances in Automatic Differentiation*, 35–44.
"""

import numba
import numpy as np

from pymc_dlm.kalman.fused.adjoint import grad_outputs, loglik_grad_into, loglik_grad_kernel
from pymc_dlm.kalman.fused.forward import (
    _borrow,
    _borrow_inputs,
    _borrow_tuple9,
    _diffuse_work,
    _keep_alive,
)
from pymc_dlm.kalman.fused.sqrtform import _filter_member

__all__ = [
    "loglik_kernel",
    "loglik_into",
    "value_outputs",
    "steady_start",
    "loglik_grad_kernel",
    "loglik_grad_into",
    "grad_outputs",
]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _value_pass(y, F, G, W, sd, m0, C0, Q, spec):
    """Log-likelihood (B,) and first steady step (B,) of every member, with no record."""
    # Borrowed views (``compat.borrow``): no reference counting in the calls below.
    y, F, G, W, sd, m0, C0, Q = _borrow_inputs(y, F, G, W, sd, m0, C0, Q)
    spec = _borrow(spec)
    B, T, p = y.shape
    n = G.shape[-1]
    out = np.zeros(B)
    t_ss = np.empty(B, dtype=np.int64)
    vec, sq = np.empty((3, n)), np.empty((3, n, n))
    work = (_borrow(vec[0]), _borrow(sq[0]), _borrow(vec[1]), _borrow(sq[1]))
    work = (*work, _borrow(sq[2]), _borrow(vec[2]))  # m, C, a, R, GC, u
    no_record = (np.empty((1, 1, 1)), np.empty((1, 1)), np.empty((1, 1)))
    no_states = (np.empty((1, n)), np.empty((1, n, n)))
    rec = (_borrow(no_record[0]), _borrow(no_record[1]), _borrow(no_record[2]))
    rec = (*rec, _borrow(no_states[0]), _borrow(no_states[1]))
    dw_owner = _diffuse_work(n, Q.shape[2], 1, 1, False)  # no record: value only
    dw = _borrow_tuple9(dw_owner)
    for b in range(B):
        value, _, _, t_ss[b] = _filter_member(
            y, F, G, W, sd, m0, C0, Q, b, False, rec, work, dw, spec
        )
        out[b] = value
    _keep_alive((vec, sq, no_record, no_states, dw_owner))
    return out, t_ss


@_jit
def value_outputs(out, y, F, G, W, sd, m0, C0, Q):
    """The ``out`` of :func:`loglik_grad_into` for the log-likelihood alone.

    ``out`` (B,) receives the log-likelihood; the gradients are empty arrays of the inputs'
    ranks, never touched when no gradient is wanted.
    """
    return (
        out,
        np.empty((0, 0, 0)),
        np.empty((0, 0, 0, 0)),
        np.empty((0, 0, 0, 0)),
        np.empty((0, 0, 0, 0)),
        np.empty((0, 0, 0)),
        np.empty((0, 0)),
        np.empty((0, 0, 0)),
        np.empty((0, 0, 0)),
    )


@_jit
def loglik_into(y, F, G, W, sd, m0, C0, Q, spec, out):
    """The log-likelihood per batch member written into ``out`` (B,).

    :func:`loglik_grad_into` with no gradient wanted (no record, no backward pass): the
    value and the gradient are one compiled routine. ``spec`` (int64, 2): see ``_forward``;
    zeros for the general routine.
    """
    need = np.zeros(8, dtype=np.bool_)
    outputs = value_outputs(out, y, F, G, W, sd, m0, C0, Q)
    loglik_grad_into(y, F, G, W, sd, m0, C0, Q, np.zeros(1), need, spec, outputs)


@_jit
def loglik_kernel(y, F, G, W, sd, m0, C0, Q):
    """Log-likelihood per batch member, shape (B,); -inf where a forecast variance is not > 0.

    ``Q`` (B, n, d): the orthonormal diffuse factor at step 1 (then ``m0``, ``C0`` are the
    predicted moments of step 1, see ``_forward``), or d = 0 for a proper prior.
    """
    out = np.empty(y.shape[0])
    loglik_into(y, F, G, W, sd, m0, C0, Q, np.zeros(2, dtype=np.int64), out)
    return out


@_jit
def steady_start(y, F, G, W, sd, m0, C0, Q):
    """First steady step of every batch member (T when the recursion never settles).

    For tests and diagnostics: the steps from there on reuse the last gains (``_forward``).
    """
    return _value_pass(y, F, G, W, sd, m0, C0, Q, np.zeros(2, dtype=np.int64))[1]
