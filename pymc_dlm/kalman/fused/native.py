r"""The fused kernels behind one C entry point, called by symbol from graphs.

When a numba function calls another compiled function, numba links the callee's code into
the caller's and generates machine code for the whole again. Every model graph (and every
``numba.cfunc`` nutpie builds around one) would otherwise re-generate the kernels of
:mod:`pymc_dlm.kalman.fused.kernels`: tens of seconds for each new model, although the
kernels themselves never change.

Here the kernels are compiled once per machine, and cached, as one C function
``void entry(int64 address)`` (a ``numba.cfunc``). ``address`` points to a descriptor, an
int64 array holding the address and the shape of every input and output; the entry rebuilds
the arrays as views (``numba.carray``) and runs
:func:`~pymc_dlm.kalman.fused.adjoint.loglik_grad_into`. The log-likelihood alone is the same
entry with no gradient wanted (a ``need`` mask of 0: no record, no backward pass), so the
value and the gradient share one build. The entry's address is registered with LLVM under a
name that contains the kernels' source hash (:data:`VERSION`), and compiled graphs call it by
that name (``numba.types.ExternalFunction``): they contain a call, not the kernel, and stay
cacheable because the name, not the address, is in their code. (Without that undocumented
type, the fallback of :func:`pymc_dlm.compat.external_function`, graphs call the kernels
directly and compile them.)

The descriptor's layout is declared in :mod:`pymc_dlm.kalman.fused.layout`
(:data:`~pymc_dlm.kalman.fused.layout.GRAD`), and the numba code that reads and writes it is
generated from there: no offset is written here. Inputs and outputs are C-contiguous float64
arrays; outputs have the shapes of
:func:`~pymc_dlm.kalman.fused.kernels.loglik_grad_kernel`'s results.

:func:`register` must run before a graph calling :func:`call_loglik` or
:func:`call_loglik_grad` is compiled or loaded from a cache; the numba dispatch of the fused
ops (:mod:`pymc_dlm.kalman.fused.ops`) calls it.
"""

import hashlib
import inspect
import sys

import llvmlite.binding as llvm
import numba
import numpy as np
from numba import carray, types
from numba.extending import intrinsic

from pymc_dlm import compat
from pymc_dlm.compat import keep_alive as _keep_alive
from pymc_dlm.kalman import constants
from pymc_dlm.kalman.fused import (
    adjoint,
    adjoint_steps,
    density,
    diffuse,
    discounting,
    discounting_adjoint,
    discounting_sqrt,
    forward,
    guard,
    head_record,
    householder,
    kernels,
    layout,
    prebuilt,
    records,
    specialize,
    sqrtform,
    steady,
    steps,
)

__all__ = [
    "VERSION",
    "RANKS",
    "register",
    "entry_address",
    "call_loglik",
    "call_loglik_grad",
]

#: Ranks of the kernels' inputs (:data:`pymc_dlm.kalman.fused.layout.RANKS`).
RANKS = layout.RANKS
_N_GRAD = layout.GRAD.size
_GRAD_G = layout.GRAD.offset("g")
_GRAD_NEED = layout.GRAD.need_at
_GRAD_SPEC = layout.GRAD.spec_at
_N_KERNEL_INPUTS = len(layout.INPUTS)
_GRAD_LOGLIK = layout.GRAD.offset("loglik")


def _source_hash(*modules, extra=""):
    """An integer that changes whenever the given modules' source (or ``extra``) changes."""
    text = "".join(inspect.getsource(m) for m in modules) + extra
    return int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)


#: The compatibility entries the kernels and their callers are compiled with (their routes
#: are part of :data:`VERSION`).
COMPILED_ENTRIES = (
    "borrow",
    "dummy_value",
    "insert_function",
    "entry_cache",
    "external_function",
    "codegen",
    "numba_dispatch",
)

#: The modules whose source the entry is compiled from (numba's cache of the entry is keyed
#: to this module's file only and does not see a change in another file).
#: ``tests/kernels/test_layout.py`` checks that every module the kernels import is here.
SOURCES = (
    constants,
    kernels,
    records,
    steps,
    forward,
    steady,
    discounting,
    discounting_adjoint,
    discounting_sqrt,
    guard,
    head_record,
    sqrtform,
    householder,
    adjoint,
    adjoint_steps,
    density,
    diffuse,
    specialize,
    layout,
    compat.numba_internals,
    compat.pytensor_internals,
    sys.modules[__name__],
)

#: Hash of :data:`SOURCES` and of the compatibility routes taken: part of the entry names
#: and of the entries' numba cache key, so a changed kernel is never called through a stale
#: entry.
VERSION = _source_hash(
    *SOURCES, extra=repr([(name, compat.ROUTES[name]) for name in COMPILED_ENTRIES])
)
_SIG = types.void(types.int64)
_GRAD_NAME = f"pymc_dlm_loglik_grad_{VERSION:x}"
# None when the kernels are called directly instead (compat.external_function's fallback).
_grad_symbol = compat.external_function(_GRAD_NAME, _SIG)
_entries = {}


def _address_as(dtype):
    """An intrinsic turning an int64 address into a ``dtype*`` pointer."""

    @intrinsic
    def cast(typingctx, address):
        sig = types.CPointer(dtype)(types.int64)

        def codegen(context, builder, signature, args):
            return builder.inttoptr(args[0], context.get_value_type(signature.return_type))

        return sig, codegen

    return cast


_f64_at = _address_as(types.float64)
_i64_at = _address_as(types.int64)


_inline = numba.njit(cache=True, nogil=True, inline="always")


def _generated():
    """The descriptor readers and writers generated from :mod:`~pymc_dlm.kalman.fused.layout`.

    Inlined into their callers; not cached on their own (they have no source file), which
    costs nothing: callers loaded from numba's cache do not compile them.
    """
    namespace = {
        "carray": carray,
        "f64_at": _f64_at,
        "np": np,
        "Inputs": records.Inputs,
        "Gradients": records.Gradients,
    }
    exec(compile(layout.numba_source(), "<pymc_dlm descriptors>", "exec"), namespace)  # noqa: S102
    jit = numba.njit(nogil=True, inline="always")
    names = ("inputs", "describe", "grad_outputs", "describe_grad_outputs", "contiguous")
    return tuple(jit(namespace[name]) for name in names)


_inputs, _describe, _grad_outputs, _describe_grad_outputs, contiguous = _generated()


@_inline
def _need(mask):
    """The ``need`` flags (one per input) of the bit mask ``mask``."""
    need = np.empty(_N_KERNEL_INPUTS, dtype=np.bool_)
    for i in range(_N_KERNEL_INPUTS):
        need[i] = (mask >> i) & 1 == 1
    return need


@_inline
def _spec(d, k):
    """The sandwiches' addresses ``d[k], d[k + 1]`` as the kernels' ``spec`` array."""
    spec = np.empty(2, dtype=np.int64)
    spec[0] = d[k]
    spec[1] = d[k + 1]
    return spec


@_inline
def _spec_array(spec, version):
    """The pair ``spec`` as the kernels' int64 array (``version`` keeps the cache key)."""
    out = np.empty(2, dtype=np.int64)
    out[0] = spec[0]
    out[1] = spec[1] if version >= 0 else 0
    return out


def _make_grad_entry(version):
    def loglik_grad_entry(address):
        d = carray(_i64_at(address), (_N_GRAD,))
        inp = _inputs(d)
        g = carray(_f64_at(d[_GRAD_G]), (d[_GRAD_G + 1],))
        out = _grad_outputs(d, inp)
        kernels.loglik_grad_into(inp, g, _need(d[_GRAD_NEED]), _spec(d, _GRAD_SPEC), out)
        if version < 0:  # never: keeps ``version`` in the entry's cache key
            out.loglik[:] = np.nan

    return loglik_grad_entry


def _compile_entry(fn):
    """``numba.cfunc(_SIG, cache=True, nogil=True)(fn)``: :func:`pymc_dlm.compat.compile_entry`.

    Loaded from the store of prebuilt kernels when it has the entry
    (:mod:`pymc_dlm.kalman.fused.prebuilt`).
    """
    return compat.compile_entry(fn, _SIG, prebuilt.STORE, "loglik_grad_entry")


def _entry():
    """Compile (or load from numba's cache) the entry, register its symbol, return it."""
    if _GRAD_NAME not in _entries:
        with compat.compiler_lock:
            if _GRAD_NAME not in _entries:  # another thread may have registered it meanwhile
                entry = _compile_entry(_make_grad_entry(VERSION))
                llvm.add_symbol(_GRAD_NAME, entry.address)
                _entries[_GRAD_NAME] = entry
    return _entries[_GRAD_NAME]


def register():
    """Compile (or load from numba's cache) the entry and register its symbol.

    Idempotent and cheap after the first call of a process (the first loads machine code
    from the cache: 7 ms, see :func:`pymc_dlm.compat.compile_entry`). Nothing to do when
    graphs call the kernels directly (no calls by symbol name).
    """
    if _grad_symbol is not None:
        _entry()


def entry_address():
    """Address of the entry, compiling it if needed.

    For callers that are not numba functions (the C code of the fused ops, which fetches the
    address when its compiled module is loaded, so the module itself never holds one).
    """
    return _entry().address


def _make_callers(version):
    # ``version`` is a closure variable so that it is part of the callers' numba cache key:
    # a cached caller never refers to the entry names of other kernel sources.

    @numba.njit(cache=True, nogil=True)
    def call_loglik(inp, spec, out):
        """Run the entry for the log-likelihood of ``inp`` alone, writing ``out`` (n_batch,).

        ``inp``: a :class:`~.records.Inputs` of C-contiguous arrays; ``spec``: the two
        addresses of the sandwiches of a constant G, or zeros. No gradient is wanted: the
        cotangent is a zero and the gradients' addresses are null.
        """
        d = np.zeros(_N_GRAD, dtype=np.int64)
        _describe(d, inp)
        g = np.zeros(1)
        d[_GRAD_G] = g.ctypes.data
        d[_GRAD_G + 1] = 1
        d[_GRAD_LOGLIK] = out.ctypes.data if version >= 0 else 0
        d[_GRAD_SPEC] = spec[0]
        d[_GRAD_SPEC + 1] = spec[1]
        _grad_symbol(d.ctypes.data)
        _keep_alive((g,))

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(inp, g, need_mask, spec, out):
        """Run the gradient entry, writing the 9 arrays of ``out`` (a ``Gradients``).

        ``inp``: a :class:`~.records.Inputs` of C-contiguous arrays; ``need_mask``: one bit
        per input; ``spec``: the two addresses of the sandwiches of a constant G, or zeros.
        """
        d = np.empty(_N_GRAD, dtype=np.int64)
        _describe(d, inp)
        d[_GRAD_G] = g.ctypes.data
        d[_GRAD_G + 1] = g.shape[0]
        d[_GRAD_NEED] = need_mask if version >= 0 else 0
        _describe_grad_outputs(d, out)
        d[_GRAD_SPEC] = spec[0]
        d[_GRAD_SPEC + 1] = spec[1]
        _grad_symbol(d.ctypes.data)

    return call_loglik, call_loglik_grad


def _make_direct_callers(version):
    # The fallback of calls by symbol name (compat.external_function): the callers call the
    # kernels, and every graph that calls them links the kernels' code (compiled per graph).

    @numba.njit(cache=True, nogil=True)
    def call_loglik(inp, spec, out):
        """:func:`call_loglik` (by symbol) with the kernel linked in."""
        kernels.loglik_into(inp, _spec_array(spec, version), out)

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(inp, g, need_mask, spec, out):
        """:func:`call_loglik_grad` (by symbol) with the kernel linked in."""
        kernels.loglik_grad_into(inp, g, _need(need_mask), _spec_array(spec, version), out)

    return call_loglik, call_loglik_grad


call_loglik, call_loglik_grad = (
    _make_callers(VERSION) if _grad_symbol is not None else _make_direct_callers(VERSION)
)
