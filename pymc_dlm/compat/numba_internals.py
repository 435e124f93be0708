"""The entries of :mod:`pymc_dlm.compat` for numba's and llvmlite's private symbols.

Each entry is described where it is defined; the package docstring says how routes are
chosen and tested.
"""

import threading
from importlib import import_module

import llvmlite.binding as llvm
import llvmlite.ir as lir
import numba
from numba import types
from numba.extending import intrinsic

from pymc_dlm.compat.routes import ROUTES, _route, _symbol

#: numba's compiler lock (``numba.core.compiler_lock``), held while machine code is compiled
#: or registered (each symbol once). Fallback: a lock of the package's compilations only.
compiler_lock = _route("compiler_lock", "numba.core.compiler_lock:global_compiler_lock")
compiler_lock = compiler_lock or threading.RLock()


def _null_pointer(context):
    return lir.Constant(lir.IntType(8).as_pointer(), None)


def _get_or_insert(module, fnty, name):
    found = module.globals.get(name)
    return found if found is not None else lir.Function(module, fnty, name)


#: ``dummy_value(context)``: the value an intrinsic returns for ``None``
#: (``BaseContext.get_dummy_value``). Fallback: the null ``i8*`` constant it builds.
dummy_value = _route(
    "dummy_value", lambda: _symbol("numba.core.base", "BaseContext").get_dummy_value
)
dummy_value = dummy_value or _null_pointer

#: ``insert_function(module, fnty, name)``: the function ``name`` of an llvmlite module,
#: declared with type ``fnty`` if absent (``numba.core.cgutils.get_or_insert_function``).
#: Fallback: the same lookup in the module's globals.
insert_function = _route("insert_function", "numba.core.cgutils:get_or_insert_function")
insert_function = insert_function or _get_or_insert


_TypingError = _route(  # and BaseContext.make_array, used by _data_pointer
    "borrow",
    lambda: (
        _symbol("numba.core.base", "BaseContext").make_array
        and _symbol("numba.core.errors", "TypingError")
    ),
)


@intrinsic
def _data_pointer(typingctx, arr):
    """The data pointer of a C-contiguous array, typed as a pointer to its elements."""
    if not isinstance(arr, types.Array) or arr.layout != "C":
        raise _TypingError(f"_data_pointer needs a C-contiguous array, got {arr}")
    sig = types.CPointer(arr.dtype)(arr)

    def codegen(context, builder, signature, args):
        return context.make_array(signature.args[0])(context, builder, args[0]).data

    return sig, codegen


@intrinsic
def _keep_alive(typingctx, arrays):
    """Use ``arrays`` (a tuple) here, so that numba frees none of them before this point."""
    return types.none(arrays), lambda context, builder, signature, args: dummy_value(context)


# Inlined into the kernels at numba-IR level: no call, no reference counts of their own.
_inline = numba.njit(nogil=True, inline="always")
_borrowed = _inline(lambda A: numba.carray(_data_pointer(A), A.shape))
_borrowed_matrix = _inline(lambda flat, r, c: numba.carray(_data_pointer(flat), (r, c)))
_same = _inline(lambda A: A)
_nothing = _inline(lambda arrays: None)
_sliced_matrix = _inline(lambda flat, r, c: flat[: r * c].reshape((r, c)))

#: ``borrow(A)``: a view of the C-contiguous ``A`` without a memory owner, so numba's atomic
#: reference counts of it do nothing (they were three quarters of a local-level step,
#: measured with ``perf``). Valid only while ``A``'s memory is: a function's arguments, or
#: local arrays passed to :data:`keep_alive` after the view's last use. Private route: a
#: pointer intrinsic (``context.make_array``) under ``numba.carray``. Fallback: ``A``.
#: ``keep_alive(arrays)``: use the tuple ``arrays`` here, so that numba frees none of them
#: before this point (the owners of borrowed views). Fallback: nothing.
#: ``matrix_view(flat, rows, cols)``: the first ``rows * cols`` entries of the C-contiguous
#: vector ``flat`` as a borrowed matrix. Fallback: a reshaped slice.
borrow, keep_alive, matrix_view = (
    (_borrowed, _keep_alive, _borrowed_matrix)
    if _TypingError is not None
    else (_same, _nothing, _sliced_matrix)
)


def _stub_bitcode(name):
    """Bitcode of a module that defines ``void name()``, a function that traps if ever run."""
    module = lir.Module(name="pymc_dlm_entry_symbols")
    fn = lir.Function(module, lir.FunctionType(lir.VoidType(), []), name=name)
    lir.IRBuilder(fn.append_basic_block()).unreachable()
    return llvm.parse_assembly(str(module)).as_bitcode()


def _load_entry_cache():
    normalize_signature = _symbol("numba.core.sigutils", "normalize_signature")
    CompileResultCacheImpl = _symbol("numba.core.caching", "CompileResultCacheImpl")
    FunctionCache = _symbol("numba.core.caching", "FunctionCache")
    CFunc = _symbol("numba.core.ccallback", "CFunc")

    class EntryCacheImpl(CompileResultCacheImpl):
        """numba's cache of a compile result, without the bitcode kept for linking.

        Loading that bitcode costs 0.06 s of a start (1.4 MB for the gradient entry); an
        entry is called by address, never linked. The stub left in its place names the C
        wrapper, which is how numba finds the wrapper's address in the machine code.
        """

        def reduce(self, cres):
            libdata, *rest = cres._reduce()
            name, kind, data = libdata
            if kind != "object":  # another numba layout: keep numba's own
                return (libdata, *rest)
            machine_code, _linking_bitcode = data
            symbols = _stub_bitcode(cres.fndesc.llvm_cfunc_wrapper_name)
            return ((name, kind, (machine_code, symbols)), *rest)

    class EntryCache(FunctionCache):
        _impl_class = EntryCacheImpl

    def compile_lean(fn, sig, wrap=lambda cache, impl: cache):
        entry = CFunc(fn, normalize_signature(sig), locals={}, options={"nogil": True})
        entry._cache = wrap(EntryCache(fn), EntryCacheImpl)  # machine code only, either way
        entry.compile()
        return entry

    CFunc.enable_caching  # noqa: B018  (AttributeError when numba caches otherwise)
    return compile_lean, EntryCache


_entry_cache = _route("entry_cache", _load_entry_cache)

#: The class of the entries' lean cache (private route), or None.
EntryCache = _entry_cache[1] if _entry_cache is not None else None


def compile_entry(fn, sig, store=None, name=None):
    """``numba.cfunc(sig, cache=True, nogil=True)(fn)``, compiled or loaded from the cache.

    Private route: numba's ``CFunc`` with a cache that keeps the machine code only
    (``CompileResultCacheImpl``, ``FunctionCache``, ``cres._reduce()``). Fallback: the
    public ``numba.cfunc`` and its cache, which also loads the bitcode. Same machine code.
    ``store``: a store of prebuilt compile results looked in first, under ``name`` (see
    :func:`use_store`).
    """
    if ROUTES["entry_cache"] == "private":
        try:
            wrap = lambda cache, impl: _with_store(cache, store, name, impl)  # noqa: E731
            return _entry_cache[0](fn, sig, wrap)
        except (TypeError, AttributeError):  # numba's CFunc changed
            ROUTES["entry_cache"] = "fallback"
    return numba.cfunc(sig, cache=True, nogil=True)(fn)


def _load_prebuilt():
    impl = _symbol("numba.core.caching", "CompileResultCacheImpl")
    for method in ("reduce", "rebuild"):
        getattr(impl, method)
    _symbol("numba.core.dispatcher", "Dispatcher").enable_caching  # noqa: B018 (sets _cache)
    return impl


_prebuilt = _route("prebuilt", _load_prebuilt)


class _StoreFirst:
    """numba's cache protocol (``load_overload``, ``save_overload``): a store, then numba's.

    A compile result found in ``store`` (prebuilt ahead of time, see
    :mod:`pymc_dlm.kalman.fused.prebuilt`) is rebuilt from its machine code; otherwise the
    dispatcher's own cache is asked. A new compile result is saved to numba's cache, and
    also to the store when the store records (while a store is being built).
    """

    def __init__(self, fallback, store, name, impl):  # impl: its methods ignore ``self``
        self._fallback, self._store, self._name, self._impl = fallback, store, name, impl

    def load_overload(self, sig, target_context):
        payload = self._store.load(self._name, str(sig))
        if payload is None:
            return self._fallback.load_overload(sig, target_context)
        target_context.refresh()  # as numba's cache does: the runtime (NRT) is initialised
        return self._impl.rebuild(None, target_context, payload)

    def save_overload(self, sig, cres):
        if self._store.recording:
            self._store.save(self._name, str(sig), self._impl.reduce(None, cres))
        self._fallback.save_overload(sig, cres)

    def __getattr__(self, attribute):  # flush, cache_path, ...: numba's cache
        if attribute.startswith("_"):
            raise AttributeError(attribute)
        return getattr(self._fallback, attribute)


def _with_store(cache, store, name, impl=None):
    if store is None or _prebuilt is None or not store.active():
        return cache
    return _StoreFirst(cache, store, name, impl or _prebuilt)


def use_store(dispatcher, store, name):
    """Make the ``cache=True`` numba ``dispatcher`` look in ``store`` first, under ``name``.

    ``store`` has ``active()`` (False: leave numba's cache alone), ``load(name, signature)
    -> payload or None``, ``save(name, signature, payload)`` and ``recording``. Private route:
    the dispatcher's ``_cache`` (numba's ``CompileResultCacheImpl`` reduces and rebuilds
    compile results). Fallback: nothing (the dispatcher compiles, or loads numba's own
    cache). Same machine code up to the CPU it was generated for.
    """
    dispatcher._cache = _with_store(dispatcher._cache, store, name)


_external_function = _route("external_function", lambda: types.ExternalFunction)


def external_function(name, sig):
    """A numba callable of the C function registered with LLVM as ``name`` (or None).

    Wraps ``numba.types.ExternalFunction`` (undocumented): compiled code holds the name, not
    the address. None for the fallback: the caller calls (and links in) the function itself.
    """
    return None if _external_function is None else _external_function(name, sig)


def _load_codegen():
    codegen = import_module("numba.core.codegen")
    for attribute in ("create_ir_module", "add_ir_module", "finalize", "get_pointer_to_function"):
        getattr(codegen.JITCodeLibrary, attribute)
    codegen.JITCPUCodegen.create_library  # noqa: B018
    lock = _symbol("numba.core.compiler_lock", "global_compiler_lock")  # finalize needs it
    return _symbol("numba.core.registry", "cpu_target"), lock


_cpu_target = _route("codegen", _load_codegen)


def compile_llvm(name, fill, symbols):
    """``(owner, addresses of symbols)`` of the ``ir.Module`` that ``fill(module)`` defines.

    Compiled by numba's CPU code library (``numba.core.registry.cpu_target``) under numba's
    compiler lock; ``owner`` owns the machine code. None for the fallback: the caller uses
    its general routine.
    """
    if _cpu_target is None:
        return None
    cpu_target, lock = _cpu_target
    with lock:
        library = cpu_target.target_context.codegen().create_library(name)
        module = library.create_ir_module(name)
        fill(module)
        library.add_ir_module(module)
        library.finalize()
        return library, [library.get_pointer_to_function(s) for s in symbols]
