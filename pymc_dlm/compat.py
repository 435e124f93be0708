r"""Every private or undocumented symbol of numba, pytensor and PyMC that the package uses.

Each entry wraps one such symbol (its *private route*) and has a *fallback* made of public
API that gives identical results, slower at times. No other module of the package imports
a private symbol of these libraries. ``docs/architecture.md`` lists the entries, and
``tests/kernels/test_compat.py`` runs the fallbacks.

An entry's route is chosen once, when first needed (at import for numba and pytensor): the
fallback when a private symbol is missing, or when the environment variable
``PYMC_DLM_COMPAT_FALLBACK`` names the entry (comma-separated, or ``all``); :data:`ROUTES`
records the choices. Private symbols are imported by name (``importlib``) when an entry is
resolved, so that a missing one selects the fallback. PyMC is imported only when a PyMC
entry is first called (from ``distribution.py``): ``kalman/`` imports this module and
never loads PyMC.

numba's on-disk cache of a ``cache=True`` function does not record the routes of the helpers
inlined into it. The routes are part of ``kalman.fused.native.VERSION`` (entry names, graph
cache keys) but not of the kernels' cache entries: a process that forces a fallback of
compiled code should set ``NUMBA_CACHE_DIR`` to a directory of its own.
"""

import os
import threading
from importlib import import_module

import llvmlite.binding as llvm
import llvmlite.ir as lir
import numba
import pytensor.tensor as pt
from numba import types
from numba.extending import intrinsic
from pytensor.graph.basic import Variable
from pytensor.link.numba.dispatch import numba_funcify
from pytensor.tensor.type_other import NoneConst, NoneTypeT

#: The environment variable that forces fallbacks: entry names separated by commas, or "all".
FALLBACK_ENV = "PYMC_DLM_COMPAT_FALLBACK"
_FORCED = {s.strip() for s in os.environ.get(FALLBACK_ENV, "").split(",") if s.strip()}

#: The route taken by each entry: "private" or "fallback".
ROUTES = {}
_FOUND = {}  # entry -> its private objects, or None


def _forced(name):
    return name in _FORCED or "all" in _FORCED


def _symbol(module, name):
    """``module.name``, imported (an ImportError or AttributeError when it is missing)."""
    return getattr(import_module(module), name)


def _route(name, load, *, forceable=True):
    """The private route or None (the fallback), found once; ROUTES records the choice.

    ``load`` is ``"module:attribute"`` or a function that returns the private objects.
    """
    if name in _FOUND:
        return _FOUND[name]
    found = None
    if not (forceable and _forced(name)):
        try:
            found = _symbol(*load.split(":")) if isinstance(load, str) else load()
        except (ImportError, AttributeError):
            found = None
    ROUTES[name] = "fallback" if found is None else "private"
    _FOUND[name] = found
    return found


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

    def compile_lean(fn, sig):
        entry = CFunc(fn, normalize_signature(sig), locals={}, options={"nogil": True})
        entry._cache = EntryCache(fn)
        entry.compile()
        return entry

    CFunc.enable_caching  # noqa: B018  (AttributeError when numba caches otherwise)
    return compile_lean, EntryCache


_entry_cache = _route("entry_cache", _load_entry_cache)

#: The class of the entries' lean cache (private route), or None.
EntryCache = _entry_cache[1] if _entry_cache is not None else None


def compile_entry(fn, sig):
    """``numba.cfunc(sig, cache=True, nogil=True)(fn)``, compiled or loaded from the cache.

    Private route: numba's ``CFunc`` with a cache that keeps the machine code only
    (``CompileResultCacheImpl``, ``FunctionCache``, ``cres._reduce()``). Fallback: the
    public ``numba.cfunc`` and its cache, which also loads the bitcode. Same machine code.
    """
    if ROUTES["entry_cache"] == "private":
        try:
            return _entry_cache[0](fn, sig)
        except (TypeError, AttributeError):  # numba's CFunc changed
            ROUTES["entry_cache"] = "fallback"
    return numba.cfunc(sig, cache=True, nogil=True)(fn)


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


def _load_numba_dispatch():
    basic = import_module("pytensor.link.numba.dispatch.basic")
    return basic.numba_njit, basic.register_funcify_default_op_cache_key


_numba_dispatch = _route("numba_dispatch", _load_numba_dispatch)


def _register_uncached(op_type):
    """Register with the documented ``numba_funcify``, dropping the cache-key salt."""

    def decorator(dispatch):
        numba_funcify.register(op_type)(lambda op, node=None, **kw: dispatch(op, node, **kw)[0])
        return dispatch

    return decorator


#: pytensor's ``numba_njit`` (``pytensor.link.numba.dispatch.basic``) for the functions a
#: numba dispatch returns. Fallback: ``numba.njit``.
numba_graph_njit = _numba_dispatch[0] if _numba_dispatch is not None else numba.njit

#: ``register_numba_funcify(op_type)``: register a numba dispatch returning ``(function,
#: salt)``; pytensor caches the graphs on disk with the salt in their key
#: (``register_funcify_default_op_cache_key``). Fallback: the documented ``numba_funcify``,
#: and the graphs holding the op are compiled in every process.
register_numba_funcify = _numba_dispatch[1] if _numba_dispatch is not None else _register_uncached


_size_param = _route("size_param", "pytensor.tensor.random.utils:normalize_size_param")


def normalize_size_param(size):
    """``size`` as an int64 vector of static length, or ``NoneConst`` (fallback: the same).

    Wraps ``pytensor.tensor.random.utils.normalize_size_param``.
    """
    if _size_param is not None:
        return _size_param(size)
    if size is None:
        return NoneConst
    if isinstance(size, Variable) and isinstance(size.type, NoneTypeT):
        return size
    if isinstance(size, int):
        return pt.as_tensor_variable([size], ndim=1)
    size = pt.cast(pt.as_tensor_variable(size, ndim=1, dtype="int64"), "int64")
    if size.type.shape == (None,):
        size = pt.specify_shape(size, (pt.get_vector_length(size),))
    return size


def normalize_rng_param(rng):
    """``rng`` checked, or a new shared generator for None (fallback: the same check).

    Wraps ``pymc.pytensorf.normalize_rng_param``.
    """
    found = _route("rng_param", "pymc.pytensorf:normalize_rng_param")
    if found is not None:
        return found(rng)
    if rng is None:
        return pt.random.shared_rng(seed=None)
    if not isinstance(rng.type, pt.random.type.RandomType):
        raise TypeError("The type of rng should be RandomGeneratorType or RandomStateType")
    return rng


def register_logprob(rv_type):
    """Decorator: register ``fn(op, values, *inputs)`` as ``rv_type``'s log-density.

    Wraps ``pymc.logprob.abstract._logprob.register``. No fallback: PyMC's public route, a
    ``logp`` method of a ``Distribution`` class, is called without the Op, whose declared
    structure (time-varying matrices, noise form, diffuse states) the log-likelihood reads.
    The entry is never forced; a missing dispatcher raises an ImportError that names it.
    """
    found = _route("logprob", "pymc.logprob.abstract:_logprob", forceable=False)
    if found is None:
        raise ImportError("pymc.logprob.abstract._logprob is missing: no log-density route")
    return found.register(rv_type)


def _dispatcher_or_method(rv_type, method, dispatcher, adapt):
    """Decorator: register ``fn`` with PyMC's ``dispatcher`` (``module:name``) for ``rv_type``.

    Fallback: PyMC's documented route, a ``Distribution`` subclass (serving nothing else)
    with ``rv_type`` and ``method = adapt(fn)``, which its metaclass registers.
    """

    def decorator(fn):
        found = _route(method, dispatcher)
        if found is not None:
            return found.register(rv_type)(fn)
        base = _symbol("pymc.distributions.distribution", "Distribution")
        attributes = {"rv_type": rv_type, method: staticmethod(adapt(fn))}
        type(f"{rv_type.__name__}_{method}", (base,), attributes)
        return fn

    return decorator


def register_support_point(rv_type):
    """Decorator: register ``fn(op, rv, *inputs)`` as ``rv_type``'s support point.

    Wraps ``pymc.distributions.distribution._support_point``. Fallback: a method
    ``support_point(rv, *inputs)`` (an Op without a class-level signature gets all its
    inputs); the Op is ``rv.owner.op``.
    """
    dispatcher = "pymc.distributions.distribution:_support_point"
    adapt = lambda fn: lambda rv, *inputs: fn(rv.owner.op, rv, *inputs)  # noqa: E731
    return _dispatcher_or_method(rv_type, "support_point", dispatcher, adapt)


def register_change_dist_size(rv_type):
    """Decorator: register ``fn(op, rv, new_size, expand)`` as ``rv_type``'s resizing.

    Wraps ``pymc.distributions.shape_utils._change_dist_size``. Fallback: a method
    ``change_dist_size(rv, new_size, expand)``; the Op is ``rv.owner.op``.
    """
    dispatcher = "pymc.distributions.shape_utils:_change_dist_size"
    adapt = lambda fn: lambda rv, size, expand: fn(rv.owner.op, rv, size, expand)  # noqa: E731
    return _dispatcher_or_method(rv_type, "change_dist_size", dispatcher, adapt)


def set_print_name(name, latex):
    """Class decorator: the name PyMC prints for the variables of an Op class.

    Sets ``_print_name``, read by PyMC's printer (``str(model)``, LaTeX). Fallback (no such
    attribute in PyMC's class, or forced): nothing is set; PyMC prints its default name.
    """

    def decorator(rv_type):
        private = hasattr(rv_type, "_print_name") and not _forced("print_name")
        ROUTES["print_name"] = "private" if private else "fallback"
        if private:
            rv_type._print_name = (name, latex)
        return rv_type

    return decorator


def _load_logp_reuse():
    core = import_module("pymc.model.core")
    core.Model._logp_dlogp_function  # noqa: B018 - the internals relied on
    core.ValueGradFunction.copy  # noqa: B018
    return core.ValueGradFunction


def value_grad_function():
    """PyMC's ``ValueGradFunction`` class, or None: the fallback.

    Wraps ``pymc.model.core.ValueGradFunction`` (with ``copy``) and
    ``Model._logp_dlogp_function``, which :mod:`pymc_dlm.fleet.reuse` replaces per model to
    share one compiled NUTS log-density between series. Fallback: no sharing, every model
    compiles its own function as ``pm.sample`` does (the same numbers, slower).
    """
    return _route("logp_reuse", _load_logp_reuse)


def plain_logp_dlogp_function(model, grad_vars, **kwargs):
    """PyMC's own ``Model._logp_dlogp_function`` of ``model`` (the class's, not a replacement).

    Only reached when :func:`value_grad_function` found the internals.
    """
    return type(model)._logp_dlogp_function(model, grad_vars, **kwargs)


def set_logp_dlogp_function(model, function):
    """Make ``function`` the ``_logp_dlogp_function`` that ``model.logp_dlogp_function`` calls."""
    model._logp_dlogp_function = function


def copy_with_shared(fn, old, new):
    """A copy of ValueGradFunction ``fn`` whose compiled function reads ``new`` for ``old``.

    ``ValueGradFunction.copy`` and a ``Function.copy(swap=...)`` of its private
    ``_pytensor_function``: no compilation.
    """
    fn = fn.copy()
    fn._pytensor_function = fn._pytensor_function.copy(swap={old: new})
    return fn
