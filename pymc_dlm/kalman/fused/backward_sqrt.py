r"""Square-root steps of the backward pass, over the steps the forward pass took in that form.

Where a vague proper prior makes the covariance form lose digits, the forward pass takes
square-root steps (:mod:`~pymc_dlm.kalman.fused.sqrtform`) and keeps the filtered factors
:math:`U_t` (upper, :math:`C_t = U_t^\top U_t`). Conditioning :math:`N(m_t, C_t)` on the
next state :math:`x = \theta_{t+1} = G_{t+1}\theta_t + w`, :math:`w \sim N(0, W_{t+1})`, by
the covariance form would cancel the same digits (:math:`C_t` of order :math:`10^7` against
a :math:`W` of :math:`10^{-4}`). The array form does not: the QR decomposition of

.. math::

    \begin{pmatrix} U_W & 0 \\ U_t G^\top & U_t \end{pmatrix}
    \quad\text{is}\quad
    \begin{pmatrix} U_Q & \tilde K \\ 0 & U_\Sigma \end{pmatrix},

with :math:`U_W^\top U_W = W` (zero rows allowed: a singular W is exact), gives
:math:`U_Q^\top U_Q = R_{t+1} = G C_t G^\top + W`, :math:`\tilde K = U_Q^{-\top} G C_t` and
:math:`U_\Sigma^\top U_\Sigma = \Sigma_t = C_t - C_t G^\top R_{t+1}^{-1} G C_t`. Then
:math:`J_t = \tilde K^\top U_Q^{-\top}` and the conditional mean is
:math:`m_t + \tilde K^\top U_Q^{-\top}(x - G m_t)`, by triangular solves only. The lower
factor of :math:`\Sigma_t` is :math:`U_\Sigma^\top` with the signs of its columns made
non-negative on the diagonal (the Cholesky factor where :math:`\Sigma_t` is positive
definite), so a draw uses the same factor as the covariance form's steps.

References
----------
Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space Methods*, 2nd ed.,
§6.3 (square-root filtering and smoothing). Anderson, B. D. O. and Moore, J. B. (1979).
*Optimal Filtering*, §6.5 (array algorithms).
"""

import numpy as np

from pymc_dlm.kalman.fused.householder import _triangularize
from pymc_dlm.kalman.fused.records import SqrtBack
from pymc_dlm.kalman.fused.steps import _inline

__all__ = ["lower_of_upper", "sqrt_back", "sqrt_condition", "upper_noise_factor"]


@_inline
def sqrt_back(n, k):
    """Scratch of :func:`sqrt_condition` for n states and a noise factor of k columns."""
    return SqrtBack(
        UW=np.empty((n, n)),
        pre=np.empty((max(n, k), n)),
        arr=np.empty((2 * n, 2 * n)),
        w=np.empty(2 * n),
    )


@_inline
def upper_noise_factor(W_sqrt, bW, tW, sb):
    r"""``sb.UW`` (n, n), upper, :math:`U_W^\top U_W = L_W L_W^\top`: QR of :math:`L_W^\top`."""
    n, k = W_sqrt.shape[2], W_sqrt.shape[3]
    pre = sb.pre
    pre[:, :] = 0.0
    for j in range(k):
        for r in range(n):
            pre[j, r] = W_sqrt[bW, tW, r, j]
    _triangularize(pre)
    for i in range(n):
        for c in range(n):
            sb.UW[i, c] = pre[i, c]


@_inline
def lower_of_upper(U, L):
    r"""``L`` = :math:`U^\top` with its columns' signs making the diagonal non-negative."""
    n = U.shape[0]
    for i in range(n):
        s = -1.0 if U[i, i] < 0.0 else 1.0
        for c in range(n):
            L[c, i] = s * U[i, c] if c >= i else 0.0


@_inline
def sqrt_condition(Gt, U, m, x, sb, into, track):
    r"""Condition :math:`N(m, U^\top U)` on :math:`x = G_t\theta + w` (module docstring).

    ``Gt`` (n, n); ``U`` the upper factor of the filtered covariance; ``sb`` the scratch of
    :func:`sqrt_back` with ``sb.UW`` set (:func:`upper_noise_factor`). ``into``:
    ``(mean, L, J)``, which receive the conditional mean (first n entries), the lower
    factor of :math:`\Sigma_t` and, with ``track``, :math:`J_t`.
    """
    n = m.shape[0]
    arr, w = sb.arr, sb.w
    mean, L, J = into
    for i in range(n):
        for c in range(n):
            arr[i, c] = sb.UW[i, c]
            arr[i, n + c] = 0.0
            arr[n + i, n + c] = U[i, c]
        for r in range(n):
            acc = 0.0
            for c in range(n):
                acc += U[i, c] * Gt[r, c]
            arr[n + i, r] = acc
    _triangularize(arr)
    for r in range(n):  # the innovation x - G m, whitened by U_Q' (lower)
        acc = x[r]
        for c in range(n):
            acc -= Gt[r, c] * m[c]
        w[r] = acc
    for j in range(n):
        acc = w[j]
        for i in range(j):
            acc -= arr[i, j] * w[n + i]
        w[n + j] = acc / arr[j, j]
    for r in range(n):
        acc = m[r]
        for j in range(n):
            acc += arr[j, n + r] * w[n + j]
        mean[r] = acc
    lower_of_upper(arr[n:, n:], L)
    if track:  # J' = U_Q^{-1} K, column by column (back substitution)
        for c in range(n):
            for j in range(n - 1, -1, -1):
                acc = arr[j, n + c]
                for i in range(j + 1, n):
                    acc -= arr[j, i] * J[c, i]
                J[c, j] = acc / arr[j, j]
