r"""The nodes that call the discounted kernel from a numba graph.

:class:`KernelDiscountLoglik` and :class:`KernelDiscountLoglikGrad` run
:func:`~pymc_dlm.kalman.fused.discounted.discounted_loglik` and
:func:`~pymc_dlm.kalman.fused.discounted_adjoint.discounted_loglik_grad`; the rewrites of
:mod:`~pymc_dlm.kalman.fused.discounted_ops` put them in numba graphs in place of the nodes
defined by the scan. Their numba implementations call the njit functions directly; their
``perform`` calls them from Python. The canonical inputs are those of
:mod:`~pymc_dlm.kalman.fused.discounted_ops`.
"""

import sys

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from pymc_dlm.compat import numba_graph_njit, register_numba_funcify
from pymc_dlm.kalman.fused import discounted, discounted_adjoint, native
from pymc_dlm.kalman.fused.discounted import GENERAL_ROUTINE, discounted_loglik
from pymc_dlm.kalman.fused.discounted_adjoint import discounted_loglik_grad
from pymc_dlm.kalman.fused.layout import kernel_array
from pymc_dlm.kalman.fused.ops import sandwiches
from pymc_dlm.kalman.fused.records import DiscountInputs, Inputs
from pymc_dlm.model.priors import diffuse_columns

__all__ = [
    "KernelDiscountLoglik",
    "KernelDiscountLoglikGrad",
    "diffuse_factor",
    "kernel_arrays",
    "kernel_inputs",
]


def kernel_arrays(inputs):
    """The inputs as the kernel's one array type (:func:`~.layout.kernel_array`)."""
    return [kernel_array(x) for x in inputs]


def kernel_inputs(inputs, diffuse):
    """The ten canonical inputs as the kernel's ``(Inputs, DiscountInputs, *rest)``.

    ``diffuse``: the node's mask of exact diffuse states (:func:`diffuse_factor`); ``rest``:
    the inputs after the ten (the gradient node's cotangent), as :func:`kernel_arrays`.
    """
    a = kernel_arrays(inputs)
    inp = Inputs(*a[:7], Pinf_sqrt=diffuse_factor(diffuse))
    return inp, DiscountInputs(*a[7:10]), *a[10:]


def diffuse_factor(diffuse):
    """A node's mask of exact diffuse states as the kernel's ``Pinf_sqrt`` (1, n, d).

    The unit columns of the diffuse states (1, 0, 0 without diffuse states, where the kernel
    reads no column).
    """
    return np.ascontiguousarray(diffuse_columns(diffuse)[None])


def _mask_key(diffuse):
    """The mask as an integer (part of the cache key of the graphs that call the kernel)."""
    return sum(1 << i for i, flag in enumerate(diffuse) if flag) * 2 + (len(diffuse) > 0)


class KernelDiscountLoglik(Op):
    """:func:`~pymc_dlm.kalman.fused.discounted.discounted_loglik` as a node."""

    __props__ = ("learned", "diffuse")

    def __init__(self, learned, diffuse=()):
        self.learned = bool(learned)
        self.diffuse = tuple(bool(x) for x in diffuse)

    def make_node(self, *inputs):
        """The canonical inputs; the log-likelihood per batch member (B,)."""
        return Apply(self, list(inputs), [pt.vector(dtype="float64")])

    def infer_shape(self, node, input_shapes):
        """One log-likelihood per batch member."""
        return [(input_shapes[0][0],)]

    def perform(self, node, inputs, outputs):
        """Run the kernel from Python."""
        inp, dinp = kernel_inputs(inputs, self.diffuse)
        outputs[0][0] = discounted_loglik(inp, dinp, self.learned, GENERAL_ROUTINE)


class KernelDiscountLoglikGrad(Op):
    """:func:`~pymc_dlm.kalman.fused.discounted.discounted_loglik_grad`: (loglik, *grads)."""

    __props__ = ("learned", "need", "diffuse")

    def __init__(self, learned, need, diffuse=()):
        self.learned = bool(learned)
        self.need = tuple(bool(x) for x in need)
        self.diffuse = tuple(bool(x) for x in diffuse)

    def make_node(self, *inputs):
        """The canonical inputs and the cotangent; the log-likelihood and one gradient each."""
        outputs = [pt.vector(dtype="float64")] + [x.type() for x in inputs[:-1]]
        return Apply(self, list(inputs), outputs)

    def infer_shape(self, node, input_shapes):
        """Log-likelihood per batch member, then each gradient shaped like its input."""
        return [(input_shapes[0][0],), *input_shapes[:-1]]

    def perform(self, node, inputs, outputs):
        """Run the kernel from Python."""
        inp, dinp, g = kernel_inputs(inputs, self.diffuse)
        need = np.asarray(self.need, dtype=bool)
        results = discounted_loglik_grad(inp, dinp, self.learned, g, need, GENERAL_ROUTINE)
        for out, value in zip(outputs, results, strict=True):
            out[0] = value


@numba.njit(nogil=True, inline="always")
def _structures(arrays, Pinf_sqrt):
    """The node's ten inputs (``kernel_inputs``' order) as (``Inputs``, ``DiscountInputs``).

    C-contiguous copies only where the graph's arrays are not; ``Pinf_sqrt`` is the node's
    (a copy of the constant of its diffuse mask: see :func:`_numba_loglik`).
    """
    c = np.ascontiguousarray
    inp = Inputs(c(arrays[0]), c(arrays[1]), c(arrays[2]), c(arrays[3]), c(arrays[4]),
                 c(arrays[5]), c(arrays[6]), Pinf_sqrt)  # fmt: skip
    return inp, DiscountInputs(c(arrays[7]), c(arrays[8]), c(arrays[9]))


@numba.njit(nogil=True, inline="always")
def _spec(predict_at, pull_back_at):
    """The two sandwich addresses as the kernels' int64 ``spec`` array."""
    spec = np.empty(2, dtype=np.int64)
    spec[0], spec[1] = predict_at, pull_back_at
    return spec


#: Salts pytensor's numba cache of the graphs that call the kernel: changes with its source,
#: the per-step helpers it shares with the fixed-W kernels and this module.
_KEY = native.VERSION ^ native._source_hash(discounted, discounted_adjoint, sys.modules[__name__])


@register_numba_funcify(KernelDiscountLoglik)
def _numba_loglik(op, node=None, **kwargs):
    learned = np.array([op.learned])  # read at run time: one compiled kernel for both
    Pinf_sqrt = diffuse_factor(op.diffuse)
    predict_at, pull_back_at, key = sandwiches(node)

    # The builder's arrays are read-only constants in the compiled function, a type of their
    # own: passed on as they are, the kernel would be compiled a second time for them (once
    # for the graphs, once for the calls from Python). The graphs pass copies.
    @numba_graph_njit
    def discounted_loglik_numba(*inputs):
        # The ten canonical inputs (``kernel_inputs``), read as the kernel's structures.
        inp, dinp = _structures(inputs, Pinf_sqrt.copy())
        return discounted_loglik(inp, dinp, learned[0], _spec(predict_at(), pull_back_at()))

    salt = (_KEY * 2 + op.learned) << (len(op.diffuse) + 1) | _mask_key(op.diffuse)
    return discounted_loglik_numba, (salt << 256) | key


@register_numba_funcify(KernelDiscountLoglikGrad)
def _numba_loglik_grad(op, node=None, **kwargs):
    learned = np.array([op.learned])  # read at run time: one compiled kernel for both
    need = np.asarray(op.need, dtype=np.bool_)
    Pinf_sqrt = diffuse_factor(op.diffuse)
    predict_at, pull_back_at, key = sandwiches(node)

    @numba_graph_njit
    def discounted_loglik_grad_numba(*inputs):
        # The ten canonical inputs and the cotangent g.
        inp, dinp = _structures(inputs, Pinf_sqrt.copy())  # copies: see _numba_loglik
        g, spec = np.ascontiguousarray(inputs[10]), _spec(predict_at(), pull_back_at())
        return discounted_loglik_grad(inp, dinp, learned[0], g, need.copy(), spec)

    salt = sum(1 << i for i, flag in enumerate(op.need) if flag)
    salt = ((_KEY << 12) + salt * 2 + op.learned) << (len(op.diffuse) + 1) | _mask_key(op.diffuse)
    return discounted_loglik_grad_numba, (salt << 256) | key
