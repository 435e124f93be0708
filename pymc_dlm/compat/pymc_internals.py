"""The entries of :mod:`pymc_dlm.compat` for PyMC's private symbols.

PyMC is imported only when an entry is first called (from ``distribution.py`` and
``fleet/``): ``kalman/`` imports the package :mod:`pymc_dlm.compat` and never loads PyMC.
"""

from importlib import import_module

import pytensor.tensor as pt

from pymc_dlm.compat.routes import ROUTES, _forced, _route, _symbol


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


#: The log-densities registered by the fallback of :func:`register_logprob`: Op class -> fn.
_LOGPS = {}


def register_logprob(rv_type):
    """Decorator: register ``fn(op, values, *inputs)`` as ``rv_type``'s log-density.

    Wraps ``pymc.logprob.abstract._logprob.register``. Fallback: PyMC's documented route, a
    ``Distribution`` subclass whose ``logp`` its metaclass registers. That ``logp`` receives
    the value and the Op's inputs but not the Op, whose declared structure (time-varying
    matrices, noise form, diffuse states) the log-density reads; so ``fn`` is kept here and
    every Op of ``rv_type`` built by :func:`structured_op` is an instance of a subclass of
    its own, registered with a ``logp`` that calls ``fn`` with that Op. The same graph, the
    same numbers. The subclasses are made at run time: plain ``pickle`` cannot store such an
    Op (cloudpickle, which PyMC and Dask use, can).
    """
    found = _route("logprob", "pymc.logprob.abstract:_logprob")

    def decorator(fn):
        if found is not None:
            return found.register(rv_type)(fn)
        _LOGPS[rv_type] = fn
        return fn

    return decorator


def structured_op(cls, **kwargs):
    """``cls(**kwargs)``, an Op whose log-density :func:`register_logprob` registered.

    On the fallback of :func:`register_logprob`, an instance of a subclass of ``cls`` made
    for this Op (same name, same dispatch through ``cls`` otherwise) whose log-density is
    registered through PyMC's ``Distribution`` route.
    """
    fn = next((_LOGPS[c] for c in cls.__mro__ if c in _LOGPS), None)
    if fn is None or _route("logprob", "pymc.logprob.abstract:_logprob") is not None:
        return cls(**kwargs)
    own = type(cls.__name__, (cls,), {"__module__": cls.__module__})
    op = own(**kwargs)

    def logp(value, *inputs):
        return fn(op, [value], *inputs)

    base = _symbol("pymc.distributions.distribution", "Distribution")
    type(f"{cls.__name__}_logp", (base,), {"rv_type": own, "logp": staticmethod(logp)})
    return op


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
