r"""The discounted log-likelihood with exact diffuse states as one graph node.

:class:`DiffuseDiscountLoglik` is defined by the scan of
:func:`pymc_dlm.kalman.discount.discount_filter_scan` over the whole series (the exact
diffuse filter), and its gradient node by the scan's autodiff gradient. On pytensor's numba
backend a rewrite (tagged ``"numba"``, before the kernel's own) replaces the node by the
split of :func:`~pymc_dlm.kalman.fused.discounted_ops.diffuse_then_kernel`: the scan over the
diffuse period, whose length is found at run time, then the kernel's node from the scan's
filtered moments; the gradient node by pytensor's gradient of that split. Every other backend
(C, JAX, PyTorch, MLX, ``FAST_COMPILE``) gets an ``OpFromGraph`` of the scan, which they can
all run (a length found at run time cannot be traced by JAX).

Inputs: ``y`` (..., T, p) and the model's parameters ``F, G, W_sqrt, obs, m0, C0_sqrt,
discount, n0, S0, dV`` with their own batch axes (``n0, S0, dV`` are ones with a known
variance).
"""

import functools
from typing import NamedTuple

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.builders import OpFromGraph
from pytensor.compile.mode import optdb
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter

from pymc_dlm.kalman.discount import LearnedScale, discount_filter_scan
from pymc_dlm.model.notation import SystemMatrices
from pymc_dlm.model.priors import diffuse_matrix

__all__ = ["DiffuseDiscountLoglik", "DiffuseDiscountLoglikGrad", "Structure", "unpack"]


class Structure(NamedTuple):
    """What the node needs besides its inputs (hashable)."""

    time_varying: frozenset
    learned: bool
    diffuse: tuple  # the diffuse mask, one bool per state
    blocks: bytes  # the (n, n) 0/1 mask of the discounted blocks, float64
    batch_ndim: int


def unpack(structure, inputs):
    """``(system, y, learned)`` of the node's inputs."""
    y, F, G, W_sqrt, obs, m0, C0_sqrt, discount, n0, S0, dV = inputs
    n = len(structure.diffuse)
    blocks = np.frombuffer(structure.blocks, dtype="float64").reshape(n, n)
    system = SystemMatrices(
        F, G, W_sqrt, obs, m0, C0_sqrt, structure.time_varying, True,
        diffuse_matrix(np.asarray(structure.diffuse, dtype=bool)), discount, blocks,
    )  # fmt: skip
    learned = LearnedScale(n0, S0, dV) if structure.learned else None
    return system, y, learned


def _definition(structure, inputs):
    system, y, learned = unpack(structure, inputs)
    ll = discount_filter_scan(system, y, learned).loglik
    return pt.switch(pt.isnan(ll), -np.inf, ll)


class DiffuseDiscountLoglik(Op):
    """The log-likelihood (batch shape) of a discounted model with diffuse states."""

    __props__ = ("structure",)

    def __init__(self, structure):
        self.structure = structure

    def make_node(self, *inputs):
        """Eleven inputs (module docstring); the log-likelihood of batch shape."""
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        out = pt.TensorType("float64", shape=(None,) * self.structure.batch_ndim)
        return Apply(self, inputs, [out()])

    def pullback(self, inputs, outputs, cotangents):
        """One :class:`DiffuseDiscountLoglikGrad` node."""
        (g,) = cotangents
        return DiffuseDiscountLoglikGrad(self.structure)(*inputs, g, return_list=True)

    def perform(self, node, inputs, outputs):
        """Evaluate the definition (a graph compiled without rewrites)."""
        outputs[0][0] = _compiled(self, tuple(x.type for x in node.inputs))(*inputs)


class DiffuseDiscountLoglikGrad(Op):
    """Gradients of ``g · loglik`` with respect to the eleven inputs, shaped like them."""

    __props__ = ("structure",)

    def __init__(self, structure):
        self.structure = structure

    def make_node(self, *inputs):
        """The eleven inputs and the cotangent; one gradient per input."""
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        return Apply(self, inputs, [x.type() for x in inputs[:-1]])

    def perform(self, node, inputs, outputs):
        """Evaluate the definition (a graph compiled without rewrites)."""
        values = _compiled(self, tuple(x.type for x in node.inputs))(*inputs)
        for out, value in zip(outputs, values, strict=True):
            out[0] = value


def _gradients(structure, inputs, g, loglik):
    grads = pytensor.grad(
        None, wrt=inputs, known_grads={loglik: g}, disconnected_inputs="ignore",
        return_disconnected="zero",
    )  # fmt: skip
    return [x.type.filter_variable(d, allow_convert=True) for x, d in zip(inputs, grads)]


@functools.lru_cache(maxsize=64)
def definition_op(op, types):
    """The ``OpFromGraph`` of the scan's definition of ``op`` for inputs of ``types``."""
    inputs = [t() for t in types]
    if isinstance(op, DiffuseDiscountLoglik):
        outputs = [_definition(op.structure, inputs)]
        return OpFromGraph(inputs, outputs, name="DiffuseDiscountLoglik")
    *args, g = inputs
    outputs = _gradients(op.structure, args, g, _definition(op.structure, args))
    return OpFromGraph(inputs, outputs, name="DiffuseDiscountLoglikGrad")


@functools.lru_cache(maxsize=64)
def _compiled(op, types):
    ofg = definition_op(op, types)
    inputs = [t() for t in types]
    return pytensor.function(inputs, ofg(*inputs, return_list=True), mode="FAST_COMPILE")


def split(op, inputs, split_fn):
    """The numba replacement of a node: the split graph, or its gradient."""
    if isinstance(op, DiffuseDiscountLoglik):
        system, y, learned = unpack(op.structure, inputs)
        return [split_fn(system, y, learned)]
    *args, g = inputs
    system, y, learned = unpack(op.structure, args)
    return _gradients(op.structure, args, g, split_fn(system, y, learned))


@node_rewriter([DiffuseDiscountLoglik, DiffuseDiscountLoglikGrad])
def _expand_definitions(fgraph, node):
    """Elsewhere than numba: the ``OpFromGraph`` of the scan's definition."""
    types = tuple(x.type for x in node.inputs)
    return definition_op(node.op, types)(*node.inputs, return_list=True)


optdb.register(
    "pymc_dlm_diffuse_discounted_definitions", dfs_rewriter(_expand_definitions), "fast_run",
    "fast_compile", "minimum_compile", position=48.02,
)  # fmt: skip
