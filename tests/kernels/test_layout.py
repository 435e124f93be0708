"""The kernels' inputs declared once (``kalman/fused/layout.py``) and the checks built on it."""

import ast
from pathlib import Path

import numpy as np
import pytensor.tensor as pt
import pytest

from pymc_dlm.kalman.fused import ccode, layout
from pymc_dlm.kalman.fused.ops import FusedLoglik, FusedLoglikGrad
from pymc_dlm.kalman.fused.records import Inputs


def test_descriptor_slots_cover_every_array_once():
    # Every input takes 1 + rank slots, then g (1 + 1), the need mask, one slot per output
    # and the two sandwich addresses: the offsets tile the descriptor with no gap or overlap.
    d = layout.GRAD
    taken = []
    for slot in d.inputs:
        k = d.offset(slot.name)
        taken += list(range(k, k + 1 + slot.rank))
    taken.append(d.need_at)
    taken += [d.offset(name) for name in d.outputs]
    taken += [d.spec_at, d.spec_at + 1]
    assert sorted(taken) == list(range(d.size))
    assert d.size == sum(1 + r for r in layout.RANKS) + 2 + 1 + 9 + 2


def test_generated_source_reads_every_input_at_its_offset():
    src = layout.numba_source()
    for slot in layout.INPUTS:
        k = layout.GRAD.offset(slot.name)
        assert f"d[{k}] = inp.{slot.name}.ctypes.data" in src
        assert f"carray(f64_at(d[{k}])" in src


def _inputs(ranks):
    return [pt.tensor(dtype="float64", shape=(None,) * r) for r in ranks]


@pytest.mark.parametrize("op", [FusedLoglik(), FusedLoglikGrad([True] * 8)])
def test_wrong_rank_is_refused_when_the_node_is_built(op):
    ranks = list(layout.RANKS)
    ranks[3] = 3  # W_sqrt given without its time axis
    inputs = _inputs(ranks)
    if isinstance(op, FusedLoglikGrad):
        inputs.append(pt.vector(dtype="float64"))
    with pytest.raises(TypeError, match=r"W_sqrt \(rank 4\)"):
        op(*inputs)


def test_wrong_count_is_refused():
    with pytest.raises(TypeError, match="takes the arrays y"):
        FusedLoglik()(*_inputs(layout.RANKS[:-1]))


def test_c_code_checks_ranks_and_writes_value_only_descriptor():
    names = [f"in{i}" for i in range(8)]
    code = ccode.call_code("node", names, list(layout.RANKS), ["out0"], "fail;", 0)
    g = layout.GRAD.offset("g")
    assert f"d[{g}] = (npy_int64) &no_cotangent;" in code
    assert f"d[{layout.GRAD.offset('loglik')}] = (npy_int64) PyArray_DATA(out0);" in code
    # No gradient address is written: they stay null.
    assert f"d[{layout.GRAD.offset('d_y')}]" not in code
    with pytest.raises(TypeError, match="ranks"):
        ccode.call_code("node", names, [3] * 8, ["out0"], "fail;", 0)
    with pytest.raises(TypeError, match="outputs"):
        ccode.call_code("node", [*names, "g"], [*layout.RANKS, 1], ["o"] * 3, "fail;", 255)


def test_value_route_equals_gradient_route():
    # The value is the gradient kernel with no gradient wanted: both give the same number,
    # and it is the dense Gaussian log-density of a local level (an independent witness).
    from pymc_dlm.kalman.fused.kernels import loglik_grad_kernel, loglik_kernel

    rng = np.random.default_rng(3)
    T, w, v, c0 = 12, 0.7, 1.3, 2.0
    y = rng.normal(size=(1, T, 1))
    y[0, 4, 0] = np.nan
    inputs = [
        y,
        np.ones((1, 1, 1, 1)),
        np.ones((1, 1, 1, 1)),
        np.full((1, 1, 1, 1), w),
        np.full((1, 1, 1), v),
        np.zeros((1, 1)),
        np.full((1, 1, 1), c0),
        np.zeros((1, 1, 0)),
    ]
    value = loglik_kernel(Inputs(*inputs))[0]
    both = loglik_grad_kernel(Inputs(*inputs), np.ones(1), np.ones(8, dtype=bool))[0][0]
    t = np.arange(1, T + 1)
    cov = c0**2 + w**2 * np.minimum.outer(t, t) + v**2 * np.eye(T)
    obs = ~np.isnan(y[0, :, 0])
    sub = cov[np.ix_(obs, obs)]
    e = y[0, obs, 0]
    _, logdet = np.linalg.slogdet(sub)
    dense = -0.5 * (obs.sum() * np.log(2 * np.pi) + logdet + e @ np.linalg.solve(sub, e))
    assert value == both
    np.testing.assert_allclose(value, dense, rtol=1e-12)


def test_kernel_signatures_take_the_declared_inputs_as_one_structure():
    # Every kernel called from Python or from the entry takes the inputs as one structure
    # (records.Inputs, whose fields are layout.NAMES) named ``inp``, first, and at most eight
    # parameters: no signature lists the inputs one by one.
    import inspect

    from pymc_dlm.kalman.fused import (
        adjoint,
        discounted,
        discounted_adjoint,
        kernels,
        moments,
        native,
        records,
        states,
    )

    structured = [
        kernels.loglik_kernel,
        kernels.loglik_into,
        kernels.steady_start,
        adjoint.loglik_grad_kernel,
        adjoint.loglik_grad_into,
        adjoint.grad_outputs,
        native.call_loglik,
        native.call_loglik_grad,
        states.ffbs_kernel,
        states.ffbs_into,
        states.forecast_into,
        moments.moments_into,
        discounted.discounted_loglik,
        discounted.forward,
        discounted_adjoint.discounted_loglik_grad,
    ]
    for kernel in structured:
        params = tuple(inspect.signature(kernel.py_func).parameters)
        assert params[0] == "inp" and len(params) <= 8, kernel.py_func.__name__
        assert not set(params) & set(layout.NAMES[1:]), kernel.py_func.__name__
    assert records.Inputs._fields == layout.NAMES
    assert records.Gradients._fields == layout.GRAD.outputs


def _module_kind(name):
    """The kind of ``name``: "module", "package" or None (a name imported from a module)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None
    if spec is None:
        return None
    return "package" if spec.submodule_search_locations is not None else "module"


def _imported_package_modules(name, seen):
    """``name`` and every ``pymc_dlm`` module it imports, transitively (read from the source).

    Packages (``__init__``) are not followed: the kernels import modules from them, not the
    names the package itself imports.
    """
    import importlib

    if name in seen:
        return seen
    seen.add(name)
    module = importlib.import_module(name)
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        targets = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                targets.append(sub if _module_kind(sub) else node.module)
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target.startswith("pymc_dlm.") and _module_kind(target) == "module":
                _imported_package_modules(target, seen)
    return seen


def test_the_entry_cache_key_covers_every_module_the_kernels_import():
    """Numba keys the entry's cache to ``native.py`` alone: every other source must be hashed.

    A module that the kernels import but :data:`native.SOURCES` omits would let an edit of it
    run through a stale cached entry.
    """
    from pymc_dlm.kalman.fused import native

    imported = _imported_package_modules("pymc_dlm.kalman.fused.native", set())
    hashed = {m.__name__ for m in native.SOURCES}
    # Imported for names and types only, no compiled code: the package's entry points; and
    # the store of prebuilt kernels, which compiles nothing and is keyed by every source.
    outside = {
        "pymc_dlm",
        "pymc_dlm.kalman",
        "pymc_dlm.kalman.fused",
        "pymc_dlm.kalman.fused.prebuilt",
    }
    assert imported - outside <= hashed, sorted(imported - outside - hashed)


#: The names under which the kernels' inputs appear as parameters: the declared ones
#: (``layout.NAMES``, the discounted kernel's ``records.DiscountInputs``) and the short forms
#: the graph functions used before they took the structures.
_INPUT_NAMES = {*layout.NAMES, "discount", "blocks", "scale", "W", "sd", "Q"}


def _functions(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.FunctionDef):
            yield node


def test_no_function_lists_the_kernels_inputs_one_by_one():
    """No function of ``kalman/fused/`` takes five or more of the inputs as parameters.

    They travel as ``records.Inputs`` (and ``records.DiscountInputs``), in the kernels and in
    the pytensor functions that define the nodes (``definition._definition``,
    ``discounted_ops._definition``). Four is the most a helper takes (``steps._layout``
    reads the batch and time lengths of F, G, W_sqrt and obs_sd).
    """
    fused = Path(__file__).resolve().parents[2] / "pymc_dlm" / "kalman" / "fused"
    listing = []
    for path in sorted(fused.glob("*.py")):
        for node in _functions(path):
            named = [a.arg for a in node.args.args if a.arg in _INPUT_NAMES]
            if len(named) >= 5:
                listing.append((path.name, node.name, named))
    assert not listing, listing


def test_kernel_functions_are_short():
    # Item 2 of the engine's design: functions of at most about 80 lines (docstring included)
    # and 8 parameters in the kernels; a structure of records.py passes the rest.
    fused = Path(__file__).resolve().parents[2] / "pymc_dlm" / "kalman" / "fused"
    over = []
    for path in sorted(fused.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef):
                continue
            args = node.args
            params = len(args.posonlyargs) + len(args.args) + len(args.kwonlyargs)
            params += (args.vararg is not None) + (args.kwarg is not None)
            lines = node.end_lineno - node.lineno + 1
            if params > 8 or lines > 82:
                over.append((path.name, node.name, lines, params))
    assert not over, over
