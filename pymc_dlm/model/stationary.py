r"""The stationary initial covariance of a block, :math:`C_0 = G C_0 G^\top + W`.

Solved as a pytensor expression (the discrete Lyapunov equation, by the Kronecker form
:math:`(I - G \otimes G)\,\mathrm{vec}\,C_0 = \mathrm{vec}\,W`), so that it follows sampled
parameters, with a factor that stays exact when the covariance is singular (an AR(2) with
:math:`\phi_2 = 0` has a rank-one stationary covariance).

References
----------
Durbin & Koopman (2012), *Time Series Analysis by State Space Methods*, §5.6.2;
Golub & Van Loan (2013), *Matrix Computations*, §4.2.8 (semi-definite Cholesky).
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.tensor.blockwise import Blockwise
from pytensor.tensor.linalg import solve_discrete_lyapunov

__all__ = ["semidefinite_cholesky", "spectral_radius", "stationary_cov"]

#: Eigenvalue moduli within this of one count as unit roots: a rotation's computed moduli
#: are one only up to rounding, and its Lyapunov system is then numerically singular.
UNIT_ROOT_TOL = 1e-12


def _no_derivative(inputs, outputs, cotangents):
    return [pt.zeros_like(inputs[0])]


def spectral_radius(G):
    r""":math:`\max_i |\lambda_i(G)|` over the batch axes of ``G`` (..., n, n), ``inf`` if NaN.

    A condition, not a value: one graph node whose derivative is zero, so that no gradient is
    ever taken through the complex eigen-decomposition inside it. Plain pytensor, so every
    backend (numba, C, Python, JAX) runs it. A 1×1 ``G`` is its own eigenvalue: no complex
    number enters the graph (pytensor's C backend cannot compile the complex scalar code that
    its rewrites make of a 1×1 ``eig``).
    """
    n = G.type.shape[-1]
    x = pt.tensor("G", dtype="float64", shape=(n, n))
    finite = pt.all(pt.isfinite(x))
    if n == 1:
        modulus = pt.abs(x[0, 0])
    else:
        modulus = pt.max(pt.abs(pt.linalg.eig(pt.switch(finite, x, 0.0))[0]))
    radius = pt.switch(finite, modulus, np.inf)
    op = OpFromGraph([x], [radius], pullback=_no_derivative, name="SpectralRadius")
    if G.ndim == 2:
        return op(G)
    return Blockwise(op, signature="(n,n)->()")(G)


def stationary_cov(G, W):
    r"""The stationary covariance of :math:`\theta_t = G \theta_{t-1} + w_t`, its factor, a flag.

    Parameters
    ----------
    G : TensorVariable, shape (..., n, n)
        Transition matrix.
    W : TensorVariable, shape (..., n, n)
        State noise covariance (positive semi-definite).

    Returns
    -------
    C0, C0_sqrt : TensorVariable, shape (..., n, n)
        :math:`C_0` and a lower-triangular factor, :math:`C_0 = L L^\top`.
    stable : TensorVariable of bool, shape (...)
        Whether every eigenvalue of ``G`` lies inside the unit circle (modulus below
        ``1 - UNIT_ROOT_TOL``). Where it does
        not there is no stationary distribution: the equation is then solved with ``G = 0``
        (a finite stand-in, with finite derivatives) and the caller must treat the parameters
        as invalid.
    """
    stable = pt.lt(spectral_radius(G), 1.0 - UNIT_ROOT_TOL)
    # A unit-modulus eigenvalue makes I - G (x) G singular; never hand that to the solver.
    G_safe = pt.switch(stable[..., None, None], G, 0.0)
    C0 = solve_discrete_lyapunov(G_safe, W, method="direct")
    C0 = 0.5 * (C0 + pt.swapaxes(C0, -1, -2))
    return C0, semidefinite_cholesky(C0), stable


def semidefinite_cholesky(X, rtol=1e-12):
    r"""Lower-triangular :math:`L` with :math:`X = L L^\top` for a positive semi-definite ``X``.

    The column Cholesky recursion

    .. math::

        d_j = X_{jj} - \sum_{k<j} L_{jk}^2, \qquad
        L_{ij} = \Bigl(X_{ij} - \sum_{k<j} L_{ik} L_{jk}\Bigr) / \sqrt{d_j} \quad (i \ge j),

    where a pivot :math:`d_j \le \mathrm{rtol} \cdot \max_i X_{ii}` (zero up to rounding)
    gives a zero column: for a PSD matrix its column below the pivot is then zero as well. On a
    positive definite matrix this is the ordinary Cholesky factor. Unrolled over the static
    size ``n`` (small blocks); differentiable, with finite derivatives at singular points.
    """
    n = X.type.shape[-1]
    if n is None:
        raise ValueError("semidefinite_cholesky needs a matrix of static size")
    scale = pt.max(pt.abs(pt.diagonal(X, axis1=-2, axis2=-1)), axis=-1)
    tol = rtol * scale
    rows = np.arange(n)
    cols = []
    for j in range(n):
        x = X[..., :, j]
        for c in cols:
            x = x - c * c[..., j, None]
        d = x[..., j]
        positive = d > tol
        root = pt.sqrt(pt.switch(positive, d, 1.0))
        col = pt.switch(positive[..., None], x / root[..., None], 0.0)
        cols.append(col * (rows >= j))
    return pt.stack(cols, axis=-1)
