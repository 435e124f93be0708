r"""The identity with no derivative, kept through graph rewrites.

The gradient of the Laplace log-likelihood (:mod:`pymc_dlm.laplace.loglik`) needs terms that
count in the derivative and not in the value, :math:`f(\psi) - \mathrm{stop}(f(\psi))`.
pytensor's ``disconnected_grad`` is a ``ViewOp``, which the ``canonicalize`` rewrites remove;
PyMC rewrites the log-density that way before it differentiates it (``rewrite_pregrad`` in
``Model.logp_dlogp_function`` and ``Model.dlogp``), so the terms would cancel and their
derivative would be lost. :data:`stop_gradient` is an ``Op`` of its own, which no rewrite
knows: the identity in numba, C (Python) and JAX graphs (there ``jax.lax.stop_gradient``,
registered by :mod:`pymc_dlm.laplace.jax_mode`), disconnected for ``pytensor.grad``.
"""

import pytensor.tensor as pt
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch import numba_funcify

from pymc_dlm.compat import numba_graph_njit

__all__ = ["StopGradient", "stop_gradient"]


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
