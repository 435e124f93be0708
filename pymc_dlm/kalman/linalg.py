"""Small linear-algebra helpers for batched matrices (..., m, n)."""

import pytensor.tensor as pt
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import applys_between
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.linalg import Eigh, qr, solve_triangular

__all__ = ["mT", "matvec", "outer_factor", "stacked_eigh", "triangularize"]


def mT(x):
    """Transpose of the last two axes."""
    return pt.swapaxes(x, -1, -2)


def matvec(A, x):
    """A @ x for matrices (..., m, n) and vectors (..., n)."""
    return pt.matmul(A, x[..., None])[..., 0]


def triangularize(pre):
    r"""Upper-triangular :math:`U` with :math:`U^\top U = A^\top A` for a pre-array A (..., m, n).

    The orthogonal (QR) triangularization of the array algorithms of square-root filtering
    (Kailath, Sayed & Hassibi 2000, §12.3): no product :math:`A^\top A` is ever formed. The
    rows are signed so that the diagonal is non-negative: :math:`U^\top` is then the lower
    Cholesky factor of :math:`A^\top A` when that is positive definite, the factor the numba
    kernels use, so that both routes turn the same standard normals into the same draws.
    """
    U = qr(pre, mode="economic")[1]
    diag = pt.diagonal(U, axis1=-2, axis2=-1)
    return U * pt.switch(pt.lt(diag, 0.0), -1.0, 1.0)[..., :, None]


def outer_factor(U):
    r""":math:`U^\top U`, symmetric by construction."""
    return pt.matmul(mT(U), U)


def lower_solve(U, b):
    r"""Solve :math:`U^\top z = b` for an upper-triangular U (..., p, p) and b (..., p)."""
    if U.type.shape[-1] == 1:
        return b / U[..., 0, :]
    return solve_triangular(mT(U), b[..., None], lower=True, b_ndim=2)[..., 0]


def stacked_eigh(outputs):
    """Batched ``eigh`` in one numpy call instead of a Python loop over the batch.

    The diffuse filter factors its covariances with ``eigh`` on every time step; pytensor's
    Python implementation of a batched op loops over the batch. ``numpy.linalg.eigh`` is a
    gufunc that loops in C over the same LAPACK routine family (``syevd``).
    """
    replace = {}
    for node in applys_between([], outputs):
        op = node.op
        if isinstance(op, Blockwise) and isinstance(op.core_op, Eigh) and len(node.inputs) == 1:
            eigh = Blockwise(op.core_op, op.signature, gufunc_spec=("numpy.linalg.eigh", 1, 2))
            new = eigh(*node.inputs)
            replace.update(zip(node.outputs, new))
    return graph_replace(outputs, replace) if replace else outputs
