"""The kernels are compiled once per argument type: no literal, no read-only constant array.

numba compiles a function called from compiled code once per type of its arguments, and a
literal (``False``, ``0``) is a type of its own: ``f(x, False)`` and ``f(x, True)`` are two
compilations of ``f`` and of everything it calls. In the fused kernels this cost a cold
compile of 147 s instead of 79 s (``_forward`` was compiled four times). This test reads the
kernels' source and fails on a call of a compiled, not inlined, kernel function with a
literal bool, int or string argument; the rule and its remedy (``bool(0)``, ``int(0)``) are
written in ``pymc_dlm/kalman/fused/steps.py``. Likewise a numpy array that compiled code
reads from a module or from its builder is a read-only constant there, another type
(:func:`test_no_array_constant_reaches_a_kernel_from_compiled_code`).
"""

import ast
from pathlib import Path

import numpy as np
import pytest

from pymc_dlm.kalman.fused import layout

FUSED = Path(__file__).resolve().parents[2] / "pymc_dlm" / "kalman" / "fused"
#: Decorators of functions compiled on their own (not inlined into their callers).
COMPILED = {"_jit", "_cold"}


def _compiled_functions(trees):
    names = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                if any(isinstance(d, ast.Name) and d.id in COMPILED for d in node.decorator_list):
                    names.add(node.name)
    return names


def _literal_calls(trees, compiled):
    found = []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name not in compiled:
                continue
            for arg in [*node.args, *(k.value for k in node.keywords)]:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, (bool, int, str)):
                    found.append(f"{path.name}:{node.lineno} {name}(... {arg.value!r} ...)")
    return found


def test_no_literal_argument_to_a_compiled_kernel_function():
    trees = {p: ast.parse(p.read_text()) for p in sorted(FUSED.glob("*.py"))}
    compiled = _compiled_functions(trees)
    assert {"_forward", "_filter_member", "_headed"} <= compiled  # the rule has targets
    assert _literal_calls(trees, compiled) == []


def test_the_check_finds_a_literal_argument():
    tree = ast.parse("@_jit\ndef f(a, b):\n    pass\n\ndef g(x):\n    return f(x, False)\n")
    trees = {Path("example.py"): tree}
    assert _literal_calls(trees, _compiled_functions(trees)) == ["example.py:6 f(... False ...)"]


@pytest.mark.parametrize(
    "x",
    [
        np.arange(6.0).reshape(2, 3).T,  # not C-contiguous
        np.broadcast_to(np.ones(3), (2, 3)),  # read-only view
        np.arange(6).reshape(2, 3),  # integers
    ],
)
def test_kernel_array_gives_the_one_compiled_type(x):
    got = layout.kernel_array(x)
    assert got.dtype == np.float64 and got.flags.c_contiguous and got.flags.writeable
    np.testing.assert_array_equal(got, x)


#: Decorators of functions that numba compiles (on their own, inlined, or as a graph's body).
NUMBA = COMPILED | {"_inline", "numba_graph_njit"}


def _array_assignments(body):
    """Names that the statements of ``body`` bind to a new numpy array."""
    return {
        t.id for stmt in body if isinstance(stmt, ast.Assign) and _makes_array(stmt.value)
        for t in stmt.targets if isinstance(t, ast.Name)
    }  # fmt: skip


def _is_compiled(fn):
    return any(isinstance(d, ast.Name) and d.id in NUMBA for d in fn.decorator_list)


def _makes_array(value):
    if not isinstance(value, ast.Call):
        return False
    f = value.func
    return (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "np"
            ) or (isinstance(f, ast.Name) and f.id == "diffuse_factor")  # fmt: skip


def _compiled_with_outside_arrays(tree, imported):
    """(compiled function, the array constants it sees) for every compiled function.

    A compiled function sees its module's arrays, the arrays it imports from other kernel
    modules and those of the builder it is nested in (a closure).
    """
    module = _array_assignments(tree.body) | imported

    def visit(node, outside):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef):
                if _is_compiled(child):
                    yield child, outside
                else:
                    yield from visit(child, outside | _array_assignments(child.body))
            else:
                yield from visit(child, outside)

    yield from visit(tree, module)


def _constant_array_arguments(trees):
    """Calls in compiled code that pass an array constant as is (read-only there).

    An array constant: a name bound to a new numpy array outside compiled code, at module
    level (here or in a kernel module it is imported from) or in the builder of a graph's
    compiled function (a closure).
    """
    exported = set().union(*(_array_assignments(t.body) for t in trees.values()))
    found = []
    for path, tree in trees.items():
        imported = {
            alias.asname or alias.name for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) for alias in node.names
        } & exported  # fmt: skip
        for fn, outside in _compiled_with_outside_arrays(tree, imported):
            stored = [n for n in ast.walk(fn) if isinstance(n, ast.Name)]
            local = {a.arg for a in fn.args.args} | {
                n.id for n in stored if isinstance(n.ctx, ast.Store)
            }  # fmt: skip
            for node in ast.walk(fn):
                if isinstance(node, ast.Call):
                    for arg in node.args:
                        if isinstance(arg, ast.Name) and arg.id in outside - local:
                            found.append(f"{path.name}:{node.lineno} {arg.id}")
    return found


def test_no_array_constant_reaches_a_kernel_from_compiled_code():
    """Compiled code passes the kernels arrays it allocates or receives, never a constant.

    A numpy array that compiled code reads from a module or from the function that built it
    (a closure) is a read-only constant there, a type of its own: found 2026-12-07 in the
    numba cache of a cold run, ``discounted_moments_into`` passed the module's
    ``GENERAL_ROUTINE`` to ``_filter_member``, and the discounted graphs passed their
    ``Pinf_sqrt`` (and ``need``) to the kernels, each compiling the forward pass and
    everything under it a second time. The remedy is a copy (``x.copy()``) or an array
    allocated in the compiled function.
    """
    trees = {p: ast.parse(p.read_text()) for p in sorted(FUSED.glob("*.py"))}
    assert _constant_array_arguments(trees) == []


def test_the_check_finds_a_constant_array_argument():
    source = (
        "SPEC = np.zeros(2)\n\n@_jit\ndef f(a, b):\n    pass\n\n"
        "@_jit\ndef g(x):\n    return f(x, SPEC)\n\n"
        "@_jit\ndef h(x):\n    SPEC = np.zeros(2)\n    return f(x, SPEC)\n"
    )
    trees = {Path("example.py"): ast.parse(source)}
    assert _constant_array_arguments(trees) == ["example.py:9 SPEC"]
