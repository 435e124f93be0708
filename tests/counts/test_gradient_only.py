"""``gradient_only``: zero in value, the identity in derivative, and what it buys the graphs.

Witnesses: pytensor's own gradient of ``x**3`` (the derivative must be exactly that of the
input), PyMC's pre-gradient rewrites (they must keep the node, or the derivative is lost),
and the compiled log-density of the count families on numba, which must run the Gaussian
log-likelihoods in the kernels' gradient node only (no forward pass for a value nobody
uses). The values and gradients themselves are checked against the dense Laplace oracle in
``test_laplace.py`` and against JAX's own derivative in ``test_jax.py``.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
from pymc.pytensorf import rewrite_pregrad

import pymc_dlm as dlm
from pymc_dlm.kalman.fused.ops import FusedLoglik, FusedLoglikGrad
from pymc_dlm.laplace.stop_gradient import GradientOnly, gradient_only

Y = np.array([3.0, 5, 2, np.nan, 4, 6, 1, 3, 8, 7, 5, 9, 4, 6, 10, 12, 7, 9])


def test_value_zero_derivative_identity_on_every_mode():
    x = pt.vector("x")
    term = gradient_only(x**3)
    total = pt.sum(term) + pt.sum(x)
    grad = pytensor.grad(total, x)
    values = np.array([0.5, -1.0, 2.0])
    for mode in ("NUMBA", "FAST_COMPILE", "CVM"):
        fn = pytensor.function([x], [term, grad], mode=mode)
        value, g = fn(values)
        np.testing.assert_array_equal(value, np.zeros(3))
        np.testing.assert_allclose(g, 3 * values**2 + 1, rtol=1e-15)


def test_pymc_pregrad_rewrites_keep_the_node():
    x = pt.vector("x")
    (out,) = rewrite_pregrad([pt.sum(gradient_only(x**2))])
    nodes = pytensor.graph.traversal.applys_between([x], [out])
    assert any(isinstance(n.op, GradientOnly) for n in nodes)
    np.testing.assert_allclose(
        pytensor.function([x], pytensor.grad(out, x))(np.array([1.0, 2.0])), [2.0, 4.0]
    )


def _kernel_nodes(model):
    fn = model.logp_dlogp_function(ravel_inputs=True)._pytensor_function
    nodes = fn.maker.fgraph.apply_nodes
    assert not any(isinstance(n.op, GradientOnly) for n in nodes)
    return [type(n.op) for n in nodes if isinstance(n.op, FusedLoglik | FusedLoglikGrad)]


def test_the_laplace_gaussian_logliks_run_in_the_gradient_node_only():
    with pm.Model() as fixed:
        sigma = pm.HalfNormal("sigma", 0.3)
        dlm.DLM("y", dlm.LocalLinearTrend(sigma, 0.0), family="poisson", observed=Y)
    with pm.Model() as sampled:  # the dispersion is a parameter: three log-likelihoods
        sigma = pm.HalfNormal("sigma", 0.3)
        alpha = pm.Gamma("alpha", 4.0, 1.0)
        level = dlm.LocalLevel(sigma, m0=1.0, C0=2.0)
        dlm.DLM("y", level, family=dlm.NegativeBinomial(alpha), observed=Y)
    for model in (fixed, sampled):
        assert _kernel_nodes(model) == [FusedLoglikGrad]
