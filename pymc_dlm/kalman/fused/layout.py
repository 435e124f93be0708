r"""The fused kernels' inputs and outputs, declared once.

Everything that passes arrays to the kernels reads this module: the graph nodes
(:mod:`~pymc_dlm.kalman.fused.definition`, :mod:`~pymc_dlm.kalman.fused.ops`), the C entry
points and their callers (:mod:`~pymc_dlm.kalman.fused.native`) and the C code of pytensor's C
backends (:mod:`~pymc_dlm.kalman.fused.ccode`). No offset into a descriptor is written by
hand anywhere else: :class:`Descriptor` computes them, and the numba code that reads and
writes descriptors is generated from it (:func:`numba_source`).

The kernels' inputs (the canonical layout of :func:`~pymc_dlm.kalman.fused.canonical.
canonical_inputs`): one leading batch axis of length 1 (shared) or n_batch, and for the matrices
that may vary over time one time axis of length 1 (constant) or T. The letters are those of
:mod:`pymc_dlm.model.notation`; a factor's name says so (``_sqrt``: any :math:`L` with
:math:`X = L L^\top`).

=============  =============  ====  ===================================================
name           model letter   rank  meaning
=============  =============  ====  ===================================================
y              y              3     observations (n_batch, T, p), NaN where missing
F              F              4     observation matrix (n_batch, TF, p, n)
G              G              4     transition matrix (n_batch, TG, n, n)
W_sqrt         W              4     factor of the state noise covariance (n_batch, TW, n, k)
obs_sd         V              3     observation standard deviations (n_batch, TV, p)
m0             m0             2     mean of theta_0 (n_batch, n); with diffuse states a_1
C0             C0             3     factor of C0 (n_batch, n, c); with diffuse states P_{*,1}
Pinf_sqrt      --             3     factor of the diffuse covariance P_{inf,1} (n_batch, n, d)
=============  =============  ====  ===================================================

``C0`` is the one input whose meaning depends on the mode, and the mode is read from
``Pinf_sqrt``: with ``d = 0`` columns the prior is proper and ``C0`` is the factor of
:math:`C_0`; with ``d > 0`` the kernels start from the prediction of step 1 made outside them
(:func:`~pymc_dlm.kalman.diffuse.diffuse_start`), ``m0`` is :math:`a_1` and ``C0`` the
covariance :math:`P_{*,1}` (Durbin & Koopman 2012, §5.2).

Descriptors: the C entry points take one int64, the address of a descriptor (an int64
array). For each input it holds the address and then the shape; then the gradient's
cotangent ``g`` (address and length) and its ``need`` bit mask; then the address of each
output; last the two addresses of the straight-line sandwiches of a constant G (or zeros).
"""

from typing import NamedTuple

import numpy as np

__all__ = [
    "Slot",
    "INPUTS",
    "NAMES",
    "RANKS",
    "COTANGENT",
    "Descriptor",
    "GRAD",
    "check_ranks",
    "kernel_array",
    "numba_source",
]


class Slot(NamedTuple):
    """One array passed to the kernels: its name, its rank and what it holds."""

    name: str
    rank: int
    meaning: str


#: The kernels' inputs, in the order of every signature that takes them.
INPUTS = (
    Slot("y", 3, "observations (n_batch, T, p), NaN where missing"),
    Slot("F", 4, "observation matrix (n_batch, TF, p, n)"),
    Slot("G", 4, "transition matrix (n_batch, TG, n, n)"),
    Slot("W_sqrt", 4, "factor of the state noise covariance (n_batch, TW, n, k)"),
    Slot("obs_sd", 3, "observation standard deviations (n_batch, TV, p)"),
    Slot("m0", 2, "mean of theta_0, or a_1 with diffuse states (n_batch, n)"),
    Slot("C0", 3, "factor of C0, or P_{*,1} with diffuse states (n_batch, n, c)"),
    Slot("Pinf_sqrt", 3, "factor of the diffuse covariance P_{inf,1} (n_batch, n, d)"),
)
NAMES = tuple(s.name for s in INPUTS)
RANKS = tuple(s.rank for s in INPUTS)
#: The gradient kernel's cotangent of the log-likelihood, one per batch member.
COTANGENT = Slot("g", 1, "cotangent of the log-likelihood (n_batch,)")


class Descriptor(NamedTuple):
    """The int64 descriptor of one entry point: which arrays it carries, in which order.

    ``outputs`` are the output names; ``out_like[i]`` is the input whose shape output ``i``
    takes (``None``: one value per batch member, the length of y's first axis).
    """

    kind: str
    inputs: tuple
    need_mask: bool
    outputs: tuple
    out_like: tuple

    def offset(self, name):
        """Position of array ``name``'s address (its shape follows, for an input)."""
        k = 0
        for slot in self.inputs:
            if slot.name == name:
                return k
            k += 1 + slot.rank
        k += int(self.need_mask)
        for out in self.outputs:
            if out == name:
                return k
            k += 1
        raise KeyError(f"no array {name!r} in the {self.kind} descriptor")

    @property
    def need_at(self):
        """Position of the ``need`` bit mask (the gradient's descriptor only)."""
        return sum(1 + s.rank for s in self.inputs)

    @property
    def spec_at(self):
        """Position of the two sandwich addresses."""
        return self.need_at + int(self.need_mask) + len(self.outputs)

    @property
    def size(self):
        """Length of the descriptor."""
        return self.spec_at + 2


#: The kernels' entry: the inputs and the cotangent, the ``need`` mask, the log-likelihood
#: and one gradient per input (shaped like it).
GRAD = Descriptor(
    "loglik_grad",
    (*INPUTS, COTANGENT),
    True,
    ("loglik", *(f"d_{s.name}" for s in INPUTS)),
    (None, *range(len(INPUTS))),
)


def check_ranks(where, variables):
    """Raise unless ``variables`` match :data:`INPUTS` in number and rank.

    ``where`` names the caller in the message. Guards every entry to the kernels: a wrong
    count or rank would otherwise be read through the descriptor as other arrays' memory.
    """
    ranks = [v.ndim for v in variables]
    if len(ranks) != len(INPUTS) or any(r != s.rank for r, s in zip(ranks, INPUTS)):
        expected = ", ".join(f"{s.name} (rank {s.rank})" for s in INPUTS)
        raise TypeError(f"{where} takes the arrays {expected}; got ranks {ranks}")


def kernel_array(x):
    """``x`` as the one array type the kernels are compiled for: float64, C-contiguous, writable.

    Numba compiles a kernel, and every compiled function it calls, once per type of its
    arguments, and a read-only array (a view of a constant, a broadcast) is a type of its
    own: a kernel called on it would be compiled again (tens of seconds) for the same code.
    Every caller from Python passes its arrays through this function (a copy only where
    ``x`` is not already of that type).
    """
    return np.require(x, dtype=np.float64, requirements=("C", "W"))


def _view(name, k, rank):
    dims = ", ".join(f"d[{k + 1 + j}]" for j in range(rank))
    return f"carray(f64_at(d[{k}]), ({dims},))"


def numba_source():
    """Source of the numba functions that read and write descriptors.

    ``inputs(d)``: the inputs described at the start of descriptor ``d``, an ``Inputs``;
    ``describe(d, inp)``: write the addresses and shapes of ``inp`` (an ``Inputs``);
    ``grad_outputs(d, inp)``: the gradient entry's output arrays (a ``Gradients``, fields
    named as :data:`GRAD`'s outputs); ``describe_grad_outputs(d, out)``: write their
    addresses; ``contiguous(arrays)``: the ``Inputs`` of a tuple of arrays in the order of
    :data:`NAMES`, copied where not C-contiguous (a graph node's inputs). The code is
    executed (with ``carray``, ``f64_at``, ``np``, ``Inputs`` and ``Gradients`` in its
    namespace) by :mod:`~pymc_dlm.kalman.fused.native`.
    """
    views = [f"{s.name}={_view(s.name, GRAD.offset(s.name), s.rank)}" for s in INPUTS]
    lines = ["def inputs(d):", f"    return Inputs({', '.join(views)})", ""]
    lines += ["def describe(d, inp):"]
    for s in INPUTS:
        k = GRAD.offset(s.name)
        lines.append(f"    d[{k}] = inp.{s.name}.ctypes.data")
        lines += [f"    d[{k + 1 + j}] = inp.{s.name}.shape[{j}]" for j in range(s.rank)]
    lines += ["", "def grad_outputs(d, inp):"]
    outs = []
    for name, like in zip(GRAD.outputs, GRAD.out_like, strict=True):
        shape = f"(inp.{NAMES[0]}.shape[0],)" if like is None else f"inp.{NAMES[like]}.shape"
        outs.append(f"{name}=carray(f64_at(d[{GRAD.offset(name)}]), {shape})")
    lines.append(f"    return Gradients({', '.join(outs)})")
    lines += ["", "def describe_grad_outputs(d, out):"]
    for name in GRAD.outputs:
        lines.append(f"    d[{GRAD.offset(name)}] = out.{name}.ctypes.data")
    copies = [f"{s}=np.ascontiguousarray(arrays[{i}])" for i, s in enumerate(NAMES)]
    lines += ["", "def contiguous(arrays):", f"    return Inputs({', '.join(copies)})"]
    return "\n".join(lines) + "\n"
