"""The adjoint kernel asked for the gradients of the data and of m0 alone.

The log-likelihood depends on the data and on m0 through the means only, so the backward pass
then carries the adjoints of the means and skips the covariances' (the mode search of the
count families runs it at every Newton step but the last). Two witnesses: the full backward
pass (every gradient asked for) gives the same numbers to the last bit, and central
differences of the log-likelihood's value give them to about 1e-7. The cases cover what the
backward pass branches on: a proper prior with missing values that reaches the steady-state
route, an exact diffuse start with two series and a missing component inside the diffuse
period, and a batch with per-member weights.
"""

import numpy as np
import pytest

from pymc_dlm.kalman.fused import native
from pymc_dlm.kalman.fused.kernels import steady_start
from pymc_dlm.kalman.fused.records import Gradients, Inputs

RNG = np.random.default_rng(20261206)

#: ``need`` flags (order y, F, G, W_sqrt, obs_sd, m0, C0, Pinf_sqrt).
MEANS = np.array([True, False, False, False, False, True, False, False])
#: Every gradient but F's and G's, whose records turn the steady-state route off (the same
#: forward pass as ``MEANS``).
COVARIANCES = np.array([True, False, False, True, True, True, True, True])


def _proper():
    """Trend plus AR(1), a proper prior, T = 300 with two gaps: the steady route is taken."""
    T = 300
    y = np.cumsum(RNG.normal(size=T)) + RNG.normal(size=T)
    y[[5, 70]] = np.nan
    F = np.array([[1.0, 0.0, 1.0]])
    G = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.6]])
    W_sqrt = np.diag([0.3, 0.05, 0.5])
    C0 = np.array([[3.0, 0.0, 0.0], [0.5, 1.0, 0.0], [0.0, 0.0, 1.2]])
    canon = [y[None, :, None], F[None, None], G[None, None], W_sqrt[None, None],
             np.array([[[0.8]]]), np.array([[0.5, -0.1, 0.0]]), C0[None],
             np.zeros((1, 3, 0))]  # fmt: skip
    return canon, np.ones(1)


def _diffuse_bivariate():
    """Two series on a diffuse random-walk pair; a component missing in the diffuse period."""
    T = 60
    y = np.cumsum(RNG.normal(size=(T, 2)), axis=0)
    y[0, 1] = np.nan
    y[25, 0] = np.nan
    F = np.array([[1.0, 0.0], [0.7, 1.0]])
    W_sqrt = np.array([[0.4, 0.0], [0.1, 0.3]])
    canon = [y[None], F[None, None], np.eye(2)[None, None], W_sqrt[None, None],
             np.array([[[0.6, 0.9]]]), np.zeros((1, 2)), np.zeros((1, 2, 2)),
             np.eye(2)[None]]  # fmt: skip
    return canon, np.ones(1)


def _batch():
    """Two members sharing a local level's system, weighted 1 and 0.5."""
    T = 50
    y = np.cumsum(RNG.normal(size=(2, T)), axis=1)
    y[0, 3] = np.nan
    y[1, 44] = np.nan
    ones = np.ones((1, 1, 1, 1))
    canon = [y[..., None], ones, ones, 0.5 * ones, np.array([[[0.7]]]),
             np.array([[0.2], [-0.3]]), np.array([[[4.0]]]), np.zeros((1, 1, 0))]  # fmt: skip
    return canon, np.array([1.0, 0.5])


CASES = [_proper, _diffuse_bivariate, _batch]


def loglik_grad(canon, g, need):
    """The compiled entry (what graphs call), its outputs NaN beforehand: all are written."""
    native.register()
    out = Gradients(np.full(canon[0].shape[0], np.nan), *(np.full_like(c, np.nan) for c in canon))
    mask = sum(1 << i for i, wanted in enumerate(need) if wanted)
    native.call_loglik_grad(Inputs(*canon), g, mask, (0, 0), out)
    return out


def _weighted_value(canon, g):
    return float(np.dot(g, loglik_grad(canon, g, np.zeros(8, dtype=bool)).loglik))


def _central(canon, g, index, slot, eps=1e-5):
    """Central difference of the weighted log-likelihood in ``canon[slot][index]``."""
    up = [c.copy() for c in canon]
    down = [c.copy() for c in canon]
    up[slot][index] += eps
    down[slot][index] -= eps
    return (_weighted_value(up, g) - _weighted_value(down, g)) / (2 * eps)


@pytest.mark.parametrize("case", CASES, ids=lambda f: f.__name__)
def test_means_only_gradients_equal_the_full_pass_and_central_differences(case):
    canon, g = case()
    canon = [np.ascontiguousarray(c, dtype=np.float64) for c in canon]
    means = loglik_grad(canon, g, MEANS)
    every = loglik_grad(canon, g, COVARIANCES)
    np.testing.assert_array_equal(means.loglik, every.loglik)
    np.testing.assert_array_equal(means.d_y, every.d_y)
    np.testing.assert_array_equal(means.d_m0, every.d_m0)
    # Skipped gradients are zeros, not left-overs.
    for skipped in (means.d_W_sqrt, means.d_obs_sd, means.d_C0, means.d_G):
        assert not np.any(skipped)
    y = canon[0]
    observed = np.argwhere(~np.isnan(y))
    picks = observed[RNG.choice(len(observed), size=6, replace=False)]
    for index in [tuple(i) for i in picks]:
        np.testing.assert_allclose(
            means.d_y[index], _central(canon, g, index, 0), rtol=1e-6, atol=1e-8
        )
    assert np.all(means.d_y[np.isnan(y)] == 0.0)
    for index in np.ndindex(canon[5].shape):
        np.testing.assert_allclose(
            means.d_m0[index], _central(canon, g, index, 5), rtol=1e-6, atol=1e-8
        )


def test_the_proper_case_reaches_the_steady_route():
    """The steady steps (more than 100 of 300) are part of what the first case differentiates."""
    canon, _ = _proper()
    canon = [np.ascontiguousarray(c, dtype=np.float64) for c in canon]
    assert steady_start(Inputs(*canon))[0] < canon[0].shape[1] - 100
