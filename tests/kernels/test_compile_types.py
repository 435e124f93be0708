"""The kernels are compiled once per argument type: no literal argument to a compiled call.

numba compiles a function called from compiled code once per type of its arguments, and a
literal (``False``, ``0``) is a type of its own: ``f(x, False)`` and ``f(x, True)`` are two
compilations of ``f`` and of everything it calls. In the fused kernels this cost a cold
compile of 147 s instead of 79 s (``_forward`` was compiled four times). This test reads the
kernels' source and fails on a call of a compiled, not inlined, kernel function with a
literal bool, int or string argument; the rule and its remedy (``bool(0)``, ``int(0)``) are
written in ``pymc_dlm/kalman/fused/steps.py``.
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
