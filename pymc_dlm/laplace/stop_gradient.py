r"""The identity with no derivative, and the derivative with no value, kept through rewrites.

The gradient of the Laplace log-likelihood (:mod:`pymc_dlm.laplace.loglik`) needs terms that
count in the derivative and not in the value, :math:`f(\psi) - \mathrm{stop}(f(\psi))`.
pytensor's ``disconnected_grad`` is a ``ViewOp``, which the ``canonicalize`` rewrites remove;
PyMC rewrites the log-density that way before it differentiates it (``rewrite_pregrad`` in
``Model.logp_dlogp_function`` and ``Model.dlogp``), so the terms would cancel and their
derivative would be lost. :data:`stop_gradient` is an ``Op`` of its own, which no rewrite
knows: the identity in numba, C (Python) and JAX graphs (there ``jax.lax.stop_gradient``,
registered by :mod:`pymc_dlm.laplace.jax_mode`), disconnected for ``pytensor.grad``.

:data:`gradient_only` is that difference as one node: its value is zero and its derivative
the identity. Once the derivatives are taken, a compile-time rewrite on the numba and C
backends (not part of the rewrites PyMC applies before differentiating) replaces it by
zeros, so that the compiled function does not compute the value of :math:`f` at all. The
Gaussian log-likelihoods whose derivative alone the Laplace gradient needs then run only in
the kernels' gradient node, with no forward pass of their own for a value nobody uses. In
JAX graphs, which JAX may differentiate itself, it is :math:`x - \mathrm{stop}(x)`.
"""

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.mode import optdb
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.link.numba.dispatch import numba_funcify

from pymc_dlm.compat import numba_graph_njit

__all__ = ["GradientOnly", "StopGradient", "gradient_only", "stop_gradient"]


class StopGradient(Op):
    """``x`` unchanged; its derivative is disconnected (not zero: nothing flows back)."""

    __props__ = ()
    view_map = {0: [0]}

    def make_node(self, x):
        """One output of the type of ``x``."""
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        """The input itself (a view)."""
        outputs[0][0] = inputs[0]

    def infer_shape(self, node, shapes):
        """The input's shape."""
        return shapes

    def connection_pattern(self, node):
        """The output does not depend differentiably on the input."""
        return [[False]]

    def L_op(self, inputs, outputs, output_grads):
        """Disconnected."""
        return [disconnected_type()]


stop_gradient = StopGradient()


@numba_funcify.register(StopGradient)
def _numba_stop_gradient(op, node=None, **kwargs):
    @numba_graph_njit
    def identity(x):
        return x

    return identity


class GradientOnly(Op):
    r"""Zero, with the derivative of ``x``: :math:`x - \mathrm{stop}(x)` as one node."""

    __props__ = ()

    def make_node(self, x):
        """One output of the type of ``x``."""
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        """Zeros shaped like the input."""
        outputs[0][0] = np.zeros_like(inputs[0])

    def infer_shape(self, node, shapes):
        """The input's shape."""
        return shapes

    def pullback(self, inputs, outputs, cotangents):
        """The identity."""
        return [cotangents[0]]


gradient_only = GradientOnly()


@numba_funcify.register(GradientOnly)
def _numba_gradient_only(op, node=None, **kwargs):
    @numba_graph_njit
    def zeros(x):
        return np.zeros_like(x)

    return zeros


@node_rewriter([GradientOnly])
def _drop_gradient_only(fgraph, node):
    """Zeros in place of the node: its derivative has been taken (module docstring).

    Not ``zeros_like``, whose graph keeps the input (``fill``): the shape is the static one
    where known, else the input's symbolic shape, which the shape rewrites take from the
    input's own inputs.
    """
    x = node.inputs[0]
    shape = [s if s is not None else x.shape[i] for i, s in enumerate(x.type.shape)]
    zeros = pt.zeros(shape, dtype=x.type.dtype)
    return [zeros if zeros.type == x.type else pt.specify_shape(zeros, x.type.shape)]


# Before the kernels' rewrites (position 48), never in "canonicalize" or "stabilize", which
# PyMC runs before differentiating; on the numba and C backends only (the kernels' tags): a
# graph converted to JAX may be differentiated by JAX afterwards, and keeps the node. Each
# registration needs a rewriter object of its own (see ``kalman.fused.ops``).
for _suffix, _tags in (("", ("numba",)), ("_c", ("fast_run", "cxx_only"))):
    optdb.register(
        f"pymc_dlm_drop_gradient_only{_suffix}",
        dfs_rewriter(_drop_gradient_only),
        *_tags,
        position=47.9,
    )
