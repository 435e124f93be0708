r"""The discounted log-likelihood as one graph node, run by the numba kernel on numba.

:func:`discounted_loglik_node` returns the log-likelihood of
:func:`pymc_dlm.kalman.discount.discount_filter_scan` from a proper start, or from the finite
part of the prior with exact diffuse states (the node's ``diffuse`` mask), as one
:class:`DiscountLoglik` node, whose gradient is one :class:`DiscountLoglikGrad` node. Like the
fixed-W nodes (:mod:`pymc_dlm.kalman.fused.definition`), both are defined by the scan and its
autodiff gradient and carry no inner graph. When a graph is compiled with pytensor's numba
backend a rewrite (tagged ``"numba"``) swaps them for nodes that call the kernel of
:mod:`pymc_dlm.kalman.fused.discounted` (forward pass) and
:mod:`~pymc_dlm.kalman.fused.discounted_adjoint` (hand-written adjoint); the gradient
node is told which gradients the graph uses, and the log-likelihood is taken from its
forward pass when both are in a graph. Every other backend (C, JAX, PyTorch, MLX,
``FAST_COMPILE``, the Python linker) gets an ``OpFromGraph`` of the scan instead.

Canonical inputs (one batch axis of length 1 or B, one time axis of length 1 or T): ``y``
(B, T, p); ``F`` (., ., p, n); ``G`` (., ., n, n); ``W_sqrt`` (., ., n, k), at unit scale
with a learned variance; ``obs_sd`` (., ., p), ones with a learned variance; ``m0`` (., n);
``C0`` (., n, n), a covariance (unit scale with a learned variance); ``discount`` (., n);
``blocks`` (n, n); ``scale`` (., 3), :math:`(n_0, n_0 S_0, \delta_V)` (ones with a known
variance). With diffuse states ``m0`` has no diffuse component and ``C0`` is the finite part
:math:`C_{*,0}`; the diffuse factor starts at the unit columns of the diffuse states.
"""

import functools
from math import prod

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.mode import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import (
    dfs_rewriter,
    graph_rewriter,
    node_rewriter,
)

from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan
from pymc_dlm.kalman.fused.canonical import canonical_matrix, decorrelate
from pymc_dlm.kalman.fused.discounted import GENERAL_ROUTINE, discounted_loglik
from pymc_dlm.kalman.fused.discounted_adjoint import discounted_loglik_grad
from pymc_dlm.kalman.fused.discounted_kernel_nodes import (
    KernelDiscountLoglik,
    KernelDiscountLoglikGrad,
    kernel_inputs,
)
from pymc_dlm.kalman.fused.ops import same_types, share_forward_pass
from pymc_dlm.kalman.fused.records import DiscountInputs, Inputs
from pymc_dlm.kalman.linalg import matvec, mT
from pymc_dlm.kalman.prepare import batch_shape
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_matrix, diffuse_states

__all__ = [
    "DiscountLoglik",
    "DiscountLoglikGrad",
    "discounted_inputs",
    "discounted_loglik_node",
    "float64",
]

#: The canonical inputs, in the order of the nodes and the kernel.
INPUT_NAMES = (*Inputs._fields[:7], *DiscountInputs._fields)
_N = len(INPUT_NAMES)


def discounted_loglik_node(system, y, learned):
    """The log-likelihood (batch shape) of ``y`` (..., T, p) through one :class:`DiscountLoglik`.

    ``learned`` is a :class:`~pymc_dlm.kalman.discount.LearnedScale` or None. With diffuse
    states the node starts from the finite part of the prior (the mean without its diffuse
    components) and runs the exact diffuse period itself. A full observation covariance is
    first turned into a unit diagonal one
    (:func:`~pymc_dlm.kalman.fused.canonical.decorrelate`: the filter's covariances, hence
    the discount's W_t, do not change; the log-likelihood gains the log-Jacobian, -inf
    where V is not positive definite). Returns ``None`` when the node does not apply (a
    dtype other than float64): the caller then uses the scan.
    """
    log_jac = None
    if not system.obs_diag and learned is None and float64(system, y):
        system, y, log_jac = decorrelate(system, y)
    found = discounted_inputs(system, y, learned)
    if found is None:
        return None
    canon, tv_canon, batch = found
    diffuse = _diffuse_mask(system)
    op = DiscountLoglik(tuple(x.type for x in canon), tv_canon, learned is not None, diffuse)
    ll = op(*canon)
    if batch:
        ll = ll.reshape(batch)
    else:
        # Not ll[0]: the gradient of an index is built on zeros_like(ll), which makes the
        # value a parent of the gradient node's cotangent where no rewrite removes it (the
        # diffuse split is built after them), and the forward pass could not be shared.
        ll = pt.specify_shape(ll, (1,)).squeeze(0)
    if log_jac is not None:
        ll = pt.switch(pt.isnan(log_jac), -np.inf, ll + log_jac)
    return ll


def float64(system, y):
    """Whether the data and the system's matrices are all float64 (what the kernels take)."""
    parts = [y, system.F, system.G, system.W_sqrt, system.obs, system.m0, system.C0_sqrt]
    return all(pt.as_tensor(x).dtype == "float64" for x in (*parts, system.discount))


def discounted_inputs(system, y, learned):
    """The kernel's ten canonical inputs for ``y`` (..., T, p): ``(inputs, time_varying, batch)``.

    In the order of :data:`INPUT_NAMES` (module docstring), from the proper start at unit
    scale with a learned variance (``learned``, a
    :class:`~pymc_dlm.kalman.discount.LearnedScale`, or None); ``time_varying`` the
    canonical inputs' declared variation, ``batch`` the batch shape (B is its product).
    ``None`` when the kernel does not apply (a full observation covariance or a dtype other
    than float64).
    """
    parts = [y, system.F, system.G, system.W_sqrt, system.obs, system.m0, system.C0_sqrt]
    parts += [system.discount, *(learned or ())]
    if not system.obs_diag or any(pt.as_tensor(x).dtype != "float64" for x in parts):
        return None
    m0 = system.m0
    if system.diffuse is not None:
        A = np.asarray(system.diffuse.data)
        m0 = m0 - matvec(pt.as_tensor(A @ A.T), m0)
    C0 = pt.matmul(system.C0_sqrt, mT(system.C0_sqrt))
    if learned is None:
        return _canonical(system, y, None, (m0, C0, 1.0, 1.0))
    S0 = pt.as_tensor(learned.S0, dtype="float64")
    return _canonical(
        system, y, learned, (m0, C0 / S0[..., None, None], learned.n0, learned.n0 * S0)
    )


def _canonical(system, y, learned, start):
    """The canonical inputs from the proper start ``(m, C, n, d)`` (unit scale)."""
    m0, C0, n_0, d_0 = start
    tv = system.time_varying
    batch = _batch(system, y, learned)
    T, p = y.shape[-2], y.type.shape[-1]
    W_sqrt, obs = system.W_sqrt, system.obs
    if learned is not None:
        S0 = pt.as_tensor(learned.S0, dtype="float64")
        root = pt.sqrt(S0)
        W_sqrt = W_sqrt / (root[..., None, None, None] if "W" in tv else root[..., None, None])
        obs = pt.ones((p,), dtype="float64")
        parts = (pt.as_tensor(x, dtype="float64") for x in (n_0, d_0, learned.discount))
        scale = pt.stack(pt.broadcast_arrays(*parts), axis=-1)
    else:
        scale = pt.ones((3,), dtype="float64")
    B = prod(batch) if batch else 1
    canon = [
        pt.broadcast_to(y, (*batch, T, p)).reshape((B, T, p)),
        canonical_matrix(system.F, 2, batch, "F" in tv),
        canonical_matrix(system.G, 2, batch, "G" in tv),
        canonical_matrix(W_sqrt, 2, batch, "W" in tv),
        canonical_matrix(obs, 1, batch, "obs" in tv and learned is None),
        canonical_matrix(pt.expand_dims(m0, -2), 1, batch, True)[:, 0],
        canonical_matrix(pt.expand_dims(C0, -3), 2, batch, True)[:, 0],
        canonical_matrix(pt.expand_dims(system.discount, -2), 1, batch, True)[:, 0],
        pt.as_tensor(np.asarray(system.blocks, dtype="float64")),
        canonical_matrix(pt.expand_dims(scale, -2), 1, batch, True)[:, 0],
    ]  # fmt: skip
    tv_canon = frozenset(tv if learned is None else tv - {"obs"})
    return canon, tv_canon, batch


def _diffuse_mask(system):
    """One bool per state: diffuse or not (empty without diffuse states)."""
    if system.diffuse is None:
        return ()
    return tuple(bool(x) for x in diffuse_states(system.diffuse, None))


def _batch(system, y, learned):
    shapes = [batch_shape(system, y), _lead(system.discount, 1)]
    if learned is not None:
        shapes += [_lead(x, 0) for x in learned]
    return tuple(pt.broadcast_shape(*shapes, arrays_are_shapes=True))


def _lead(x, core):
    x = pt.as_tensor(x)
    lead = x.type.shape[: x.ndim - core]
    return tuple(x.shape[i] if s is None else s for i, s in enumerate(lead))


class _DefinedNode(Op):
    """A node defined by the scan (:func:`definition_op`), carrying no inner graph."""

    def _filtered(self, inputs, types):
        if len(inputs) != len(types):
            name = type(self).__name__
            raise ValueError(f"{name} expects {len(types)} inputs, got {len(inputs)}")
        return [t.filter_variable(x) for x, t in zip(inputs, types, strict=True)]


class DiscountLoglik(_DefinedNode):
    """Log-likelihood per batch member (B,) of the canonical inputs (module docstring).

    ``diffuse``: one bool per state, the exact diffuse states (empty: none).
    """

    __props__ = ("input_types", "time_varying", "learned", "diffuse")

    def __init__(self, input_types, time_varying, learned, diffuse=()):
        self.input_types = tuple(input_types)
        self.time_varying = frozenset(time_varying)
        self.learned = bool(learned)
        self.diffuse = tuple(bool(x) for x in diffuse)

    def make_node(self, *inputs):
        """Inputs converted to ``input_types``; one output of shape (B,)."""
        inputs = self._filtered(inputs, self.input_types)
        return Apply(self, inputs, [_loglik_type(self.input_types)()])

    def infer_shape(self, node, input_shapes):
        """One log-likelihood per batch member."""
        return [(input_shapes[0][0],)]

    def pullback(self, inputs, outputs, cotangents):
        """Gradient node of ``cotangent · loglik`` (see :class:`DiscountLoglikGrad`)."""
        (g,) = cotangents
        op = DiscountLoglikGrad(
            self.input_types, self.time_varying, self.learned, g.type, self.diffuse
        )
        return op(*inputs, g, return_list=True)

    def perform(self, node, inputs, outputs):
        """Run the kernel (a graph compiled without rewrites)."""
        inp, dinp = kernel_inputs(inputs, self.diffuse)
        outputs[0][0] = discounted_loglik(inp, dinp, self.learned, GENERAL_ROUTINE)


class DiscountLoglikGrad(_DefinedNode):
    """Gradients of ``g · loglik`` w.r.t. the ten canonical inputs, shaped like them."""

    __props__ = ("input_types", "time_varying", "learned", "g_type", "diffuse")

    def __init__(self, input_types, time_varying, learned, g_type, diffuse=()):
        self.input_types = tuple(input_types)
        self.time_varying = frozenset(time_varying)
        self.learned = bool(learned)
        self.g_type = g_type
        self.diffuse = tuple(bool(x) for x in diffuse)

    def make_node(self, *inputs):
        """Inputs converted to ``input_types`` and ``g_type``; outputs of the input types."""
        inputs = self._filtered(inputs, (*self.input_types, self.g_type))
        return Apply(self, inputs, [t() for t in self.input_types])

    def infer_shape(self, node, input_shapes):
        """Each gradient has the shape of its input."""
        return list(input_shapes[:-1])

    def pullback(self, inputs, outputs, cotangents):
        """That of the definition (second derivatives through the scan)."""
        return definition_op(self).pullback(inputs, outputs, cotangents)

    def perform(self, node, inputs, outputs):
        """Run the kernel (a graph compiled without rewrites)."""
        inp, dinp, g = kernel_inputs(inputs, self.diffuse)
        need = np.ones(_N, dtype=bool)
        results = discounted_loglik_grad(inp, dinp, self.learned, g, need, GENERAL_ROUTINE)
        for out, value in zip(outputs, results[1:], strict=True):
            out[0] = value


def _loglik_type(input_types):
    return pt.TensorType("float64", shape=(input_types[0].shape[0],))


def _definition(time_varying, learned, diffuse):
    """The log-likelihood of canonical inputs, written with the scan of the discount filter.

    The function returned takes the node's ten inputs as an
    :class:`~pymc_dlm.kalman.fused.records.Inputs` (its ``Pinf_sqrt`` unused) and a
    :class:`~pymc_dlm.kalman.fused.records.DiscountInputs` of symbolic variables
    (:func:`_named`). ``diffuse``: the node's mask of exact diffuse states (the scan's
    diffuse factor starts at their unit columns).
    """

    def loglik(inp, dinp):
        def static(x, name):
            return x if name in time_varying else x[:, 0]

        system = SystemMatrices(
            static(inp.F, "F"), static(inp.G, "G"), static(inp.W_sqrt, "W"),
            static(inp.obs_sd, "obs"), inp.m0, inp.C0, frozenset(time_varying), True,
            diffuse_matrix(diffuse or None), dinp.discount, dinp.blocks,
        )  # fmt: skip
        scale, C0 = dinp.scale, inp.C0
        scale_in = None
        if learned:
            scale_in = LearnedScale(scale[:, 0], pt.ones_like(scale[:, 0]), scale[:, 2])
        start = (inp.m0, 0.5 * (C0 + mT(C0)), scale[:, 0], scale[:, 1])
        ll = discount_filter_scan(system, inp.y, scale_in, start=start).loglik
        return pt.switch(pt.isnan(ll), -np.inf, ll)

    return loglik


def _named(inputs):
    """The node's ten inputs as (``Inputs`` with no ``Pinf_sqrt``, ``DiscountInputs``)."""
    return Inputs(*inputs[:7], None), DiscountInputs(*inputs[7:])


@functools.lru_cache(maxsize=64)
def definition_op(op):
    """The ``OpFromGraph`` of the definition of a node or of its gradient (built once)."""
    inputs = [t() for t in op.input_types]
    ll = _definition(op.time_varying, op.learned, op.diffuse)(*_named(inputs))
    if isinstance(op, DiscountLoglik):
        outputs, types, name = [ll], [_loglik_type(op.input_types)], "DiscountLoglik"
    else:
        g = op.g_type()
        outputs = pytensor.grad(
            None, wrt=inputs, known_grads={ll: g}, disconnected_inputs="ignore",
            return_disconnected="zero",
        )  # fmt: skip
        inputs, types, name = [*inputs, g], op.input_types, "DiscountLoglikGrad"
    outputs = [
        t.filter_variable(x, allow_convert=True) for t, x in zip(types, outputs, strict=True)
    ]
    return OpFromGraph(inputs, outputs, name=name)


@node_rewriter([DiscountLoglik])
def _to_kernel(fgraph, node):
    op = KernelDiscountLoglik(node.op.learned, node.op.diffuse)
    return same_types([op(*node.inputs)], node.outputs)


@node_rewriter([DiscountLoglikGrad])
def _to_kernel_grad(fgraph, node):
    need = [bool(fgraph.clients.get(out)) for out in node.outputs]
    op = KernelDiscountLoglikGrad(node.op.learned, need, node.op.diffuse)
    outputs = op(*node.inputs, return_list=True)
    return same_types(outputs[1:], node.outputs)


def _share_forward_pass(fgraph):
    """Take the value from the gradient node's forward pass (one filter, not two)."""
    share_forward_pass(fgraph, KernelDiscountLoglik, KernelDiscountLoglikGrad)


@node_rewriter([DiscountLoglik, DiscountLoglikGrad])
def _expand_definitions(fgraph, node):
    """Replace a node that the numba rewrite did not take by its definition's OpFromGraph."""
    return definition_op(node.op)(*node.inputs, return_list=True)


optdb.register(
    "pymc_dlm_discounted_kernel", dfs_rewriter(_to_kernel, _to_kernel_grad), "numba",
    position=48.0,
)  # fmt: skip
optdb.register(
    "pymc_dlm_discounted_share", graph_rewriter(_share_forward_pass), "numba", position=48.01
)
optdb.register(
    "pymc_dlm_discounted_definitions", dfs_rewriter(_expand_definitions), "fast_run",
    "fast_compile", "minimum_compile", position=48.02,
)  # fmt: skip
