r"""Straight-line machine code for the covariance sandwiches of a constant transition matrix.

The kernels of :mod:`pymc_dlm.kalman.fused.kernels` apply :math:`G` through its non-zero
pattern, read at run time (``_sandwich``): every term costs index loads, and every inner loop
has a length only known at run time. When :math:`G` is a constant of the model graph, shared
by the batch and time-invariant (trends, seasonals, regressions, factor models with fixed
loadings), that work can be done once. This module emits, with llvmlite, two functions

.. math::

    \mathrm{out} = G M G^\top + A \quad\text{(prediction: } R = G C G^\top + W\text{)},
    \qquad
    M \leftarrow G^\top M G \quad\text{(adjoint pull-back: } \bar C = G^\top \bar R G\text{)},

for a symmetric :math:`M`, with every index and coefficient a constant. They perform the
same floating-point operations, in the same order, as ``_sandwich``, except multiplications
by 1 and -1, which are exact and left out: the results are bitwise equal to the general
routine's. Rows of the sandwiched matrix with a single non-zero are not formed at all (their
entries are read from :math:`M` where they are used).

The functions take three addresses ``(M, out, A)`` of C-contiguous ``n x n`` float64
arrays (``A`` unused by the pull-back); ``out`` may be ``M`` (every entry of :math:`M` is
read before any store). They are compiled by numba's JIT (no C compiler needed) when a graph
using them is compiled or loaded from numba's cache, registered with LLVM under a name that
contains a hash of :math:`G`, and called by the kernels through their address (``spec``).

The timing convention is the kernels': :math:`a_t = G m_{t-1}`, :math:`R_t = G C_{t-1}
G^\top + W` (R ``dlm``'s prediction step; Petris, Petrone & Campagnoli 2009, §2.7).

References
----------
Petris, G., Petrone, S. and Campagnoli, P. (2009). *Dynamic Linear Models with R*. Springer.
"""

import hashlib

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from pymc_dlm import compat

__all__ = ["MAX_TERMS", "sandwich_names", "symbol_address", "call_address"]

#: Largest straight-line function emitted (multiply-adds, roughly): beyond it, the general
#: routine (compile time would grow faster than the gain).
MAX_TERMS = 6000

_I64 = ir.IntType(64)
_F64 = ir.DoubleType()
_SIG = ir.FunctionType(ir.VoidType(), [_I64, _I64, _I64])
_libraries = {}  # name -> numba code library (kept alive: it owns the machine code)
_unavailable = set()  # keys of G whose code cannot be generated (compat.compile_llvm's fallback)


def _rows(S):
    """Non-zero pattern of ``S`` by rows, in column order: [[(column, value), ...], ...]."""
    return [
        [(c, float(S[r, c])) for c in range(S.shape[1]) if S[r, c] != 0.0]
        for r in range(S.shape[0])
    ]


def _cost(S):
    """Number of multiply-adds of the straight-line ``S M S'``."""
    rows = _rows(S)
    n = len(rows)
    stage1 = sum(len(row) * n for row in rows if len(row) > 1)
    stage2 = sum((c + 1) * len(rows[c]) for c in range(n))
    return stage1 + stage2


def _emit(module, name, S, has_add):
    """Define ``void name(i64 M, i64 out, i64 A)``: ``out = S M S' (+ A)`` (see module doc)."""
    n = S.shape[0]
    rows = _rows(S)
    fn = ir.Function(module, _SIG, name)
    fn.attributes.add("nounwind")
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ptr = [b.inttoptr(arg, _F64.as_pointer()) for arg in fn.args]
    zero = ir.Constant(_F64, 0.0)

    def at(p, r, c):
        return b.gep(ptr[p], [ir.Constant(_I64, r * n + c)], inbounds=True)

    M = [[b.load(at(0, r, c)) for c in range(n)] for r in range(n)]  # all loads first
    A = (
        [[b.load(at(2, r, c)) if c >= r else None for c in range(n)] for r in range(n)]
        if has_add
        else None
    )

    def times(v, x):
        if v == 1.0:
            return x
        if v == -1.0:
            return b.fneg(x)
        return b.fmul(ir.Constant(_F64, v), x)

    # Stage 1: X = S M, row by row as _sandwich does (0 + g1 m1 + g2 m2 + ...); a row with a
    # single entry is kept symbolic and formed where it is used.
    X = [[None] * n for _ in range(n)]
    for r, row in enumerate(rows):
        if len(row) > 1:
            for c in range(n):
                s = zero
                for k, v in row:
                    s = b.fadd(s, times(v, M[k][c]))
                X[r][c] = s

    def x_entry(r, c):
        row = rows[r]
        if len(row) > 1:
            return X[r][c]
        if len(row) == 1:
            k, v = row[0]
            return b.fadd(zero, times(v, M[k][c]))
        return zero

    # Stage 2: the upper triangle of X S', then both triangles stored.
    values = []
    for r in range(n):
        for c in range(r, n):
            s = A[r][c] if has_add else zero
            for k, v in rows[c]:
                s = b.fadd(s, times(v, x_entry(r, k)))
            values.append((r, c, s))
    for r, c, s in values:
        b.store(s, at(1, r, c))
        if c != r:
            b.store(s, at(1, c, r))
    b.ret_void()


def sandwich_names(G):
    """Compile (once per process) the sandwiches of a constant ``G`` (n, n); return their names.

    Returns ``(prediction, pull_back)`` symbol names, registered with LLVM, or ``None`` when
    ``G`` is too large for straight-line code (:data:`MAX_TERMS`), has non-finite entries, or
    when numba's code libraries are not available (:func:`pymc_dlm.compat.compile_llvm`):
    then the kernels' general routine runs, with bitwise equal results.
    """
    G = np.ascontiguousarray(G, dtype=np.float64)
    if G.ndim != 2 or G.shape[0] != G.shape[1] or not np.all(np.isfinite(G)):
        return None
    H = np.ascontiguousarray(G.T)
    if max(_cost(G), _cost(H)) > MAX_TERMS:
        return None
    key = hashlib.sha256(G.tobytes() + str(G.shape).encode()).hexdigest()[:16]
    names = (f"pymc_dlm_predict_{key}", f"pymc_dlm_pull_back_{key}")
    if names[0] not in _libraries:
        _compile(key, names, G, H)
    return names if names[0] in _libraries else None


def _compile(key, names, G, H):
    """Emit, optimise and link both functions; register their names with LLVM.

    Under numba's compiler lock, so a name is compiled and registered once even when threads
    compile graphs at the same time.
    """

    def fill(module):
        _emit(module, names[0], G, True)
        _emit(module, names[1], H, False)

    with compat.compiler_lock:
        if names[0] in _libraries or key in _unavailable:
            return
        compiled = compat.compile_llvm(f"pymc_dlm_sandwich_{key}", fill, names)
        if compiled is None:
            _unavailable.add(key)
            return
        library, addresses = compiled
        for name, address in zip(names, addresses, strict=True):
            llvm.add_symbol(name, address)
        _libraries[names[0]] = library


def symbol_address(name):
    """A numba intrinsic ``() -> int64``: the address of the registered function ``name``.

    Compiled code holds the name, not the address, so it stays valid in numba's cache;
    :func:`sandwich_names` must have registered the name before such code is loaded.
    """

    @intrinsic
    def address(typingctx):
        def codegen(context, builder, signature, args):
            fn = compat.insert_function(builder.module, _SIG, name)
            return builder.ptrtoint(fn, _I64)

        return types.int64(), codegen

    return address


@intrinsic
def call_address(typingctx, address, m, out, add):
    """Call the function at ``address`` (``void(i64, i64, i64)``) with three array addresses."""
    sig = types.void(types.int64, types.int64, types.int64, types.int64)

    def codegen(context, builder, signature, args):
        fn = builder.inttoptr(args[0], _SIG.as_pointer())
        builder.call(fn, args[1:])
        return compat.dummy_value(context)

    return sig, codegen
