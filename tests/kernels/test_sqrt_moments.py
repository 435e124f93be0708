"""Moments, smoothed moments and draws of the kernels' square-root steps.

Where a vague proper prior would make the covariance form lose digits, the kernels' one
forward pass (``sqrtform._filter_member``) takes square-root steps, records the filtered
factors, and the backward pass conditions on the next state in square-root form over those
steps (``backward_sqrt``). Witnesses: the dense joint Gaussian of ``tests/support/oracles``
(no Kalman recursion) and its 60-digit mpmath filter and smoother.
"""

import numpy as np
import pytest

from pymc_dlm.kalman.constants import OK
from pymc_dlm.kalman.fused.backward import backward_pass
from pymc_dlm.kalman.fused.discounting import no_discounting
from pymc_dlm.kalman.fused.forward import no_moments
from pymc_dlm.kalman.fused.moments import moment_outputs, moments_into
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.fused.sqrtform import _sqrt_head
from pymc_dlm.kalman.fused.states import ffbs_kernel
from tests.support import oracles as O
from tests.support.sqrt_case import sqrt_case

F, G, LW, SD, M0, L0, Y = sqrt_case()
T, N = Y.shape[0], G.shape[0]


def _inputs(y, L0=L0, sd=SD):
    return Inputs(
        y[None], F[None, None], G[None, None], LW[None, None], sd[None, None], M0[None],
        L0[None], np.zeros((1, N, 0)),
    )  # fmt: skip


def _recording(T):
    """Moments that record the filtered moments, the terms and the factors of T steps."""
    none = no_moments(N, 0)
    return none._replace(
        fm=np.empty((T, N)), fC=np.empty((T, N, N)), fPinf_f=np.zeros((T, N, 0)),
        ll_t=np.empty(T), fU=np.empty((T, N, N)), n_sqrt=np.zeros(1, dtype=np.int64),
    )  # fmt: skip


@pytest.fixture(scope="module")
def square_root_throughout():
    """The square-root route run to the end, and the smoothing pass over its factors."""
    y = Y
    mom = _recording(T)
    value, t_next, _, _ = _sqrt_head(_inputs(y), 0, np.inf, mom, no_discounting(N))
    assert t_next == T and mom.n_sqrt[0] == T
    sm, sC = np.empty((T, N)), np.empty((T, N, N))
    filtered = (mom.fm, mom.fC, mom.fPinf_f, mom.fU, mom.n_sqrt[0])
    found = backward_pass(
        G[None, None], LW[None, None], 0, filtered, 0, np.empty((1, 1)), (sm, sC), True
    )
    assert found
    return y, value, mom, sm, sC


def test_square_root_filtered_moments_equal_the_dense_gaussian(square_root_throughout):
    y, value, mom, _, _ = square_root_throughout
    W, V, C0 = LW @ LW.T, np.diag(SD**2), L0 @ L0.T
    exact = O.dense_filtered(F, G, W, V, M0, C0, y)
    np.testing.assert_allclose(value, exact.loglik, rtol=1e-12)
    np.testing.assert_allclose(mom.ll_t.sum(), exact.loglik, rtol=1e-12)
    np.testing.assert_allclose(mom.fm, exact.filtered_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(mom.fC, exact.filtered_cov, rtol=1e-10, atol=1e-12)
    for t in range(T):  # the recorded factors are those of the covariances
        np.testing.assert_allclose(mom.fU[t].T @ mom.fU[t], mom.fC[t], rtol=1e-12, atol=1e-14)
        assert np.array_equal(mom.fC[t], mom.fC[t].T)


def test_square_root_smoothed_moments_equal_the_dense_gaussian(square_root_throughout):
    y, _, _, sm, sC = square_root_throughout
    exact = O.dense_smoothed(F, G, LW @ LW.T, np.diag(SD**2), M0, L0 @ L0.T, y)
    np.testing.assert_allclose(sm, exact.smoothed_mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(sC, exact.smoothed_cov, rtol=1e-10, atol=1e-12)


def test_square_root_draws_equal_the_covariance_form_draws(square_root_throughout):
    """Same standard normals, same draw: the factors are the Cholesky factors of both forms.

    Well conditioned, so the covariance form is exact here: the backward pass over the
    covariance form's moments and over the square-root factors must give the same path to
    round-off (the square-root factor's signs are made those of the Cholesky factor). The
    backward passes condition on a full-rank noise (the case's own is singular, and with it
    the conditional covariance of the state given the next one: its Cholesky factor is then
    not unique, and two factors that agree to round-off in their products differ by about
    the square root of it, 3e-9 here).
    """
    y, _, mom, _, _ = square_root_throughout
    eps = np.random.default_rng(5).standard_normal((T, N))
    noise = np.hstack([LW, 0.1 * np.eye(N)])  # full rank: a unique Cholesky factor
    paths = []
    for n_sqrt in (0, T):
        path = np.empty((T, N))
        filtered = (mom.fm, mom.fC, mom.fPinf_f, mom.fU, n_sqrt)
        backward_pass(
            G[None, None],
            noise[None, None],
            0,
            filtered,
            0,
            eps,
            (path, np.empty((1, 1, 1))),
            False,
        )
        paths.append(path)
    np.testing.assert_allclose(paths[1], paths[0], rtol=1e-10, atol=1e-12)
    assert np.abs(paths[0] - mom.fm).max() > 0.1  # the draws are not the means


def _late_case():
    """Local level, noise sd 10 for 5 steps then 1e-3 (``test_fused``'s late cancellation).

    The first prediction is well conditioned, the covariance form meets cancellation from
    step 6, so the forward pass is the square-root filter's over the whole series.
    """
    rng = np.random.default_rng(3)
    n_steps = 20
    sd = np.where(np.arange(n_steps) < 5, 10.0, 1e-3)
    y = np.cumsum(2.0 * rng.normal(size=n_steps)) + sd * rng.normal(size=n_steps)
    inputs = Inputs(
        y[None, :, None], np.ones((1, 1, 1, 1)), np.ones((1, 1, 1, 1)),
        np.full((1, 1, 1, 1), 2.0), sd[None, :, None], np.zeros((1, 1)),
        np.full((1, 1, 1), 10.0), np.zeros((1, 1, 0)),
    )  # fmt: skip
    return y, sd, inputs


def test_moments_of_a_late_cancellation_equal_the_mpmath_smoother():
    """Filtered and smoothed moments, and the FFBS path with zero noise (the smoothed mean)."""
    y, sd, inputs = _late_case()
    n_steps = len(y)
    out = moment_outputs(1, n_steps, 1, 0)
    moments_into(inputs, out, 0, 1)
    assert out.status[0] == OK
    V = sd[:, None, None] ** 2
    exact = O.mpmath_filter([[1.0]], [[1.0]], [[4.0]], V, 0.0, 100.0, y, smooth=True)
    np.testing.assert_allclose(out.ll_t[0].sum(), exact.loglik, rtol=1e-12)
    np.testing.assert_allclose(out.fm[0], exact.filtered_mean, rtol=1e-11)
    np.testing.assert_allclose(out.fC[0], exact.filtered_cov, rtol=1e-10)
    np.testing.assert_allclose(out.pR[0], exact.predicted_cov, rtol=1e-10)
    np.testing.assert_allclose(out.sm[0], exact.smoothed_mean, rtol=1e-11)
    np.testing.assert_allclose(out.sC[0], exact.smoothed_cov, rtol=1e-10)
    zero = np.zeros((1, n_steps, 1))
    _, path, ll_t, status = ffbs_kernel(inputs, zero, zero)
    assert status[0] == OK
    np.testing.assert_allclose(path[0], exact.smoothed_mean, rtol=1e-11)
    np.testing.assert_allclose(ll_t[0].sum(), exact.loglik, rtol=1e-12)
