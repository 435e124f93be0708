"""The compiled log-density of a discounted model runs one forward pass, and is never NaN.

On numba, the value of the log-likelihood comes from the kernels' gradient node (its forward
pass), so the compiled ``logp_dlogp`` function holds that node alone, for a proper and for
an exact diffuse start (where the diffuse period's scan is split off in front of it). This
needs the value to stay out of the gradient's cotangent: the log-density therefore has no
NaN test of the kernels' value, which must give -inf, never NaN, where a forecast variance
is zero. Witness for that: the degenerate model itself (no state noise, a point-mass prior,
no observation noise: f = 0 at the first step), on numba and on the scan definitions
(``FAST_COMPILE``). A constant G gets the straight-line sandwiches of
``kalman.fused.specialize`` in the discounted kernel too: the compiled log-density and
gradient are bitwise equal with and without them (the general routine is the witness; the
kernel's numbers against the oracles are in ``test_discount_kernel.py``).
"""

import functools

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from pymc_dlm.kalman.fused import ops, specialize
from pymc_dlm.kalman.fused.discounted_kernel_nodes import (
    KernelDiscountLoglik,
    KernelDiscountLoglikGrad,
)
from tests.support.bitwise import assert_bitwise_equal
from tests.support.discount_cases import M0_SEAS, MISSING, T, series

Y = series(23, MISSING)


def _model(start):
    init = {} if start == "diffuse" else {"C0": 2.0}
    with pm.Model() as model:
        d_level = pm.Beta("d_level", 20.0, 2.0)
        d_seas = pm.Beta("d_seas", 20.0, 2.0)
        n0 = pm.Gamma("n0", 2.0, 0.5)
        S0 = pm.Gamma("S0", 2.0, 0.5)
        components = dlm.LocalLevel(discount=d_level, m0=0.0, **init) + dlm.Seasonal(
            4, discount=d_seas, m0=M0_SEAS, **init
        )
        dlm.DLM("y", components, obs_var=dlm.LearnedVariance(n0, S0), observed=Y)
    return model


def _compile(start):
    model = _model(start)
    fn = model.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
    fn.set_extra_values({})
    return model, fn


@functools.cache
def _compiled(start):
    """The model and its compiled log-density, shared by the tests (about 20 s each)."""
    return _compile(start)


@pytest.mark.parametrize("start", ["proper", "diffuse"])
def test_one_kernel_node_gives_value_and_gradient(start):
    fn = _compiled(start)[1]._pytensor_function
    kinds = [type(n.op) for n in fn.maker.fgraph.apply_nodes]
    assert KernelDiscountLoglikGrad in kinds
    assert KernelDiscountLoglik not in kinds


@pytest.mark.parametrize("mode", ["NUMBA", "FAST_COMPILE"])
def test_a_zero_forecast_variance_gives_minus_inf_not_nan(mode):
    sd = pt.dscalar("sd")
    level = dlm.LocalLevel(discount=1.0, m0=0.5, C0=0.0)
    logp = pm.logp(dlm.DLM.dist(level, sigma_obs=sd, steps=T), Y)
    fn = pytensor.function([sd], [logp, pytensor.grad(logp, sd)], mode=mode)
    value, grad = fn(0.0)
    assert value == -np.inf
    assert not np.isnan(grad)
    assert np.isfinite(fn(0.7)[0])


def _grad_node(fn):
    nodes = fn._pytensor_function.maker.fgraph.apply_nodes
    (node,) = [n for n in nodes if isinstance(n.op, KernelDiscountLoglikGrad)]
    return node


@pytest.mark.parametrize("start", ["proper", "diffuse"])
def test_straight_line_sandwiches_are_bitwise_the_general_routine(start, monkeypatch):
    model, fast = _compiled(start)
    assert ops.sandwiches(_grad_node(fast))[0] is not ops._no_sandwich  # G is a constant
    monkeypatch.setattr(specialize, "MAX_TERMS", 0)
    _, general = _compile(start)
    assert ops.sandwiches(_grad_node(general))[0] is ops._no_sandwich
    assert_bitwise_equal(model, fast, general, np.random.default_rng(6))
