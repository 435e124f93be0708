"""An ``OpFromGraph`` whose inner graph is built the first time something reads it.

The log-likelihood node (:class:`~pymc_dlm.kalman.fused.ops.KalmanLoglik`) and its gradient
node are defined by a scan and by that scan's autodiff gradient. On pytensor's numba and C
backends a rewrite replaces both nodes by the fused kernels before anything reads the
definitions, yet building them costs about 0.1 s (the scan) and 0.3 s (its gradient) per
model and process: in ``pm.sample`` that is a quarter of the time outside the sampling
itself. :class:`LazyOpFromGraph` defers the construction to the first read of ``fgraph``,
which only happens where the definition runs (JAX, PyTorch, MLX, ``FAST_COMPILE``, the Python
linker) or is inspected.

Everything a graph needs before that is answered without the inner graph: the output types
(declared), the output shapes (:meth:`infer_shape` of the subclass), the connection pattern
(declared by the subclass when it is used by ``pytensor.grad``), equality and hash (a key
that identifies the definition: ops built from the same key have the same inner graph).

It is a pytensor ``SymbolicOp`` (an ``OpFromGraph`` built from its input types), and is
treated as one: PyMC's pre-gradient rewrites (``pymc.pytensorf.rewrite_pregrad``, run by
``Model.logp_dlogp_function``) leave its inner graph alone instead of building and rewriting
it. They would change nothing here: the gradient is the subclass's own pullback, not autodiff
of this inner graph, and a backend that runs the definition rewrites it when compiling.
"""

from pytensor.compile.builders import OpFromGraph, SymbolicOp, construct_nominal_fgraph
from pytensor.graph.basic import Apply

__all__ = ["LazyOpFromGraph"]

_DEFERRED = object()  # the ``fgraph`` handed to OpFromGraph.__init__: build on first read


class LazyOpFromGraph(SymbolicOp):
    """``OpFromGraph`` of ``build(*inputs)`` over inputs of ``input_types``, built on first use.

    Parameters
    ----------
    input_types, output_types : list of pytensor types
        The op's input and output types. ``build``'s outputs are converted to
        ``output_types`` (a more specific static shape is kept).
    build : callable
        ``build(*inputs) -> list of outputs``, called once, with fresh variables of
        ``input_types``.
    key : hashable
        Identifies the definition: two ops with equal keys (and the same class) have the same
        inner graph, and compare equal without building it.
    name : str
        Shown in graph printouts.
    """

    _graph = None
    _rebuilt = False  # True once a rewrite installed another inner graph

    def __init__(self, input_types, output_types, build, key, name):
        self._build = build
        self._key = key
        OpFromGraph.__init__(
            self,
            [t() for t in input_types],
            [t() for t in output_types],
            fgraph=_DEFERRED,
            name=name,
        )

    def __call__(self, *inputs, **kwargs):
        """Apply the op (``SymbolicOp.__call__`` would build the inner graph to compare types)."""
        return OpFromGraph.__call__(self, *inputs, **kwargs)

    @property
    def fgraph(self):
        """The frozen inner graph, built from ``build`` on first read."""
        if self._graph is None:
            inputs = [t() for t in self.input_types]
            outputs = [
                t.filter_variable(x, allow_convert=True)
                for t, x in zip(self.output_types, self._build(*inputs), strict=True)
            ]
            self._graph = construct_nominal_fgraph(inputs, outputs).freeze()
        return self._graph

    @fgraph.setter
    def fgraph(self, graph):
        # OpFromGraph.__init__ stores the deferred marker; clone_with_inner_graph (pytensor's
        # inner-graph rewrites) stores a rewritten graph, which then defines the op.
        if graph is not _DEFERRED:
            self._graph = graph
            self._rebuilt = True

    def __getstate__(self):
        """The op's state without a built, not rewritten inner graph (rebuilt on first read).

        A sampler's worker process receives the model's graphs pickled; the definition is a
        function of the key, so it is not shipped (a scan graph: hundreds of objects to
        unpickle that the numba and C backends never read). A graph installed by a rewrite
        is kept: it cannot be rebuilt from the key.
        """
        state = self.__dict__.copy()
        if not self._rebuilt:
            state.pop("_graph", None)
        return state

    def __eq__(self, other):
        """Equal keys, until a rewrite installs another inner graph (then by that graph)."""
        if self is other:
            return True
        if type(self) is not type(other) or self._rebuilt != other._rebuilt:
            return False
        if self._rebuilt:
            return OpFromGraph.__eq__(self, other)
        return self._key == other._key

    def __hash__(self):
        """Hash of the key (of the inner graph once rewritten), consistent with ``__eq__``."""
        if self._rebuilt:
            return OpFromGraph.__hash__(self)
        return hash((type(self), self._key))

    def make_node(self, *inputs):
        """Inputs converted to ``input_types``; outputs of ``output_types``."""
        if len(inputs) != len(self.input_types):
            raise ValueError(f"{self.name} expects {len(self.input_types)} inputs")
        inputs = [t.filter_variable(x) for x, t in zip(inputs, self.input_types, strict=True)]
        return Apply(self, inputs, [t() for t in self.output_types])
