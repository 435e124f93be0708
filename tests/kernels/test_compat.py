"""The fallbacks of ``pymc_dlm.compat`` give the numbers of the private routes.

Each private symbol of numba, pytensor or PyMC that the package uses sits in
``pymc_dlm.compat`` with a fallback made of public API. The fallbacks of compiled code are
chosen when the module is imported, so they run in a child process that forces them through
``PYMC_DLM_COMPAT_FALLBACK``, with a numba cache directory of its own (numba's cache of the
kernels does not know which helpers were inlined into them). The child's log-likelihoods
and gradients (numba and C backends), support point and draws must equal this process's to
1e-12 relative. Forced one at a time, ``borrow``, ``external_function`` and
``numba_dispatch`` each gave this process's numbers bit for bit; forced together, one
gradient component of the local level differed by 3 units in the last place (7e-16
relative). The cause was not isolated: the graph is then compiled uncached, with the kernels
linked into it, and LLVM optimises the graph's own ops (compiled by pytensor with fastmath
flags) in a different context. The straight-line code of a constant G and the Python-level
entries are switched in this process.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from llvmlite import ir
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from pymc_dlm import compat
from pymc_dlm.kalman.fused import specialize
from tests.support import compat_cases, logprob_case
from tests.support.child import ROOT, child_results

#: Every entry with a fallback but ``codegen`` (its fallback, the general routine, is
#: switched in this process below; forcing it here would leave the fallbacks of
#: ``insert_function`` and ``dummy_value``, used by the straight-line code, unexercised).
FORCED = (
    "compiler_lock",
    "borrow",
    "dummy_value",
    "insert_function",
    "entry_cache",
    "prebuilt",
    "external_function",
    "numba_dispatch",
    "size_param",
    "rng_param",
    "support_point",
    "change_dist_size",
    "print_name",
    "object_mode",
    "logprob",
)


def test_every_private_route_is_available():
    """With the tested numba, pytensor and PyMC, no fallback is taken (a slower one would be).

    A newer release that drops a private symbol makes this test name the entry.
    """
    compat.normalize_rng_param(None)  # the PyMC entries resolve when first used
    compat.value_grad_function()
    fallbacks = [name for name, route in compat.ROUTES.items() if route != "private"]
    assert fallbacks == []
    assert set(FORCED) | {"codegen", "logp_reuse"} == set(compat.ROUTES)


@pytest.mark.slow  # the child compiles the kernels without numba's cache: minutes
def test_fallbacks_in_a_child_process_equal_the_private_routes(tmp_path):
    want = compat_cases.results()
    forced = {compat.FALLBACK_ENV: ",".join(FORCED)}
    got = child_results("tests.support.compat_cases", tmp_path, **forced)
    routes = got.pop("routes")
    assert {name for name, route in routes.items() if route == "fallback"} == set(FORCED)
    want.pop("routes")
    assert set(got) == set(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=1e-12, atol=0, err_msg=key)


def test_logprob_fallback_gives_the_private_numbers():
    """PyMC's ``Distribution`` route (one Op subclass per variable) gives the same numbers.

    The child forces only ``logprob``, which compiles nothing of numba's: it shares this
    process's numba cache. Mutation: ``structured_op`` returning ``cls(**kwargs)`` on the
    fallback (no log-density registered for the Op): NotImplementedError in the child.
    """
    want = logprob_case.results()
    env = dict(os.environ, PYTHONPATH=str(ROOT), **{compat.FALLBACK_ENV: "logprob"})
    child = subprocess.run(
        [sys.executable, "-m", "tests.support.logprob_case"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert child.returncode == 0, child.stderr[-3000:]
    got = json.loads(child.stdout.strip().splitlines()[-1])
    assert want.pop("route") == "private" and got.pop("route") == "fallback"
    for name in ("fixed", "discounted", "family"):
        assert want.pop(f"{name}_ops") == ["SymbolicRandomVariable"]
        assert got.pop(f"{name}_ops") == [{"fixed": "DLMRV"}.get(name, f"{name.title()}DLMRV")]
    assert got == want


def test_general_routine_when_no_straight_line_code(monkeypatch):
    """Without numba's code libraries (``codegen``) a constant G takes the general routine."""
    model = compat_cases.trend_seasonal_diffuse()
    want = compat_cases._logp_dlogp(model)
    G = np.eye(7) + np.diag(np.full(6, 0.25), 1)  # a G no other test compiles
    monkeypatch.setattr(compat.numba_internals, "_cpu_target", None)
    assert specialize.sandwich_names(G) is None
    monkeypatch.setattr(specialize, "_libraries", {})  # the model's G compiled no more
    monkeypatch.setattr(specialize, "_unavailable", set())
    assert compat_cases._logp_dlogp(compat_cases.trend_seasonal_diffuse()) == want


@pytest.mark.parametrize("size", [None, 3, (2, 3), np.array([4]), pt.as_tensor([2, 5])])
def test_size_param_fallback(monkeypatch, size):
    want = compat.normalize_size_param(size)
    monkeypatch.setattr(compat.pytensor_internals, "_size_param", None)
    got = compat.normalize_size_param(size)
    assert got.type == want.type
    if size is not None:
        np.testing.assert_array_equal(got.eval(), want.eval())


def test_rng_param_fallback(monkeypatch):
    rng = pt.random.shared_rng(seed=3)
    assert compat.normalize_rng_param(rng) is rng
    monkeypatch.setitem(compat._FOUND, "rng_param", None)
    assert compat.normalize_rng_param(rng) is rng
    assert compat.normalize_rng_param(None).type == rng.type
    with pytest.raises(TypeError, match="rng"):
        compat.normalize_rng_param(pt.scalar())


def test_insert_function_fallback():
    fnty = ir.FunctionType(ir.VoidType(), [])
    private, fallback = ir.Module("private"), ir.Module("fallback")
    want = compat.insert_function(private, fnty, "f")
    assert compat.insert_function(private, fnty, "f") is want
    got = compat._get_or_insert(fallback, fnty, "f")
    assert compat._get_or_insert(fallback, fnty, "f") is got
    assert str(got) == str(want)


def _twice_op(name):
    """A new Op class with a Python ``perform`` only (2 x), as the mode search of counts is.

    A class of its own each time: numba's dispatch of a subclass would be its parent's.
    """

    def make_node(self, x):
        x = pt.as_tensor_variable(x)
        return Apply(self, [x], [x.type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = 2.0 * inputs[0]

    attributes = {"__props__": (), "make_node": make_node, "perform": perform}
    return type(name, (Op,), attributes)


_Twice, _TwiceFallback = _twice_op("Twice"), _twice_op("TwiceFallback")


def test_object_mode_fallback(monkeypatch, recwarn):
    """Without ``generate_fallback_impl`` pytensor's default numba dispatch runs ``perform``.

    The same numbers in numba's object mode; only pytensor's warning comes back.
    """
    compat.register_object_mode(_Twice)
    monkeypatch.setattr(compat.pytensor_internals, "_fallback_impl", None)
    compat.register_object_mode(_TwiceFallback)
    x = pt.dvector("x")
    value = np.array([1.5, -2.0])
    private = pytensor.function([x], _Twice()(x) + 1.0, mode="NUMBA")
    assert not [w for w in recwarn if "object mode" in str(w.message)]
    fallback = pytensor.function([x], _TwiceFallback()(x) + 1.0, mode="NUMBA")
    assert [w for w in recwarn if "object mode" in str(w.message)]
    np.testing.assert_array_equal(private(value), fallback(value))
    np.testing.assert_array_equal(private(value), 2.0 * value + 1.0)
