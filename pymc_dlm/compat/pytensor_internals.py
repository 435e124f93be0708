"""The entries of :mod:`pymc_dlm.compat` for pytensor's private symbols.

Each entry is described where it is defined; the package docstring says how routes are
chosen and tested.
"""

import warnings
from importlib import import_module

import numba
import pytensor.tensor as pt
from pytensor.graph.basic import Variable
from pytensor.link.numba.dispatch import numba_funcify
from pytensor.tensor.type_other import NoneConst, NoneTypeT

from pymc_dlm.compat.routes import _route


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


_fallback_impl = _route("object_mode", "pytensor.link.numba.dispatch.basic:generate_fallback_impl")


def register_object_mode(op_type):
    """Run ``op_type``'s ``perform`` in numba's object mode, without pytensor's warning.

    For an Op that calls compiled kernels itself (the mode search of the Laplace
    log-likelihood). Private route: ``generate_fallback_impl``
    (``pytensor.link.numba.dispatch.basic``), registered with ``numba_funcify`` under a
    filter of its "object mode" warning. Fallback: nothing is registered; pytensor's default
    ``numba_funcify`` is that same object-mode function, with its warning.
    """
    impl = _fallback_impl
    if impl is None:
        return

    def quiet(op, node=None, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Numba will use object mode")
            return impl(op, node, **kwargs)

    numba_funcify.register(op_type)(quiet)
