"""How an entry of :mod:`pymc_dlm.compat` chooses its route: private symbol or fallback.

See the package docstring. ``_route(name, load)`` resolves an entry once and records the
choice in :data:`ROUTES`; ``PYMC_DLM_COMPAT_FALLBACK`` forces fallbacks.
"""

import os
from importlib import import_module

__all__ = ["FALLBACK_ENV", "ROUTES"]

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
