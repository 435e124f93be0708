r"""The square-root steps' triangularisations and the discounted prediction's rows.

Witness: dense products in numpy (no QR of the package): a triangular factor R of an array
A must be upper triangular with R'R = A'A; the rows :func:`discount_rows` writes below
:math:`A` must make the cross-product :math:`P + D \circ P` with :math:`P = A^\top A` and
:math:`D_{ij} = 1/\delta_b - 1` on the states of discounted block b (West & Harrison 1997,
§6.3), here formed entry by entry.

Altered on purpose (2026-12-07), these tests fail: the Givens rotations run over the rows
from the top instead of the bottom (the factor is no longer triangular); the discounted
rows cut at the block's first state instead of its last one; the rows of A left
untriangularised before the block's rows are taken.
"""

import numpy as np
import pytest

from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.discounting_sqrt import discount_rows, discount_rows_count
from pymc_dlm.kalman.fused.householder import _triangularize, _triangularize_update


def _assert_factor(R, A, rtol=1e-12):
    assert np.allclose(np.tril(R[: R.shape[1]], -1), 0.0, atol=0.0)
    assert np.all(R[R.shape[1] :] == 0.0)
    expected = A.T @ A
    assert np.allclose(R.T @ R, expected, rtol=0.0, atol=rtol * np.abs(expected).max())


@pytest.mark.parametrize("shape", [(26, 13), (13, 13), (5, 7), (9, 4)])
def test_householder_factor_of_structured_arrays(shape):
    rng = np.random.default_rng(sum(shape))
    A = rng.normal(size=shape)
    A[1::3, : shape[1] // 2] = 0.0  # rows that are zero in the leading columns are skipped
    R = A.copy()
    _triangularize(R)
    _assert_factor(R, A)


@pytest.mark.parametrize("q", [1, 2, 3])
def test_givens_factor_of_an_update_array(q):
    rng = np.random.default_rng(q)
    n = 6
    U = np.triu(rng.normal(size=(n, n)))
    U[2, 2:] = 0.0  # a semi-definite factor: a zero row
    A = np.zeros((q + n, q + n))
    A[:q, :q] = np.diag(rng.uniform(0.1, 1.0, q))
    A[q:, :q] = rng.normal(size=(n, q))
    A[q + 4, :q] = 0.0
    A[q:, q:] = U
    R = A.copy()
    _triangularize_update(R, q)
    _assert_factor(R, A)


def _discounting(n, delta, blocks):
    dsc = no_discounting(n)
    return dsc._replace(on=True, delta=delta, blocks=blocks)


def test_discount_rows_give_the_discounted_prediction():
    n = 7
    rng = np.random.default_rng(3)
    A = rng.normal(size=(n, n))
    blocks = np.zeros((n, n))
    blocks[:2, :2] = 1.0  # trend, discounted
    blocks[2:5, 2:5] = 1.0  # a second discounted block; states 5 and 6 are not discounted
    delta = np.array([0.9, 0.9, 0.8, 0.8, 0.8, 1.0, 1.0])
    dsc = _discounting(n, delta, blocks)
    pre = np.zeros((n + discount_rows_count(dsc, n), n))
    pre[:n] = A
    rows = discount_rows(dsc, pre, n)
    assert rows == n + 2 + 5
    P = A.T @ A
    expected = P.copy()
    for r in range(n):
        for c in range(n):
            expected[r, c] += blocks[r, c] * (1.0 / delta[r] - 1.0) * P[r, c]
    got = pre[:rows].T @ pre[:rows]
    assert np.allclose(got, expected, rtol=0.0, atol=1e-12 * np.abs(expected).max())
