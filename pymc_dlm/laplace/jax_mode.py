r"""The mode search of the Laplace log-likelihood in JAX graphs (numpyro, blackjax).

:class:`~pymc_dlm.laplace.loglik.LaplaceMode` finds the mode on the numba kernels. A JAX
graph calls it on the host through :func:`jax.pure_callback`, with its inputs behind
:func:`jax.lax.stop_gradient`: the node has no derivative of its own, exactly as in the
pytensor graph (its ``L_op`` is disconnected), and the derivative of the Laplace
log-likelihood comes from the rest of the graph (:mod:`pymc_dlm.laplace.loglik`), which JAX
differentiates like any other. ``vmap_method="sequential"``: a vectorised sampler's batch of
chains calls the search once per chain.

The conversion is registered with pytensor's ``jax_funcify`` when
``pytensor.link.jax.dispatch`` is imported (now if it already is, else by an import hook), so
that importing the package does not import JAX.
"""

import importlib.abc
import importlib.util
import sys

import numpy as np

from pymc_dlm.laplace.stop_gradient import GradientOnly, StopGradient

__all__ = ["register_when_jax_loads"]

_DISPATCH = "pytensor.link.jax.dispatch"


def _jax_mode(op, node, **kwargs):
    """A JAX function of the op's inputs that runs its ``perform`` on the host."""
    import jax  # only when pytensor converts a graph to JAX
    import jax.numpy as jnp

    def host(*inputs):
        outputs = [[None] for _ in node.outputs]
        op.perform(node, [np.asarray(x) for x in inputs], outputs)
        return tuple(np.asarray(out[0], dtype="float64") for out in outputs)

    def mode(*inputs):
        inputs = [jax.lax.stop_gradient(x) for x in inputs]
        y = inputs[5]
        shapes = tuple(  # each output's shape is a prefix of y's (the series, or their batch)
            jax.ShapeDtypeStruct(y.shape[: out.type.ndim], jnp.float64) for out in node.outputs
        )
        return jax.pure_callback(host, shapes, *inputs, vmap_method="sequential")

    return mode


def _jax_stop_gradient(op, node=None, **kwargs):
    import jax

    return jax.lax.stop_gradient


def _jax_gradient_only(op, node=None, **kwargs):
    import jax

    def gradient_only(x):  # zero, with the derivative of x for JAX's own autodiff
        return x - jax.lax.stop_gradient(x)

    return gradient_only


def _register(op_class):
    from pytensor.link.jax.dispatch import jax_funcify  # imports JAX (optional)

    jax_funcify.register(op_class)(_jax_mode)
    jax_funcify.register(StopGradient)(_jax_stop_gradient)
    jax_funcify.register(GradientOnly)(_jax_gradient_only)


class _AfterImport(importlib.abc.MetaPathFinder):
    """Finds no module itself: runs ``callback`` after the module ``name`` is executed."""

    def __init__(self, name, callback):
        self.name = name
        self.callback = callback

    def find_spec(self, fullname, path=None, target=None):
        """The module's own spec, with a loader that calls back after executing it."""
        if fullname != self.name:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _CallbackLoader(spec.loader, self.callback)
        return spec


class _CallbackLoader(importlib.abc.Loader):
    def __init__(self, loader, callback):
        self.loader = loader
        self.callback = callback

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        self.loader.exec_module(module)
        self.callback()


def register_when_jax_loads(op_class):
    """Register the JAX conversion of ``op_class`` once pytensor's JAX backend is imported."""
    if _DISPATCH in sys.modules:
        _register(op_class)
    else:
        sys.meta_path.insert(0, _AfterImport(_DISPATCH, lambda: _register(op_class)))
