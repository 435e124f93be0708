r"""The fused log-likelihood kernels behind C entry points, called by symbol from graphs.

When a numba function calls another compiled function, numba links the callee's code into
the caller's and generates machine code for the whole again. Every model graph (and every
``numba.cfunc`` nutpie builds around one) would otherwise re-generate the kernels of
:mod:`pymc_dlm.kalman.fused.kernels`: tens of seconds for each new model, although the
kernels themselves never change.

Here each kernel is compiled once per machine, and cached, as a C function
``void entry(int64 address)`` (a ``numba.cfunc``). ``address`` points to a descriptor, an
int64 array holding the address and the shape of every input and output; the entry rebuilds
the arrays as views (``numba.carray``) and runs the kernel. The entry's address is registered
with LLVM under a name that contains the kernels' source hash (:data:`VERSION`), and compiled
graphs call it by that name (``numba.types.ExternalFunction``): they contain a call, not the
kernel, and stay cacheable because the name, not the address, is in their code. (Without
that undocumented type, the fallback of :func:`pymc_dlm.compat.external_function`, graphs
call the kernels directly and compile them.)

Descriptor layout (int64): for each input y, F, G, W, sd, m0, C0, Q (and ``g`` for the
gradient) its address then its shape (ranks :data:`RANKS`); for the gradient, then the
``need`` flags as a bit mask; then the address of each output; last, the two addresses of
the straight-line sandwiches of a constant G (:mod:`~pymc_dlm.kalman.fused.specialize`), or
zeros for the general routine. Inputs and outputs are
C-contiguous float64 arrays; outputs have the shapes of :func:`~pymc_dlm.kalman.fused.kernels.
loglik_grad_kernel`'s results.

:func:`register` (of the entry concerned) must run before a graph calling :func:`call_loglik`
or :func:`call_loglik_grad` is compiled or loaded from a cache; the numba dispatch of the
fused ops (:mod:`pymc_dlm.kalman.fused.ops`) calls it.
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
from pymc_dlm.kalman.fused import adjoint, diffuse, forward, kernels, specialize, sqrtform

__all__ = [
    "VERSION",
    "RANKS",
    "register",
    "entry_address",
    "call_loglik",
    "call_loglik_grad",
]

#: Ranks of the kernels' inputs y, F, G, W, sd, m0, C0, Q.
RANKS = (3, 4, 4, 4, 3, 2, 3, 3)
_N_INPUTS = len(RANKS) + sum(RANKS)  # address and shape of each input
_N_VALUE = _N_INPUTS + 1 + 2  # + the output, the sandwiches
_N_GRAD = _N_INPUTS + 2 + 1 + 9 + 2  # + g (address, length), need mask, 9 outputs, sandwiches


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

#: Hash of the kernels' source (and this module's and the compatibility module's) and of
#: the compatibility routes taken: part of the entry names and of the entries' numba cache
#: key, so a changed kernel is never called through a stale entry.
VERSION = _source_hash(
    kernels,
    forward,
    sqrtform,
    adjoint,
    diffuse,
    specialize,
    compat,
    sys.modules[__name__],
    extra=repr([(name, compat.ROUTES[name]) for name in COMPILED_ENTRIES]),
)
_SIG = types.void(types.int64)
_VALUE_NAME = f"pymc_dlm_loglik_{VERSION:x}"
_GRAD_NAME = f"pymc_dlm_loglik_grad_{VERSION:x}"
# None when the kernels are called directly instead (compat.external_function's fallback).
_value_symbol = compat.external_function(_VALUE_NAME, _SIG)
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


@_inline
def _inputs(d):
    """The eight input arrays described at the start of descriptor ``d``."""
    return (
        carray(_f64_at(d[0]), (d[1], d[2], d[3])),
        carray(_f64_at(d[4]), (d[5], d[6], d[7], d[8])),
        carray(_f64_at(d[9]), (d[10], d[11], d[12], d[13])),
        carray(_f64_at(d[14]), (d[15], d[16], d[17], d[18])),
        carray(_f64_at(d[19]), (d[20], d[21], d[22])),
        carray(_f64_at(d[23]), (d[24], d[25])),
        carray(_f64_at(d[26]), (d[27], d[28], d[29])),
        carray(_f64_at(d[30]), (d[31], d[32], d[33])),
    )


@_inline
def _describe(d, y, F, G, W, sd, m0, C0, Q):
    """Write the inputs' addresses and shapes into ``d`` (the layout of :func:`_inputs`)."""
    d[0] = y.ctypes.data
    d[1], d[2], d[3] = y.shape
    k = 4
    for x in (F, G, W):
        d[k] = x.ctypes.data
        d[k + 1], d[k + 2], d[k + 3], d[k + 4] = x.shape
        k += 5
    d[19] = sd.ctypes.data
    d[20], d[21], d[22] = sd.shape
    d[23] = m0.ctypes.data
    d[24], d[25] = m0.shape
    d[26] = C0.ctypes.data
    d[27], d[28], d[29] = C0.shape
    d[30] = Q.ctypes.data
    d[31], d[32], d[33] = Q.shape


@_inline
def _spec(d, k):
    """The sandwiches' addresses ``d[k], d[k + 1]`` as the kernels' ``spec`` array."""
    spec = np.empty(2, dtype=np.int64)
    spec[0] = d[k]
    spec[1] = d[k + 1]
    return spec


def _make_value_entry(version):
    def loglik_entry(address):
        d = carray(_i64_at(address), (_N_VALUE,))
        y, F, G, W, sd, m0, C0, Q = _inputs(d)
        out = carray(_f64_at(d[_N_INPUTS]), (d[1],))
        kernels.loglik_into(y, F, G, W, sd, m0, C0, Q, _spec(d, _N_VALUE - 2), out)
        if version < 0:  # never: keeps ``version`` in the entry's cache key
            out[:] = np.nan

    return loglik_entry


def _make_grad_entry(version):
    def loglik_grad_entry(address):
        d = carray(_i64_at(address), (_N_GRAD,))
        y, F, G, W, sd, m0, C0, Q = _inputs(d)
        k = _N_INPUTS
        g = carray(_f64_at(d[k]), (d[k + 1],))
        need = np.empty(8, dtype=np.bool_)
        for i in range(8):
            need[i] = (d[k + 2] >> i) & 1 == 1
        k += 3
        out = (
            carray(_f64_at(d[k]), (d[1],)),
            carray(_f64_at(d[k + 1]), y.shape),
            carray(_f64_at(d[k + 2]), F.shape),
            carray(_f64_at(d[k + 3]), G.shape),
            carray(_f64_at(d[k + 4]), W.shape),
            carray(_f64_at(d[k + 5]), sd.shape),
            carray(_f64_at(d[k + 6]), m0.shape),
            carray(_f64_at(d[k + 7]), C0.shape),
            carray(_f64_at(d[k + 8]), Q.shape),
        )
        kernels.loglik_grad_into(y, F, G, W, sd, m0, C0, Q, g, need, _spec(d, _N_GRAD - 2), out)
        if version < 0:  # never: keeps ``version`` in the entry's cache key
            out[0][:] = np.nan

    return loglik_grad_entry


_MAKERS = {
    "loglik": (_VALUE_NAME, _make_value_entry),
    "loglik_grad": (_GRAD_NAME, _make_grad_entry),
}


def _compile_entry(fn):
    """``numba.cfunc(_SIG, cache=True, nogil=True)(fn)``: :func:`pymc_dlm.compat.compile_entry`."""
    return compat.compile_entry(fn, _SIG)


def _entry(kind):
    """Compile (or load from numba's cache) one entry, register its symbol, return it."""
    name, make = _MAKERS[kind]
    if name not in _entries:
        with compat.compiler_lock:
            if name not in _entries:  # another thread may have registered it meanwhile
                entry = _compile_entry(make(VERSION))
                llvm.add_symbol(name, entry.address)
                _entries[name] = entry
    return _entries[name]


def register(kind):
    """Compile (or load from numba's cache) one entry and register its symbol.

    ``kind`` is ``"loglik"`` or ``"loglik_grad"``. Idempotent and cheap after the first call
    of a process (the first loads machine code from the cache: 7 ms for the gradient's, see
    :func:`pymc_dlm.compat.compile_entry`). One entry at a time: a graph often calls only
    one. Nothing to do when graphs call the kernels directly (no calls by symbol name).
    """
    if _value_symbol is not None:
        _entry(kind)


def entry_address(kind):
    """Address of the ``"loglik"`` or ``"loglik_grad"`` entry, compiling it if needed.

    For callers that are not numba functions (the C code of the fused ops, which fetches the
    address when its compiled module is loaded, so the module itself never holds one).
    """
    return _entry(kind).address


def _make_callers(version):
    # ``version`` is a closure variable so that it is part of the callers' numba cache key:
    # a cached caller never refers to the entry names of other kernel sources.

    @numba.njit(cache=True, nogil=True)
    def call_loglik(y, F, G, W, sd, m0, C0, Q, spec0, spec1, out):
        """Run the log-likelihood entry on C-contiguous inputs, writing ``out`` (B,).

        ``spec0``, ``spec1``: addresses of the sandwiches of a constant G, or zeros.
        """
        d = np.empty(_N_VALUE, dtype=np.int64)
        _describe(d, y, F, G, W, sd, m0, C0, Q)
        d[_N_INPUTS] = out.ctypes.data if version >= 0 else 0
        d[_N_VALUE - 2] = spec0
        d[_N_VALUE - 1] = spec1
        _value_symbol(d.ctypes.data)

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(y, F, G, W, sd, m0, C0, Q, g, need_mask, spec0, spec1, out):
        """Run the gradient entry on C-contiguous inputs, writing the 9 arrays of ``out``.

        ``spec0``, ``spec1``: addresses of the sandwiches of a constant G, or zeros.
        """
        d = np.empty(_N_GRAD, dtype=np.int64)
        _describe(d, y, F, G, W, sd, m0, C0, Q)
        k = _N_INPUTS
        d[k] = g.ctypes.data
        d[k + 1] = g.shape[0]
        d[k + 2] = need_mask if version >= 0 else 0
        k += 3
        d[k] = out[0].ctypes.data
        d[k + 1] = out[1].ctypes.data
        d[k + 2] = out[2].ctypes.data
        d[k + 3] = out[3].ctypes.data
        d[k + 4] = out[4].ctypes.data
        d[k + 5] = out[5].ctypes.data
        d[k + 6] = out[6].ctypes.data
        d[k + 7] = out[7].ctypes.data
        d[k + 8] = out[8].ctypes.data
        d[k + 9] = spec0
        d[k + 10] = spec1
        _grad_symbol(d.ctypes.data)

    return call_loglik, call_loglik_grad


def _make_direct_callers(version):
    # The fallback of calls by symbol name (compat.external_function): the callers call the
    # kernels, and every graph that calls them links the kernels' code (compiled per graph).

    @numba.njit(cache=True, nogil=True)
    def call_loglik(y, F, G, W, sd, m0, C0, Q, spec0, spec1, out):
        """:func:`call_loglik` (by symbol) with the kernel linked in."""
        spec = np.empty(2, dtype=np.int64)
        spec[0] = spec0
        spec[1] = spec1 if version >= 0 else 0
        kernels.loglik_into(y, F, G, W, sd, m0, C0, Q, spec, out)

    @numba.njit(cache=True, nogil=True)
    def call_loglik_grad(y, F, G, W, sd, m0, C0, Q, g, need_mask, spec0, spec1, out):
        """:func:`call_loglik_grad` (by symbol) with the kernel linked in."""
        spec = np.empty(2, dtype=np.int64)
        spec[0] = spec0
        spec[1] = spec1 if version >= 0 else 0
        need = np.empty(8, dtype=np.bool_)
        for i in range(8):
            need[i] = (need_mask >> i) & 1 == 1
        kernels.loglik_grad_into(y, F, G, W, sd, m0, C0, Q, g, need, spec, out)

    return call_loglik, call_loglik_grad


call_loglik, call_loglik_grad = (
    _make_callers(VERSION) if _value_symbol is not None else _make_direct_callers(VERSION)
)
