r"""Fused numba kernels: the Kalman log-likelihood and its exact reverse-mode gradient.

These kernels are what the DLM log-likelihood runs on pytensor's numba backend and, through
generated C code (:mod:`pymc_dlm.kalman.fused.ccode`), on its C backends (see
:mod:`pymc_dlm.kalman.fused.ops`). The scans of :mod:`pymc_dlm.kalman.filter` and
:mod:`pymc_dlm.kalman.univariate` stay the definition and run on the other backends (JAX,
PyTorch, MLX, the Python linker).

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

Array layout (:mod:`~pymc_dlm.kalman.fused.layout`): every input has one leading batch axis
of length 1 (shared) or ``n_batch``, and the time-varying ones a time axis of length 1
(constant) or T: ``y (n_batch, T, p)``, ``F (n_batch, TF, p, n)``, ``G (n_batch, TG, n, n)``,
``W_sqrt (n_batch, TW, n, k)`` (the factor :math:`L_W`), ``obs_sd (n_batch, TV, p)``
(observation standard deviations), ``m0 (n_batch, n)``, ``C0 (n_batch, n, c)`` (the factor
:math:`L_0`), ``Pinf_sqrt (n_batch, n, d)`` (the diffuse factor, d = 0 for a proper prior).

Accuracy: this is the covariance form. With ordinary priors it agrees with the square-root
scan to ~1e-13 relative; with a vague prior (C0 = 1e7) and tiny observation variances it
loses digits to cancellation in :math:`R - uu^\top/f` (measured in the tests), which the
square-root scan does not.

Modules: the structures passed around are declared in
:mod:`~pymc_dlm.kalman.fused.records`, the per-step routines are in
:mod:`~pymc_dlm.kalman.fused.steps`, the forward pass in
:mod:`~pymc_dlm.kalman.fused.forward`, the square-root route and the per-member driver in
:mod:`~pymc_dlm.kalman.fused.sqrtform`, the backward pass in
:mod:`~pymc_dlm.kalman.fused.adjoint` (its blocks in
:mod:`~pymc_dlm.kalman.fused.adjoint_steps`), the exact diffuse steps in
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

import numpy as np

from pymc_dlm.kalman.fused.adjoint import grad_outputs, loglik_grad_into, loglik_grad_kernel
from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.forward import _diffuse_work, no_moments
from pymc_dlm.kalman.fused.records import Gradients, PassBuffers
from pymc_dlm.kalman.fused.sqrtform import _filter_member
from pymc_dlm.kalman.fused.steps import (
    _borrow,
    _jit,
    _keep_alive,
    borrow_diffuse_work,
    borrow_inputs,
    borrow_record,
    no_record,
    scratch_work,
)

__all__ = [
    "loglik_kernel",
    "loglik_into",
    "value_outputs",
    "steady_start",
    "loglik_grad_kernel",
    "loglik_grad_into",
    "grad_outputs",
]


@_jit
def _value_pass(inp, spec):
    """Log-likelihood (n_batch,) and first steady step (n_batch,) of every member, no record."""
    # Borrowed views (``compat.borrow``): no reference counting in the calls below.
    inp = borrow_inputs(inp)
    spec = _borrow(spec)
    n_batch = inp.y.shape[0]
    n = inp.G.shape[-1]
    out = np.zeros(n_batch)
    t_ss = np.empty(n_batch, dtype=np.int64)
    vec, sq = np.empty((3, n)), np.empty((3, n, n))
    work = scratch_work(vec, sq)
    empty = no_record(n)
    rec = borrow_record(empty)
    dw_owner = _diffuse_work(n, inp.Pinf_sqrt.shape[2], 1, 1, False)  # no record: value only
    dw = borrow_diffuse_work(dw_owner)
    buf = PassBuffers(rec, work, dw, no_discounting(n))
    none = no_moments(n, inp.Pinf_sqrt.shape[2])
    for b in range(n_batch):
        run = _filter_member(inp, b, bool(0), buf, spec, none)
        out[b] = run.loglik
        t_ss[b] = run.t_ss
    _keep_alive((vec, sq, empty, dw_owner))
    return out, t_ss


@_jit
def value_outputs(out):
    """The ``out`` of :func:`loglik_grad_into` for the log-likelihood alone.

    ``out`` (n_batch,) receives the log-likelihood; the gradients are empty arrays of the
    inputs' ranks, never touched when no gradient is wanted.
    """
    return Gradients(
        loglik=out,
        d_y=np.empty((0, 0, 0)),
        d_F=np.empty((0, 0, 0, 0)),
        d_G=np.empty((0, 0, 0, 0)),
        d_W_sqrt=np.empty((0, 0, 0, 0)),
        d_obs_sd=np.empty((0, 0, 0)),
        d_m0=np.empty((0, 0)),
        d_C0=np.empty((0, 0, 0)),
        d_Pinf_sqrt=np.empty((0, 0, 0)),
    )


@_jit
def loglik_into(inp, spec, out):
    """The log-likelihood per batch member of ``inp`` written into ``out`` (n_batch,).

    :func:`loglik_grad_into` with no gradient wanted (no record, no backward pass): the
    value and the gradient are one compiled routine. ``inp``: a :class:`~.records.Inputs`;
    ``spec`` (int64, 2): see ``forward._forward``; zeros for the general routine.
    """
    need = np.zeros(len(inp), dtype=np.bool_)
    loglik_grad_into(inp, np.zeros(1), need, spec, value_outputs(out))


@_jit
def loglik_kernel(inp):
    """Log-likelihood per batch member (n_batch,); -inf where a forecast variance is not > 0.

    ``inp``: a :class:`~.records.Inputs`. ``Pinf_sqrt`` (n_batch, n, d): the orthonormal
    diffuse factor at step 1 (then ``m0``, ``C0`` are the predicted moments of step 1, see
    :mod:`~pymc_dlm.kalman.fused.forward`), or d = 0 for a proper prior.
    """
    out = np.empty(inp.y.shape[0])
    loglik_into(inp, np.zeros(2, dtype=np.int64), out)
    return out


@_jit
def steady_start(inp):
    """First steady step of every batch member of ``inp`` (T when it never settles).

    For tests and diagnostics: the steps from there on reuse the last gains (``_forward``).
    """
    return _value_pass(inp, np.zeros(2, dtype=np.int64))[1]
