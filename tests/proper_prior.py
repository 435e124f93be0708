"""pymc_dlm with R dlm's proper default prior (C0 = 1e7) on every component.

The components default to ``C0="diffuse"`` (levels, trends, seasonals, regressions) or
``C0="stationary"`` (AR, ARMA, Cycle). The oracle tests written against R dlm's definitions
(``tests/oracles.py``, whose models use C0 = 1e7) build their models through this wrapper, so
that the prior stays the oracle's; an explicit ``C0`` is passed through unchanged.
"""

import functools

import pymc_dlm
import pymc_dlm.components

# Every component class (a new one is covered without a change here) and StateSpace.
_COMPONENTS = (
    *(name for name in pymc_dlm.components.__all__ if name != "Component"),
    "StateSpace",
)


class _ProperPrior:
    def __init__(self, module, C0):
        self._module, self._C0 = module, C0

    def __getattr__(self, name):
        obj = getattr(self._module, name)
        if name not in _COMPONENTS:
            return obj

        @functools.wraps(obj)
        def build(*args, **kwargs):
            if name == "StateSpace" and len(args) >= 5:
                return obj(*args, **kwargs)
            kwargs.setdefault("C0", self._C0)
            return obj(*args, **kwargs)

        return build


def proper_prior(module=pymc_dlm, C0=1e7):
    """``module`` with every component's default ``C0`` replaced by ``C0``."""
    return _ProperPrior(module, C0)


dlm = proper_prior()
