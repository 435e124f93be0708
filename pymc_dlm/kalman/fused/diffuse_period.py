r"""The length of a discounted filter's exact diffuse period: steps until :math:`P_\infty = 0`.

The factor :math:`B` of the diffuse part of the discounted filter
(:mod:`pymc_dlm.kalman.discount`) does not depend on the data's values or on the finite part:
it starts at the unit columns :math:`A` of the diffuse states, is predicted as :math:`G_t B`,
and every informative scalar (:math:`F_\infty = \|B^\top z\|^2 > \tau^2 \|z\|^2 \|B\|_F^2`,
:math:`\tau` = :data:`~pymc_dlm.kalman.constants.DIFFUSE_TOL`) removes one column exactly by a
Householder reflection (:func:`pymc_dlm.kalman.diffuse.eliminate`). After the d-th
informative scalar :math:`B = 0` and the filter is an ordinary one. :func:`diffuse_period`
repeats that recursion (the same rule, in numba) and returns the number of steps K after
which every batch member's :math:`B` is zero (T when some member's never is), so that the
log-likelihood can run the scan for K steps and the kernel of
:mod:`pymc_dlm.kalman.fused.discounted` from there. The scan checks :math:`B_K = 0` itself.
"""

import math
import sys

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from pymc_dlm.compat import numba_graph_njit, register_numba_funcify
from pymc_dlm.kalman.constants import DIFFUSE_TOL
from pymc_dlm.kalman.fused import native

__all__ = ["DiffusePeriod", "diffuse_period"]

_jit = numba.njit(cache=True, nogil=True, error_model="numpy")


@_jit
def _eliminate(B, u):
    """``B (I - u u' / u'u)`` with column argmax |u| set to exactly zero (Householder)."""
    n, d = B.shape
    k = 0
    for j in range(d):
        if abs(u[j]) > abs(u[k]):
            k = j
    norm = math.sqrt(np.sum(u * u))
    v = u.copy()
    v[k] += norm if u[k] >= 0 else -norm
    scale = 2.0 / np.sum(v * v)
    Bv = B @ v
    for r in range(n):
        for j in range(d):
            B[r, j] -= scale * Bv[r] * v[j]
        B[r, k] = 0.0


@_jit
def diffuse_period(y, F, G, A, tol):
    """Steps K (int) until the diffuse factor of every member of ``y`` (B, T, p) is zero.

    ``F`` (1 or B, 1 or T, p, n), ``G`` (1 or B, 1 or T, n, n): canonical layout; ``A``
    (n, d) the unit columns of the diffuse states. Returns T when some member's factor is
    never zero (its log-likelihood is then -inf).
    """
    n_batch, T, p = y.shape
    d = A.shape[1]
    longest = 0
    for b in range(n_batch):
        bF, bG = min(b, F.shape[0] - 1), min(b, G.shape[0] - 1)
        B = A.copy()
        left = d
        t = 0
        while left > 0 and t < T:
            B = np.ascontiguousarray(G[bG, min(t, G.shape[1] - 1)]) @ B
            z_all = F[bF, min(t, F.shape[1] - 1)]
            for i in range(p):
                if left == 0 or math.isnan(y[b, t, i]):
                    continue
                z = np.ascontiguousarray(z_all[i])
                u = B.T @ z
                if np.sum(u * u) > tol * tol * np.sum(z * z) * np.sum(B * B):
                    _eliminate(B, u)
                    left -= 1
            t += 1
        longest = max(longest, t if left == 0 else T)
    return longest


class DiffusePeriod(Op):
    """:func:`diffuse_period` as a node: inputs y, F, G (canonical); output an int64 scalar."""

    __props__ = ("A_bytes", "n", "d")

    def __init__(self, A):
        A = np.asarray(A, dtype="float64")
        self.n, self.d = A.shape
        self.A_bytes = A.tobytes()

    def _A(self):
        return np.frombuffer(self.A_bytes, dtype="float64").reshape(self.n, self.d)

    def make_node(self, y, F, G):
        """Canonical y, F, G (:mod:`~pymc_dlm.kalman.fused.discounted_ops`); an int64 scalar."""
        inputs = [pt.as_tensor_variable(x) for x in (y, F, G)]
        return Apply(self, inputs, [pt.scalar(dtype="int64")])

    def infer_shape(self, node, input_shapes):
        """A scalar."""
        return [()]

    def pullback(self, inputs, outputs, cotangents):
        """An integer: no gradient flows through it."""
        return [pt.zeros_like(x) for x in inputs]

    def perform(self, node, inputs, outputs):
        """Run :func:`diffuse_period`."""
        y, F, G = (np.ascontiguousarray(x, dtype="float64") for x in inputs)
        K = diffuse_period(y, F, G, self._A(), DIFFUSE_TOL)
        outputs[0][0] = np.asarray(K, dtype="int64")


@register_numba_funcify(DiffusePeriod)
def _numba_diffuse_period(op, node=None, **kwargs):
    A = op._A()
    tol = DIFFUSE_TOL

    @numba_graph_njit
    def diffuse_period_numba(y, F, G):
        return np.array(np.int64(diffuse_period(y, F, G, A, tol)))  # a 0-d array

    return diffuse_period_numba, native._source_hash(sys.modules[__name__], extra=op.A_bytes.hex())
