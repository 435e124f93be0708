r"""The DLM log-likelihood as one graph node, with a fused numba implementation.

:func:`fused_loglik` returns the log-likelihood of :func:`pymc_dlm.kalman.filter.filter_scan`
as one :class:`~pymc_dlm.kalman.fused.definition.KalmanLoglik` node, whose gradient is one
:class:`~pymc_dlm.kalman.fused.definition.KalmanLoglikGrad` node. Both are defined by the scan
filters (:mod:`pymc_dlm.kalman.fused.definition`), which run on the backends that have no
fused implementation (JAX, PyTorch, MLX, ``FAST_COMPILE``, the Python linker).

On pytensor's numba backend and on its C backends (the ``"C"`` and ``"CVM"`` modes), a graph
rewrite swaps the two nodes for :class:`FusedLoglik` and :class:`FusedLoglikGrad`, which run
the hand-written kernels of :mod:`pymc_dlm.kalman.fused.kernels` (one loop over time, analytic
adjoint, sparse structure found at run time). JAX, PyTorch, MLX and ``FAST_COMPILE`` run the
definitions (the rewrite is tagged ``"numba"``, and ``"cxx_only"`` for the C backends). The
gradient node is told which of its outputs the graph uses, so gradients with respect to data
and constant matrices are never computed. The compiled graph calls the kernels through their
C entry points (:mod:`pymc_dlm.kalman.fused.native`; from C code,
:mod:`pymc_dlm.kalman.fused.ccode`): the kernels are compiled once per machine, not once per
model graph. On numba, a transition matrix G that is a constant of the graph (shared by the
batch, time-invariant) also gets straight-line code for its covariance sandwiches
(:mod:`pymc_dlm.kalman.fused.specialize`), bitwise equal to the kernels' general routine.
"""

import sys

import numpy as np
import pytensor.tensor as pt
from pytensor.compile.mode import optdb
from pytensor.graph.basic import Apply, Constant
from pytensor.graph.rewriting.basic import dfs_rewriter, graph_rewriter, node_rewriter
from pytensor.graph.traversal import ancestors, graph_inputs, toposort
from pytensor.link.c.op import COp

from pymc_dlm.compat import numba_graph_njit, register_numba_funcify
from pymc_dlm.kalman.fused import ccode, layout, native, specialize
from pymc_dlm.kalman.fused.canonical import canonical_inputs, decorrelate
from pymc_dlm.kalman.fused.definition import (
    KalmanLoglik,
    KalmanLoglikGrad,
    run_loglik,
    run_loglik_grad,
)
from pymc_dlm.kalman.fused.kernels import grad_outputs

__all__ = [
    "fused_loglik",
    "KalmanLoglik",
    "KalmanLoglikGrad",
    "FusedLoglik",
    "FusedLoglikGrad",
    "same_types",
    "share_forward_pass",
]


def fused_loglik(system, y):
    """Log-likelihood of ``y`` (..., T, p) under ``system`` as a :class:`KalmanLoglik` node.

    With diffuse states, the prediction of step 1 (:func:`~pymc_dlm.kalman.diffuse.
    diffuse_start`, a small graph differentiated by pytensor) is computed outside the node,
    which then runs the exact diffuse filter from there (:func:`canonical_inputs`). A full
    observation covariance is first turned into a unit diagonal one (:func:`decorrelate`).

    Returns ``None`` when the fused route does not apply (a dtype other than float64): the
    caller then uses the scan directly.
    """
    log_jac_obs = None
    if not system.obs_diag and y.dtype == "float64" and system.obs.dtype == "float64":
        system, y, log_jac_obs = decorrelate(system, y)
    found = canonical_inputs(system, y)
    if found is None:
        return None
    canon, batch, log_jac = found
    op = KalmanLoglik(tuple(x.type for x in canon), system.time_varying)
    ll = op(*canon)
    ll = (ll.reshape(batch) if batch else ll[0]) + log_jac
    if log_jac_obs is not None:  # NaN where V is not positive definite: -inf
        ll = pt.switch(pt.isnan(log_jac_obs), -np.inf, ll + log_jac_obs)
    return ll


# ---------------------------------------------------------------------------------------
# The fused nodes and their numba implementation.


class _KernelCOp(COp):
    """C code of a fused node: a call of the kernels' entry point (see ``ccode``).

    Output 0 is the log-likelihood (B,); output i > 0 has the shape of input i - 1.
    """

    need_mask = None

    def c_code_cache_version(self):
        """Changes with the kernels and the descriptor layout the code follows."""
        return (3, native.VERSION)

    def c_support_code_struct(self, node, name):
        """The entry point's struct member."""
        return ccode.support_code(name)

    def c_init_code_struct(self, node, name, sub):
        """Fetch the entry point when the compiled module is loaded."""
        return ccode.init_code(name, sub["fail"])

    def c_code(self, node, name, inputs, outputs, sub):
        """Call the entry point on the inputs; gradients not needed come out as zeros."""
        ranks = [x.type.ndim for x in node.inputs]
        return ccode.call_code(name, inputs, ranks, outputs, sub["fail"], self.need_mask or 0)


class FusedLoglik(_KernelCOp):
    """:func:`~pymc_dlm.kalman.fused.kernels.loglik_kernel` as a pytensor Op.

    Runs the kernel's C entry point from numba graphs, from C code on pytensor's C
    backends (:mod:`~pymc_dlm.kalman.fused.ccode`) and from ``perform`` elsewhere.
    """

    __props__ = ()

    def make_node(self, *inputs):
        """The inputs of :data:`~pymc_dlm.kalman.fused.layout.INPUTS`; output (B,)."""
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        layout.check_ranks("FusedLoglik", inputs)
        return Apply(self, inputs, [pt.vector(dtype="float64")])

    def infer_shape(self, node, input_shapes):
        """One log-likelihood per batch member."""
        return [(input_shapes[0][0],)]

    def perform(self, node, inputs, outputs):
        """Run the compiled kernel (any backend that calls ``perform``)."""
        outputs[0][0] = run_loglik(inputs)


class FusedLoglikGrad(_KernelCOp):
    """:func:`~pymc_dlm.kalman.fused.kernels.loglik_grad_kernel`: (loglik, *gradients).

    ``need`` flags which input gradients are wanted; the log-likelihood comes for free
    from the forward pass and replaces a :class:`FusedLoglik` of the same inputs.
    """

    __props__ = ("need",)

    def __init__(self, need):
        self.need = tuple(bool(x) for x in need)

    @property
    def need_mask(self):
        """``need`` as a bit mask (bit i: gradient i), the form the entry point reads."""
        return sum(1 << i for i, flag in enumerate(self.need) if flag)

    def make_node(self, *inputs):
        """The kernels' inputs and the cotangent; the log-likelihood and a gradient per input.

        The inputs are those of :data:`~pymc_dlm.kalman.fused.layout.INPUTS`.
        """
        inputs = [pt.as_tensor_variable(x) for x in inputs]
        layout.check_ranks("FusedLoglikGrad", inputs[:-1])
        outputs = [pt.vector(dtype="float64")] + [x.type() for x in inputs[:-1]]
        return Apply(self, inputs, outputs)

    def infer_shape(self, node, input_shapes):
        """Log-likelihood per batch member, then each gradient shaped like its input."""
        return [(input_shapes[0][0],), *input_shapes[:-1]]

    def perform(self, node, inputs, outputs):
        """Run the compiled kernel (any backend that calls ``perform``)."""
        for out, value in zip(outputs, run_loglik_grad(inputs, self.need), strict=True):
            out[0] = value


#: Salts pytensor's numba cache of the graphs that call the kernels: changes with the
#: kernels' source (through their entry names) and with the dispatch code below.
_KERNEL_VERSION = native.VERSION ^ native._source_hash(sys.modules[__name__])


@numba_graph_njit
def _no_sandwich():
    return 0


def _constant_value(x, max_nodes=100):
    """The value of ``x`` when it is computed from constants only (a small graph), else None.

    pytensor does not fold every such graph into a constant (an ``Alloc`` of zeros inside a
    block-diagonal G stays a node); it is evaluated here with the nodes' ``perform``.
    """
    if not all(isinstance(v, Constant) for v in graph_inputs([x])):
        return None
    nodes = list(toposort([x]))
    if len(nodes) > max_nodes:
        return None
    values = {}
    try:
        for node in nodes:
            args = [v.data if isinstance(v, Constant) else values[v] for v in node.inputs]
            storage = [[None] for _ in node.outputs]
            node.op.perform(node, args, storage)
            values.update(zip(node.outputs, (s[0] for s in storage), strict=True))
        return np.asarray(x.data if isinstance(x, Constant) else values[x])
    except Exception:  # noqa: BLE001  an op without a plain perform: no specialisation
        return None


def sandwiches(node):
    """Address getters of the sandwiches of the node's G, and the cache key's salt.

    Straight-line code when G is a graph constant shared by the batch and time-invariant
    (:func:`~pymc_dlm.kalman.fused.specialize.sandwich_names`); else the general routine.
    """
    G = _constant_value(node.inputs[2]) if node is not None else None
    if G is not None and G.shape[:2] == (1, 1) and G.shape[-1] > 1:
        names = specialize.sandwich_names(G[0, 0])
        if names is not None:
            salt = int(names[0].rsplit("_", 1)[1], 16)
            addresses = [specialize.symbol_address(name) for name in names]
            return addresses[0], addresses[1], (_KERNEL_VERSION << 64) | salt
    return _no_sandwich, _no_sandwich, _KERNEL_VERSION


@register_numba_funcify(FusedLoglik)
def _numba_loglik(op, node=None, **kwargs):
    native.register()
    call, contiguous = native.call_loglik, native.contiguous
    predict_at, pull_back_at, key = sandwiches(node)

    @numba_graph_njit
    def fused_loglik_numba(*inputs):
        # The kernels read C-contiguous arrays: copies only where the graph's are not.
        inp = contiguous(inputs)
        out = np.empty(inp.y.shape[0])
        call(inp, (predict_at(), pull_back_at()), out)
        return out

    return fused_loglik_numba, key


@register_numba_funcify(FusedLoglikGrad)
def _numba_loglik_grad(op, node=None, **kwargs):
    native.register()
    call, contiguous = native.call_loglik_grad, native.contiguous
    need_mask = op.need_mask
    predict_at, pull_back_at, key = sandwiches(node)

    @numba_graph_njit
    def fused_loglik_grad_numba(*inputs):
        # The eight inputs and the cotangent g; returns (loglik, *gradients).
        inp = contiguous(inputs)
        g = np.ascontiguousarray(inputs[-1])
        out = grad_outputs(inp)
        call(inp, g, need_mask, (predict_at(), pull_back_at()), out)
        return out

    return fused_loglik_grad_numba, key


@node_rewriter([KalmanLoglik])
def _fuse_loglik(fgraph, node):
    return same_types([FusedLoglik()(*node.inputs)], node.outputs)


@node_rewriter([KalmanLoglikGrad])
def _fuse_loglik_grad(fgraph, node):
    need = [bool(fgraph.clients.get(out)) for out in node.outputs]
    outputs = FusedLoglikGrad(need)(*node.inputs, return_list=True)
    return same_types(outputs[1:], node.outputs)


def same_types(new, old):
    """Pin the replacement outputs to the static shapes of the outputs they replace."""
    return [n if n.type == o.type else pt.specify_shape(n, o.type.shape) for n, o in zip(new, old)]


def share_forward_pass(fgraph, value_type=None, grad_type=None):
    """Take the log-likelihood from the gradient node's forward pass (one filter, not two).

    ``value_type`` and ``grad_type``: the value node and the gradient node whose output 0 is
    the same log-likelihood (default :class:`FusedLoglik`, :class:`FusedLoglikGrad`).
    """
    value_type = value_type or FusedLoglik
    grad_type = grad_type or FusedLoglikGrad
    grad_nodes = [n for n in fgraph.apply_nodes if isinstance(n.op, grad_type)]
    for node in [n for n in fgraph.apply_nodes if isinstance(n.op, value_type)]:
        for grad_node in grad_nodes:
            same = all(a is b for a, b in zip(grad_node.inputs[:-1], node.inputs, strict=True))
            # The cotangent must not depend on this log-likelihood (that would be a cycle).
            if same and node.outputs[0] not in set(ancestors([grad_node.inputs[-1]])):
                new = grad_node.outputs[0]
                fgraph.replace(node.outputs[0], same_types([new], node.outputs)[0])
                break


# Twice: for the numba backend, and for backends that run C code (the "C" and "CVM" modes;
# "cxx_only" keeps JAX, PyTorch, MLX and Python-only linkers on the scan definition). Each
# registration needs rewriter objects of its own: a database query excludes an object when
# any of its registrations carries an excluded tag.
for _suffix, _tags in (("", ("numba",)), ("_c", ("fast_run", "cxx_only"))):
    optdb.register(
        f"pymc_dlm_fused_kalman{_suffix}",
        dfs_rewriter(_fuse_loglik, _fuse_loglik_grad),
        *_tags,
        position=48.0,
    )
    optdb.register(
        f"pymc_dlm_fused_kalman_share{_suffix}",
        graph_rewriter(share_forward_pass),
        *_tags,
        position=48.01,
    )
