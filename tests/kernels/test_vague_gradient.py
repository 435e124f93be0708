"""The gradient under a vague proper prior, where the value takes square-root steps.

With C0 = 1e7 against variances of 1e-3..1e-6 the kernels' accuracy guard computes the first
steps by the square-root filter (a plain covariance filter loses about 7 digits of the value
here, ``tests/kalman/test_oracle_mpmath.py``). The backward pass differentiates covariance
steps; since 2026-12-08 they are recorded from the square-root filter's moments
(``pymc_dlm/kalman/fused/head_record.py``).

Witness: central differences (step 1e-25) of a 60-digit mpmath filter on the exact binary
values of the parameters (``tests/support/mpmath_gradient.py``). Measured 2026-12-08 on the
vague trend + ``Seasonal(4)`` case: relative errors 6e-14 to 8e-14 (sds of the observation,
level, slope and season); with the record of the covariance form from the prior (the kernels
before that date) 5e-8 to 7e-7 (mutation checked: the first test then fails). With the
trend discounted (δ = 0.9, the discounted kernel): 2e-15 to 1.4e-12; that test passes with
the old record too (below 1e-10), so it witnesses the discounted gradient under a vague prior
at 1e-10 (``tests/discount/test_discount_vague.py`` asks 1e-6), not the change.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt

import pymc_dlm as dlm
from tests.support.mpmath_gradient import Scales, mpmath_gradient, mpmath_loglik_scales
from tests.support.vague_prior import C0_VAGUE, S_LEVEL, S_OBS, S_SEAS, S_SLOPE, vague_case

#: Relative error allowed on every component of the gradient (measured: at most 1.4e-12).
RTOL = 1e-10


def _gradient(components, obs, scalars, point, y):
    rv = dlm.DLM.dist(components, sigma_obs=obs, steps=len(y))
    logp = pm.logp(rv, y)
    fn = pytensor.function(scalars, [logp, *pytensor.grad(logp, scalars)])
    value, *grad = fn(*point)
    return float(value), np.array([float(g) for g in grad])


def _relative(ours, exact):
    return np.abs(ours - exact) / np.abs(exact)


def test_gradient_under_a_vague_prior_is_the_exact_one():
    ref, y = vague_case()
    s = [pt.dscalar(name) for name in ("obs", "level", "slope", "seas")]
    comp = dlm.LocalLinearTrend(s[1], s[2], m0=0.0, C0=C0_VAGUE) + dlm.Seasonal(
        4, s[3], m0=0.0, C0=C0_VAGUE
    )
    point = [S_OBS, S_LEVEL, S_SLOPE, S_SEAS]
    value, grad = _gradient(comp, s[0], s, point, y)
    model = Scales(ref.F, ref.G, C0_VAGUE, noise_states=(0, 1, 2))
    exact = mpmath_gradient(lambda o, a, b, c: mpmath_loglik_scales(model, y, o, (a, b, c)), point)
    exact_value = float(mpmath_loglik_scales(model, y, *point[:1], point[1:]))
    assert abs(value - exact_value) <= 1e-12 * abs(exact_value)
    assert np.all(_relative(grad, exact) < RTOL), (grad, exact)


def test_discounted_gradient_under_a_vague_prior_is_the_exact_one():
    ref, y = vague_case()
    s = [pt.dscalar(name) for name in ("obs", "delta", "seas")]
    comp = dlm.Polynomial(2, discount=s[1], m0=0.0, C0=C0_VAGUE) + dlm.Seasonal(
        4, s[2], m0=0.0, C0=C0_VAGUE
    )
    point = [S_OBS, 0.9, S_SEAS]
    _, grad = _gradient(comp, s[0], s, point, y)
    model = Scales(ref.F, ref.G, C0_VAGUE, noise_states=(2,), discount_block=(0, 1))
    exact = mpmath_gradient(
        lambda o, d, c: mpmath_loglik_scales(model, y, o, (c,), delta=d), point
    )
    assert np.all(_relative(grad, exact) < RTOL), (grad, exact)
