r"""The triangular factor of a QR decomposition, in place: the square-root steps' one tool.

The square-root steps of the forward pass (:mod:`~pymc_dlm.kalman.fused.sqrtform`) and of the
backward pass (:mod:`~pymc_dlm.kalman.fused.backward_sqrt`) triangularise an array whose
:math:`A^\top A` is the covariance they need.

References
----------
Golub, G. H. and Van Loan, C. F. (2013). *Matrix Computations*, 4th ed., §5.2.2
(Householder QR).
"""

import math

from pymc_dlm.kalman.fused.steps import _inline

__all__ = []  # private to the kernels


@_inline
def _triangularize(A):
    r"""Overwrite ``A`` (m, k) with the triangular factor of its QR decomposition, in place.

    Householder reflections. Rows may change sign against LAPACK's factor; the square-root
    filter only uses its products :math:`U^\top U` and ratios in which such signs cancel.
    Rows below ``min(m, k)`` are zeroed.
    """
    m, k = A.shape
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
        for c in range(j + 1, k):
            s = v0 * A[j, c]
            for i in range(j + 1, m):
                s += A[i, j] * A[i, c]
            s *= 2.0 / vtv
            A[j, c] -= s * v0
            for i in range(j + 1, m):
                A[i, c] -= s * A[i, j]
        for i in range(j + 1, m):
            A[i, j] = 0.0
    for i in range(min(m, k), m):
        for c in range(k):
            A[i, c] = 0.0
