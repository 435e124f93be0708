r"""Functions evaluated at every posterior draw: compiled once, run in chunks.

* :func:`freeze_shared` turns the ``pm.Data`` under a graph into constants, so that a scan
  over draws has no implicit inputs;
* :func:`compile_over_draws` compiles a function of one draw's values looped over the draws
  by a scan, with a random generator threaded through; :func:`evaluate_over_draws` runs it
  in chunks (with a progress bar).
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.replace import graph_replace
from pytensor.graph.traversal import ancestors
from pytensor.tensor.random.type import RandomGeneratorType

from pymc_dlm.postprocess.progress import chunked

__all__ = ["compile_over_draws", "evaluate_over_draws", "freeze_shared"]


def freeze_shared(variables):
    """Replace the shared variables (``pm.Data``, dim lengths) under ``variables`` by constants.

    The scans built per draw are strict about their inputs: a shared dim length (a model with
    ``dims``) reaching a nested scan would otherwise be an implicit input. Random generators
    are left alone. The values are read now, when the function is compiled.
    """
    shared = [
        v
        for v in ancestors(variables)
        if isinstance(v, SharedVariable) and not isinstance(v.type, RandomGeneratorType)
    ]
    if not shared:
        return list(variables)
    consts = {}
    for v in shared:
        c = pt.constant(v.get_value(borrow=False), dtype=v.type.dtype)
        consts[v] = c if c.type == v.type else pt.specify_shape(c, v.type.shape)
    return graph_replace(list(variables), consts, strict=False)


def compile_at_draw(target, outputs):
    """``outputs`` as a compiled function of the target's free variables at one draw.

    The free variables are replaced by placeholders and the shared data frozen at their
    values (:func:`freeze_shared`); compiled in FAST_COMPILE (small graphs, called once per
    posterior draw). The function takes the free variables' values in ``target.inputs``
    order.
    """
    placeholders = [v.type() for v in target.inputs]
    outs = graph_replace(list(outputs), dict(zip(target.inputs, placeholders)), strict=False)
    return pytensor.function(
        placeholders, freeze_shared(outs), mode="FAST_COMPILE", on_unused_input="ignore"
    )


def compile_over_draws(target, draw_fn, n_outputs):
    """Compile ``draw_fn(values, rng) -> (outputs, next_rng)`` looped over draws by a scan.

    The values are the target's free variables at one draw; the returned function takes them
    stacked on a leading draw axis (or, when the matrices depend on none, a number of draws).
    """
    stacked = [
        pt.tensor(v.name, shape=(None, *v.type.shape), dtype=v.type.dtype) for v in target.inputs
    ]
    rng = pytensor.shared(np.random.default_rng(), name="rng")
    n = len(stacked)

    def step(*args):
        outs, next_rng = draw_fn(list(args[:n]), args[n])
        return [*outs, next_rng]

    info = [None] * n_outputs + [rng]
    if stacked:
        *outs, next_rng = pytensor.scan(
            step, sequences=stacked, outputs_info=info, return_updates=False
        )
        inputs = stacked
    else:
        count = pt.lscalar("n_draws")
        *outs, next_rng = pytensor.scan(
            step, outputs_info=info, n_steps=count, return_updates=False
        )
        inputs = [count]
    fn = pytensor.function(inputs, outs, updates={rng: next_rng})
    return fn, rng, bool(stacked)


def evaluate_over_draws(compiled, values, n_total, seed, chunk_size, progressbar, description):
    """Evaluate a :func:`compile_over_draws` function in chunks; outputs concatenated."""
    fn, rng, has_inputs = compiled
    rng.set_value(np.random.default_rng(seed.integers(2**63)), borrow=True)
    pieces = []
    for lo, hi in chunked(n_total, chunk_size, progressbar, description):
        pieces.append(fn(*[v[lo:hi] for v in values]) if has_inputs else fn(hi - lo))
    return [np.concatenate(p, axis=0) for p in zip(*pieces)]
