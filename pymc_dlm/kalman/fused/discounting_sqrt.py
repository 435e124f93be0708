r"""Component discounting and a learned observation variance in the square-root steps.

The helpers :mod:`~pymc_dlm.kalman.fused.sqrtform` calls when its
:class:`~pymc_dlm.kalman.fused.records.Discounting` is on, the square-root counterparts of
:mod:`~pymc_dlm.kalman.fused.discounting` (West & Harrison 1997, §6.3, §10.8).

The discounted prediction :math:`R_t = P_t + D \circ P_t + L_W L_W^\top` with
:math:`P_t = G_t C_{t-1} G_t^\top = A^\top A`, :math:`A = U_{t-1} G_t^\top`, and
:math:`D_{ij} = 1/\delta_b - 1` on the states of a discounted block :math:`b` (zero
elsewhere). On block :math:`b`, :math:`(D \circ P)_{bb} = (1/\delta_b - 1) A_{:,b}^\top
A_{:,b}`, so :math:`R_t = M^\top M` for the array

.. math::

    M = \begin{bmatrix} A \\ \sqrt{1/\delta_1 - 1}\, A E_1 \\ \vdots \\
    \sqrt{1/\delta_B - 1}\, A E_B \\ L_W^\top \end{bmatrix},

with :math:`E_b` the diagonal 0/1 selection of block :math:`b`'s columns: its QR gives the
predicted factor with no covariance formed. :func:`discount_rows` writes shorter middle rows:
it first triangularises :math:`A` (:math:`A = Q R`, :math:`R^\top R = P`); the columns of
:math:`R E_b` are zero below the row of the block's last state :math:`l_b`, so
:math:`\sqrt{1/\delta_b - 1}` times the rows :math:`0 .. l_b` of :math:`R E_b` serve, and
the reflections of the final QR skip the rows that are zero in the column they reduce
(:func:`~.householder._triangularize`).

A learned variance (unit scale, :math:`h = 1`): the update's QR gives, for the q observed
scalars in order, the conditional forecast variances :math:`f_j = (U_Q)_{jj}^2` and the
whitened innovations :math:`z_j`, :math:`z_j^2 = v_j^2 / f_j`, those of the univariate
treatment, so each takes the Student-t step of the covariance form
(``discounting._student_step``) (:func:`learned_terms`).

References
----------
West, M. and Harrison, J. (1997). *Bayesian Forecasting and Dynamic Models*, 2nd ed.,
§6.3, §10.8. Durbin, J. and Koopman, S. J. (2012). *Time Series Analysis by State Space
Methods*, 2nd ed., §6.3 (square-root filtering), §6.4 (univariate treatment).
"""

import math

import numpy as np

from pymc_dlm.kalman.fused.discounting import _student_step
from pymc_dlm.kalman.fused.householder import _triangularize
from pymc_dlm.kalman.fused.steps import _inline

__all__ = []  # private to the kernels


@_inline
def _leads(blocks, delta, r):
    """Whether state ``r`` is the first state of a discounted block with a discount below 1."""
    if not (blocks[r, r] != 0.0 and delta[r] < 1.0):
        return False
    for c in range(r):
        if blocks[r, c] != 0.0:
            return False
    return True


@_inline
def _last_state(blocks, lead):
    """The last state of the block whose first state is ``lead``."""
    last = lead
    for c in range(lead, blocks.shape[0]):
        if blocks[lead, c] != 0.0:
            last = c
    return last


@_inline
def discount_rows_count(dsc, n):
    """The most rows :func:`discount_rows` writes (0 when not ``dsc.on``)."""
    if not dsc.on:
        return 0
    count = 0
    for r in range(n):
        if _leads(dsc.blocks, dsc.delta, r):
            count += _last_state(dsc.blocks, r) + 1
    return count


@_inline
def discount_rows(dsc, pre, n):
    r"""Below the rows ``pre[:n]`` (:math:`A`), rows whose cross-product is :math:`D \circ P`.

    When a block is discounted, ``pre[:n]`` is first triangularised (:math:`A \to R`, the
    same :math:`R^\top R = P`); a block b's columns of :math:`R` are zero below the row of
    its last state :math:`l_b`, so the rows :math:`0 .. l_b` of :math:`\sqrt{1/\delta_b - 1}
    \, R E_b` give :math:`(1/\delta_b - 1) E_b P E_b` (module docstring). Returns the index
    of the row after the last one written (``n`` when nothing is discounted).
    """
    row = n
    if not dsc.on:
        return row
    blocks, delta = dsc.blocks, dsc.delta
    for lead in range(n):
        if not _leads(blocks, delta, lead):
            continue
        if row == n:
            _triangularize(pre[:n])
        last = _last_state(blocks, lead)
        scale = math.sqrt(1.0 / delta[lead] - 1.0)
        for i in range(last + 1):
            for c in range(n):
                pre[row + i, c] = scale * pre[i, c] if blocks[lead, c] != 0.0 else 0.0
        row += last + 1
    return row


@_inline
def upper_of_covariance(C, U):
    r"""``U`` upper triangular with :math:`U^\top U = C`, for a positive semi-definite ``C``.

    The Cholesky factor, by columns; a pivot within :math:`n \epsilon` of the largest
    diagonal entry is a zero direction of ``C`` and gives a zero row. Returns False (``U``
    then holds NaN) when ``C`` has a negative pivot beyond that, or a non-finite entry.
    """
    n = C.shape[0]
    largest = 0.0
    for r in range(n):
        largest = max(largest, abs(C[r, r]))
    tol = n * 2.220446049250313e-16 * largest
    for r in range(n):
        for c in range(n):
            U[r, c] = 0.0
    for j in range(n):
        pivot = C[j, j]
        for k in range(j):
            pivot -= U[k, j] * U[k, j]
        if not math.isfinite(pivot) or pivot < -tol:
            U[:, :] = np.nan
            return False
        if pivot <= tol:
            continue  # a zero direction: row j stays zero
        root = math.sqrt(pivot)
        U[j, j] = root
        for c in range(j + 1, n):
            acc = C[j, c]
            for k in range(j):
                acc -= U[k, j] * U[k, c]
            U[j, c] = acc / root
    return True


@_inline
def learned_terms(arr, z, q, carry, dV):
    r"""The Student-t terms of q observed scalars: ``(sum of terms, n, d)``.

    ``arr[:q, :q]`` holds :math:`U_Q` (upper, :math:`U_Q^\top U_Q` the forecast covariance
    in unit scale) and ``z[:q]`` the whitened innovations; ``carry`` the :math:`(n, d)`
    entering the step (module docstring).
    """
    nn, dd = carry
    total = 0.0
    for j in range(q):
        term, nn, dd = _student_step(nn, dd, dV, z[j] * z[j], arr[j, j] * arr[j, j])
        total += term
    return total, nn, dd
