r"""The triangular factor of a QR decomposition, in place: the square-root steps' one tool.

The square-root steps of the forward pass (:mod:`~pymc_dlm.kalman.fused.sqrtform`) and of the
backward pass (:mod:`~pymc_dlm.kalman.fused.backward_sqrt`) triangularise an array whose
:math:`A^\top A` is the covariance they need: by Householder reflections
(:func:`_triangularize`), or by Givens rotations where the array is an update's, triangular
but for its first q columns (:func:`_triangularize_update`).

References
----------
Golub, G. H. and Van Loan, C. F. (2013). *Matrix Computations*, 4th ed., §5.2.2
(Householder QR), §5.1.8 and §5.2.5 (Givens rotations and Givens QR).
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.steps import _inline

__all__ = []  # private to the kernels


@_inline
def _triangularize(A):
    r"""Overwrite ``A`` (m, k) with the triangular factor of its QR decomposition, in place.

    Householder reflections, applied by rows (the inner loops run along the rows of the
    C-ordered array, and rows whose entry in the column being reduced is zero are skipped:
    the structured arrays of the square-root steps cost less). Rows may change sign against
    LAPACK's factor; the square-root filter only uses its products :math:`U^\top U` and
    ratios in which such signs cancel. Rows below ``min(m, k)`` are zeroed.
    """
    m, k = A.shape
    s = np.empty(k)
    for j in range(min(m, k)):
        norm2 = 0.0
        for i in range(j, m):
            norm2 += A[i, j] * A[i, j]
        if norm2 == 0.0:
            continue
        alpha = -math.sqrt(norm2) if A[j, j] >= 0.0 else math.sqrt(norm2)
        v0 = A[j, j] - alpha
        vtv = norm2 - A[j, j] * A[j, j] + v0 * v0
        A[j, j] = alpha
        # s = 2 (v' A[:, j+1:]) / (v'v), v = (v0, A[j+1:, j]), accumulated row by row
        for c in range(j + 1, k):
            s[c] = v0 * A[j, c]
        for i in range(j + 1, m):
            vi = A[i, j]
            if vi != 0.0:
                for c in range(j + 1, k):
                    s[c] += vi * A[i, c]
        scale = 2.0 / vtv
        for c in range(j + 1, k):
            s[c] *= scale
            A[j, c] -= s[c] * v0
        for i in range(j + 1, m):
            vi = A[i, j]
            if vi != 0.0:
                for c in range(j + 1, k):
                    A[i, c] -= s[c] * vi
                A[i, j] = 0.0
    for i in range(min(m, k), m):
        for c in range(k):
            A[i, c] = 0.0


@_inline
def _triangularize_update(A, q):
    r"""The triangular factor of the QR of an update array ``A`` (q + n, q + n), in place.

    ``A`` is :math:`[[D, 0], [B, U]]` with :math:`D` (q, q) diagonal and :math:`U` (n, n)
    upper triangular (the square-root update of :mod:`~.sqrtform`). Givens rotations of
    each of the first q rows with the rows below it, from the bottom up, zero the first q
    columns and keep :math:`U`'s block triangular: :math:`O(q n (q + n))` operations
    instead of the :math:`O((q + n)^3)` of :func:`_triangularize` on the dense array.
    """
    m = A.shape[0]
    for j in range(q):
        for i in range(m - 1, j, -1):
            below = A[i, j]
            if below == 0.0:
                continue
            top = A[j, j]
            r = math.hypot(top, below)
            c, s = top / r, below / r
            for col in range(j, m):
                x, z = A[j, col], A[i, col]
                A[j, col] = c * x + s * z
                A[i, col] = c * z - s * x
            A[i, j] = 0.0
