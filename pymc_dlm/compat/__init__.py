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

The entries live in one module per library (``numba_internals``, ``pytensor_internals``,
``pymc_internals``) and are all imported here: callers import them from
``pymc_dlm.compat``.
"""

from pymc_dlm.compat.numba_internals import (
    EntryCache,
    _get_or_insert,
    borrow,
    compile_entry,
    compile_llvm,
    compiler_lock,
    dummy_value,
    external_function,
    insert_function,
    keep_alive,
    matrix_view,
    use_store,
)
from pymc_dlm.compat.pymc_internals import (
    copy_with_shared,
    normalize_rng_param,
    plain_logp_dlogp_function,
    register_change_dist_size,
    register_logprob,
    register_support_point,
    set_logp_dlogp_function,
    set_print_name,
    structured_op,
    value_grad_function,
)
from pymc_dlm.compat.pytensor_internals import (
    normalize_size_param,
    numba_graph_njit,
    register_numba_funcify,
    register_object_mode,
)
from pymc_dlm.compat.routes import _FOUND, FALLBACK_ENV, ROUTES

__all__ = [
    "FALLBACK_ENV",
    "ROUTES",
    "EntryCache",
    "borrow",
    "compile_entry",
    "compile_llvm",
    "compiler_lock",
    "copy_with_shared",
    "dummy_value",
    "external_function",
    "insert_function",
    "keep_alive",
    "matrix_view",
    "normalize_rng_param",
    "normalize_size_param",
    "numba_graph_njit",
    "plain_logp_dlogp_function",
    "register_change_dist_size",
    "register_logprob",
    "structured_op",
    "register_numba_funcify",
    "register_object_mode",
    "register_support_point",
    "set_logp_dlogp_function",
    "set_print_name",
    "use_store",
    "value_grad_function",
]

_ = (_FOUND, _get_or_insert)  # re-exported for the tests of the fallbacks
