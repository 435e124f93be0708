r"""The log-likelihood node and its gradient node, defined by the scan filters.

:class:`KalmanLoglik` is the DLM log-likelihood of canonical inputs (the layout of
:mod:`pymc_dlm.kalman.fused.kernels`) as one plain graph node, and :class:`KalmanLoglikGrad`
the node of its gradient. Their definitions are the scan filters of :mod:`pymc_dlm.kalman`
(:func:`_definition`) and the scan's autodiff gradient; a node carries no inner graph of its
own, so building a model graph, and PyMC's passes over it (the search for random variables in
inner graphs, the pre-gradient rewrites, pickles sent to worker processes), never build the
scan. When a graph is compiled:

- on pytensor's numba and C backends the nodes become the fused kernels
  (:mod:`pymc_dlm.kalman.fused.ops`, position 48 of pytensor's rewrite database);
- on every other backend (JAX, PyTorch, MLX, ``FAST_COMPILE``, the Python linker) the
  rewrite :func:`_expand_definitions` (position 48.02, after the fused one) replaces each node
  by an ``OpFromGraph`` of its definition, whose inner graph the backend then rewrites
  and runs as it does any ``OpFromGraph``'s. Gradients of the gradient and pushforwards are
  those of the same ``OpFromGraph``.

Both nodes also run without any rewrite (``perform``: the compiled kernels).
"""

import functools

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.mode import optdb
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter

from pymc_dlm.kalman.filter import filter_scan
from pymc_dlm.kalman.fused import layout
from pymc_dlm.kalman.fused.kernels import loglik_grad_kernel, loglik_kernel
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.kalman.univariate import univariate_filter_scan
from pymc_dlm.model.notation import SystemMatrices

__all__ = ["KalmanLoglik", "KalmanLoglikGrad", "definition_op", "run_loglik", "run_loglik_grad"]

#: The canonical inputs, in the order of the nodes and the kernels.
INPUT_NAMES = layout.NAMES
_N_INPUTS = len(INPUT_NAMES)


def run_loglik(inputs):
    """The log-likelihood kernel on numpy inputs: ``perform`` of a node."""
    return loglik_kernel(Inputs(*[layout.kernel_array(x) for x in inputs]))


def run_loglik_grad(inputs, need):
    """The gradient kernel on numpy inputs and the cotangent: (loglik, *gradients)."""
    *arrays, g = [layout.kernel_array(x) for x in inputs]
    return loglik_grad_kernel(Inputs(*arrays), g, np.asarray(need))


class _DefinedNode(Op):
    """A node defined by the scan (:func:`definition_op`), carrying no inner graph."""

    def _filtered(self, inputs, types):
        """``inputs`` converted to ``types`` (a clear error for a wrong count)."""
        if len(inputs) != len(types):
            name = type(self).__name__
            raise ValueError(f"{name} expects {len(types)} inputs, got {len(inputs)}")
        return [t.filter_variable(x) for x, t in zip(inputs, types, strict=True)]

    def pushforward(self, inputs, outputs, tangents):
        """That of the definition (:func:`definition_op`)."""
        return definition_op(self).pushforward(inputs, outputs, tangents)


class KalmanLoglik(_DefinedNode):
    """Log-likelihood per batch member (B,) of canonical inputs y, F, G, W, sd, m0, C0, Q.

    Defined by the scan filter (:func:`_definition`); see the module's description for how
    each backend runs it. Its gradient is one :class:`KalmanLoglikGrad` node.

    Parameters
    ----------
    input_types : tuple of TensorType
        Types of the eight inputs (their static shapes included).
    time_varying : frozenset of str
        Which of "F", "G", "W", "obs" have a time axis of length T.
    """

    __props__ = ("input_types", "time_varying")

    def __init__(self, input_types, time_varying):
        self.input_types = tuple(input_types)
        self.time_varying = frozenset(time_varying)

    def make_node(self, *inputs):
        """Inputs converted to ``input_types``; one output of shape (B,)."""
        inputs = self._filtered(inputs, self.input_types)
        layout.check_ranks("KalmanLoglik", inputs)
        return Apply(self, inputs, [_loglik_type(self.input_types)()])

    def infer_shape(self, node, input_shapes):
        """One log-likelihood per batch member."""
        return [(input_shapes[0][0],)]

    def connection_pattern(self, node):
        """Every input reaches the log-likelihood but an empty diffuse factor Q."""
        return [[True]] * (_N_INPUTS - 1) + [[node.inputs[-1].type.shape[-1] != 0]]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient node of ``cotangent · loglik`` (see :class:`KalmanLoglikGrad`)."""
        (g,) = cotangents
        grads = KalmanLoglikGrad(self.input_types, self.time_varying, g.type)(
            *inputs, g, return_list=True
        )
        if inputs[-1].type.shape[-1] == 0:
            grads[-1] = disconnected_type()  # no diffuse factor: Q (empty) is unused
        return grads

    def perform(self, node, inputs, outputs):
        """Run the compiled kernel (a graph compiled without rewrites)."""
        outputs[0][0] = run_loglik(inputs)


class KalmanLoglikGrad(_DefinedNode):
    """Gradients of ``g · loglik`` w.r.t. the eight canonical inputs, shaped like them.

    Defined by the autodiff gradient of the scan (of the covariance form, with a proper
    prior: its derivative stays finite at a singular predicted covariance, while the value
    stays the square-root filter's). Inputs: the eight inputs and the cotangent ``g`` (B,).
    """

    __props__ = ("input_types", "time_varying", "g_type")

    def __init__(self, input_types, time_varying, g_type):
        self.input_types = tuple(input_types)
        self.time_varying = frozenset(time_varying)
        self.g_type = g_type

    def make_node(self, *inputs):
        """Inputs converted to ``input_types`` and ``g_type``; outputs of the input types."""
        inputs = self._filtered(inputs, (*self.input_types, self.g_type))
        return Apply(self, inputs, [t() for t in self.input_types])

    def infer_shape(self, node, input_shapes):
        """Each gradient has the shape of its input."""
        return list(input_shapes[:-1])

    def connection_pattern(self, node):
        """Every input reaches every gradient but an empty diffuse factor Q."""
        q = node.inputs[_N_INPUTS - 1].type.shape[-1] != 0
        row = [True] * _N_INPUTS
        return [row] * (_N_INPUTS - 1) + [[q] * _N_INPUTS] + [row]

    def pullback(self, inputs, outputs, cotangents):
        """That of the definition (second derivatives through the scan)."""
        return definition_op(self).pullback(inputs, outputs, cotangents)

    def perform(self, node, inputs, outputs):
        """Run the compiled kernel (a graph compiled without rewrites)."""
        results = run_loglik_grad(inputs, [True] * _N_INPUTS)
        for out, value in zip(outputs, results[1:], strict=True):
            out[0] = value


def _loglik_type(input_types):
    """(B,) float64, with the static batch length of y when it is known."""
    return pt.TensorType("float64", shape=(input_types[0].shape[0],))


def _canonical_system(time_varying, inp, d):
    """The :class:`SystemMatrices` of canonical inputs ``inp`` (``d`` diffuse columns, or 0).

    ``inp``: a :class:`~pymc_dlm.kalman.fused.records.Inputs` of symbolic variables.
    """

    def static(x, name):
        return x if name in time_varying else x[:, 0]

    return SystemMatrices(
        static(inp.F, "F"),
        static(inp.G, "G"),
        static(inp.W_sqrt, "W"),
        static(inp.obs_sd, "obs"),
        inp.m0,
        inp.C0,
        frozenset(time_varying),
        True,
        None if d == 0 else np.zeros((inp.G.type.shape[-1], d)),
    )


def _definition(time_varying):
    """The log-likelihood of canonical inputs, written with the scan filters.

    The function returned takes the inputs as one
    :class:`~pymc_dlm.kalman.fused.records.Inputs` of symbolic variables. With a diffuse
    factor ``Pinf_sqrt`` of d > 0 columns, ``m0`` and ``C0`` are the predicted moments of
    step 1 (``C0`` a covariance) made by :func:`~pymc_dlm.kalman.diffuse.diffuse_start`,
    and the exact diffuse filter runs from there; otherwise ``C0`` is the factor of the
    proper prior and ``Pinf_sqrt`` is unused.
    """

    def loglik(inp):
        d = inp.Pinf_sqrt.type.shape[-1]
        system = _canonical_system(time_varying, inp, d)
        if d == 0:
            ll = filter_scan(system, inp.y).loglik
        else:
            # Symmetric by construction, so that the gradient is the symmetric one.
            P1 = 0.5 * (inp.C0 + inp.C0.mT)
            start = (inp.m0, P1, inp.Pinf_sqrt, pt.zeros(inp.y.shape[:1]))
            ll = univariate_filter_scan(system, inp.y, start=start).loglik
        # Invalid parameters give -inf, never NaN (the kernels do the same).
        return pt.switch(pt.isnan(ll), -np.inf, ll)

    return loglik


def _gradient_definition(time_varying):
    """The function whose derivative is the gradient: the univariate filter when it applies.

    That is with a static number of series (the filter loops over them); its derivative is
    finite at a singular predicted covariance, where the square-root filter's is not.
    """
    definition = _definition(time_varying)

    def loglik(inp):
        if inp.Pinf_sqrt.type.shape[-1] != 0 or inp.y.type.shape[-1] is None:
            return definition(inp)
        system = _canonical_system(time_varying, inp, 0)
        ll = univariate_filter_scan(system, inp.y).loglik
        return pt.switch(pt.isnan(ll), -np.inf, ll)

    return loglik


@functools.lru_cache(maxsize=128)
def definition_op(op):
    """The ``OpFromGraph`` of the definition of a :class:`KalmanLoglik` or its gradient node.

    Built once per process and node type: the scan of the log-likelihood, or its autodiff
    gradient (with respect to the eight inputs, given the cotangent).
    """
    inputs = [t() for t in op.input_types]
    if isinstance(op, KalmanLoglik):
        outputs = [_definition(op.time_varying)(Inputs(*inputs))]
        types = [_loglik_type(op.input_types)]
        name = "KalmanLoglik"
    else:
        g = op.g_type()
        ll = _gradient_definition(op.time_varying)(Inputs(*inputs))
        outputs = pytensor.grad(
            None,
            wrt=inputs,
            known_grads={ll: g},
            disconnected_inputs="ignore",
            return_disconnected="zero",
        )
        inputs, types, name = [*inputs, g], op.input_types, "KalmanLoglikGrad"
    outputs = [
        t.filter_variable(x, allow_convert=True) for t, x in zip(types, outputs, strict=True)
    ]
    return OpFromGraph(inputs, outputs, name=name)


@node_rewriter([KalmanLoglik, KalmanLoglikGrad])
def _expand_definitions(fgraph, node):
    """Replace a node that no fused rewrite took by the ``OpFromGraph`` of its definition."""
    return definition_op(node.op)(*node.inputs, return_list=True)


# After the fused rewrites (position 48.0, numba and C backends); every rewrite query of
# pytensor's modes includes one of these tags.
optdb.register(
    "pymc_dlm_kalman_definitions",
    dfs_rewriter(_expand_definitions),
    "fast_run",
    "fast_compile",
    "minimum_compile",
    position=48.02,
)
