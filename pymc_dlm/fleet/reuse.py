"""One compiled NUTS log-density per model structure, shared by the series of a process.

``pm.sample`` compiles the model's log-density and gradient (``logp_dlogp_function``) for
every model, although the models of a fleet usually differ only in their data: 10 to 20
seconds for a local level plus ``Seasonal(12)`` on two busy cores, against about a second of
sampling. :func:`share_compiled` makes a model's ``logp_dlogp_function`` look up a cache of
this process first:

* the model's log-density graph is compared with the cached ones by
  ``pytensor.graph.basic.equal_computations``, the DLM's observed data (a constant of the
  graph) being the one input allowed to differ. Every other constant (system matrices, the
  positions of missing values, the number of steps) must be equal, and any other shared
  variable (``pm.Data``) makes the graphs differ: such models compile as usual;
* on a match, the cached compiled function is copied (``Function.copy``, no compilation)
  with the DLM's data swapped for this series' values;
* otherwise the function is compiled with the data held in a shared variable, and cached.

Every series goes through the same compiled graph (data in a shared variable) whether it
found it in the cache or compiled it, so its draws do not depend on which series a process
ran before. Only PyMC's own NUTS (``nuts_sampler="pymc"``) calls ``logp_dlogp_function``;
other samplers compile their own functions and are unaffected.

This relies on two PyMC internals, ``Model._logp_dlogp_function`` and
``ValueGradFunction.copy``, reached through :mod:`pymc_dlm.compat`; without them (its
``logp_reuse`` entry's fallback) :func:`share_compiled` leaves the model alone.
"""

import threading

import numpy as np
import pytensor
from pytensor.graph.basic import Constant, equal_computations
from pytensor.graph.replace import clone_replace, graph_replace
from pytensor.graph.traversal import graph_inputs

from pymc_dlm import compat

__all__ = ["share_compiled", "cache_stats"]

_entries = {}  # key -> list of _Entry, oldest first
_order = []  # (key, entry) in order of compilation, for the bound below
#: Compiled functions kept per process; the oldest is dropped beyond (a fleet has few
#: structures, but series of many different lengths would otherwise accumulate).
MAX_ENTRIES = 32
_lock = threading.Lock()
_stats = {"compiled": 0, "reused": 0}


class _Entry:
    """A compiled log-density: its graph, its inputs, the data variable and the function."""

    def __init__(self, costs, inputs, data, fn):
        self.costs, self.inputs, self.data, self.fn = costs, inputs, data, fn


def cache_stats():
    """``{"compiled": n, "reused": m}``: log-densities compiled and reused by this process."""
    return dict(_stats)


def _find(key, costs, inputs, data):
    for entry in _entries.get(key, []):
        if equal_computations(
            costs, entry.costs, in_xs=[*inputs, data], in_ys=[*entry.inputs, entry.data]
        ):
            return entry
    return None


def share_compiled(model, dlm_rv):
    """Serve ``model``'s NUTS log-density from the process cache (see the module docstring).

    Parameters
    ----------
    model : pymc.Model
        A model holding the DLM variable ``dlm_rv``; changed in place (one attribute).
    dlm_rv : TensorVariable
        The model's DLM random variable, whose observed data may differ between series.
    """
    if compat.value_grad_function() is None:  # compile per series, as pm.sample does
        return
    compat.set_logp_dlogp_function(model, _SharedLogpDlogp(model, dlm_rv))


class _SharedLogpDlogp:
    """``Model._logp_dlogp_function`` of one model, served from the process cache.

    A module-level class rather than a closure, so that a model carrying it can be pickled
    (PyMC sends the model to the processes of parallel chains); there, it starts from that
    process's own, empty cache.
    """

    def __init__(self, model, dlm_rv):
        self.model, self.dlm_rv = model, dlm_rv

    def _plain(self, grad_vars, **kwargs):
        return compat.plain_logp_dlogp_function(self.model, grad_vars, **kwargs)

    def __call__(self, grad_vars, *, tempered=False, ravel_inputs=None, initial_point, **kwargs):
        model = self.model
        data = model.rvs_to_values.get(self.dlm_rv)
        if tempered or not ravel_inputs or not isinstance(data, Constant):
            return self._plain(
                grad_vars,
                tempered=tempered,
                ravel_inputs=ravel_inputs,
                initial_point=initial_point,
                **kwargs,
            )
        grad_vars = list(grad_vars)
        costs = [model.logp()]
        used = {i for i in graph_inputs(costs) if not isinstance(i, Constant)}
        extra = [v for v in model.value_vars if v in used and v not in grad_vars]
        inputs = grad_vars + extra
        key = (
            tuple((v.name, v.type) for v in grad_vars),
            tuple((v.name, v.type) for v in extra),
            data.type,
            repr(sorted(kwargs.items())),
        )
        with _lock:
            entry = _find(key, costs, inputs, data)
            if entry is None:
                shared = pytensor.shared(np.array(data.data), shape=data.type.shape)
                # A full copy is kept for comparisons: PyMC's pre-gradient rewrites change the
                # graph given to them in place, the nodes ``graph_replace`` shares included.
                entry_costs = clone_replace(costs, {data: shared})
                fn = compat.value_grad_function()(
                    graph_replace(costs, {data: shared}, strict=True),
                    grad_vars,
                    {v: initial_point[v.name] for v in extra},
                    model=model,
                    initial_point=initial_point,
                    ravel_inputs=ravel_inputs,
                    **kwargs,
                )
                entry = _Entry(entry_costs, inputs, shared, fn)
                _entries.setdefault(key, []).append(entry)
                _order.append((key, entry))
                if len(_order) > MAX_ENTRIES:
                    old_key, old_entry = _order.pop(0)
                    _entries[old_key].remove(old_entry)
                _stats["compiled"] += 1
            else:
                _stats["reused"] += 1
        mine = pytensor.shared(np.array(data.data), shape=data.type.shape)
        return compat.copy_with_shared(entry.fn, entry.data, mine)
