"""Straight-line sandwiches of a constant G against the kernels' general routine and numpy.

``pymc_dlm.kalman.fused.specialize`` emits machine code for ``G M G' + A`` and ``G' M G``
with G's indices and coefficients as constants. It is meant to do the same floating-point
operations in the same order as the general routine (``steps._sandwich``), so the witness
is twofold: numpy's dense products (independent, to round-off) and the general routine
(bitwise). In a model graph, the whole log-likelihood and gradient must then be bitwise
equal with and without the straight-line code; the fused tests (``test_fused.py``) compare
the same graphs, which use it whenever G is constant, with the scan definition.
"""

import numba
import numpy as np
import pymc as pm
import pytensor.tensor as pt
import pytest

import pymc_dlm as dlm
from pymc_dlm.kalman.fused import ops, specialize
from pymc_dlm.kalman.fused.ops import FusedLoglikGrad
from pymc_dlm.kalman.fused.steps import _sandwich, _sparse
from tests.support.bitwise import assert_bitwise_equal

RNG = np.random.default_rng(20261125)


def _trend_seasonal(period=12):
    """G of a local linear trend + dummy seasonal (the benchmark's model 2): 13 states."""
    s = period - 1
    G = np.zeros((2 + s, 2 + s))
    G[:2, :2] = [[1.0, 1.0], [0.0, 1.0]]
    G[2, 2:] = -1.0
    G[3:, 2:-1] += np.eye(s - 1)
    return G


def _random_sparse(n, density, seed, unit=False, zero_rows=0):
    rng = np.random.default_rng(seed)
    G = rng.normal(size=(n, n)) * (rng.random((n, n)) < density)
    if unit:
        G = np.sign(G)
    G[rng.choice(n, size=zero_rows, replace=False)] = 0.0
    return G


TRANSITIONS = {
    "trend_seasonal": _trend_seasonal(),
    "dense_2": np.array([[0.9, -0.3], [0.2, 1.1]]),
    "permutation": np.eye(6)[[2, 0, 5, 1, 3, 4]],
    "sparse_general": _random_sparse(9, 0.3, 1),
    "sparse_unit_zero_rows": _random_sparse(8, 0.4, 2, unit=True, zero_rows=2),
    "ar3_companion": np.array([[0.5, -0.2, 0.1], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
}


@numba.njit
def _general(S, M, A, has_add):
    pattern = _sparse(S)
    n = M.shape[0]
    X = np.empty((n, n))
    out = np.empty((n, n))
    _sandwich(pattern, M, X, out, A, has_add)
    return out


def _straight_line(names):
    predict, pull_back = (specialize.symbol_address(name) for name in names)
    call = specialize.call_address

    @numba.njit
    def run(M, A):
        out = np.empty_like(M)
        call(predict(), M.ctypes.data, out.ctypes.data, A.ctypes.data)
        back = M.copy()
        call(pull_back(), back.ctypes.data, back.ctypes.data, 0)  # in place
        return out, back

    return run


@pytest.mark.parametrize("name", list(TRANSITIONS))
def test_straight_line_sandwiches_equal_numpy_and_the_general_routine(name):
    G = TRANSITIONS[name]
    n = G.shape[0]
    names = specialize.sandwich_names(G)
    assert names is not None
    B = RNG.normal(size=(n, n))
    M = B @ B.T
    A = RNG.normal(size=(n, n))
    A = A + A.T
    out, back = _straight_line(names)(M, A)
    scale = np.abs(M).max() * np.abs(G).sum(axis=1).max() ** 2
    np.testing.assert_allclose(
        out, G @ M @ G.T + A, rtol=0, atol=1e-13 * (scale + np.abs(A).max())
    )
    np.testing.assert_allclose(back, G.T @ M @ G, rtol=0, atol=1e-13 * scale)
    assert np.array_equal(out, out.T) and np.array_equal(back, back.T)
    assert np.array_equal(out, _general(G, M, A, True))
    assert np.array_equal(back, _general(np.ascontiguousarray(G.T), M, A, False))


def test_large_or_non_finite_transitions_keep_the_general_routine():
    assert specialize.sandwich_names(RNG.normal(size=(60, 60))) is None  # > MAX_TERMS
    G = _trend_seasonal()
    G[0, 0] = np.nan
    assert specialize.sandwich_names(G) is None
    assert specialize.sandwich_names(np.ones((2, 3))) is None
    again = specialize.sandwich_names(_trend_seasonal())
    assert again == specialize.sandwich_names(_trend_seasonal())  # compiled once, same names


def _model(diffuse, y):
    prior = {} if diffuse else {"m0": 0.0, "C0": 100.0}
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=3)
        e = pm.HalfNormal("e", 1.0)
        comp = dlm.LocalLinearTrend(s[0], s[1], **prior) + dlm.Seasonal(4, s[2], **prior)
        dlm.DLM("y", comp, sigma_obs=e, observed=y)
    return m


def _sandwich_getter(fn):
    nodes = fn._pytensor_function.maker.fgraph.apply_nodes
    (node,) = [n for n in nodes if isinstance(n.op, FusedLoglikGrad)]
    return ops.sandwiches(node)[0]


@pytest.mark.parametrize("diffuse", [False, True], ids=["proper", "diffuse"])
def test_model_graph_with_constant_G_is_bitwise_equal_to_the_general_route(diffuse, monkeypatch):
    T = 60
    y = np.cumsum(RNG.normal(size=T)) + RNG.normal(size=T) + 2.0 * np.sin(np.arange(T))
    y[[1, 2, 30]] = np.nan

    def compile_fn():
        m = _model(diffuse, y)
        fn = m.logp_dlogp_function(ravel_inputs=True, mode="NUMBA")
        fn.set_extra_values({})
        return m, fn

    model, fast = compile_fn()
    assert _sandwich_getter(fast) is not ops._no_sandwich  # G is seen as a constant
    monkeypatch.setattr(specialize, "MAX_TERMS", 0)
    _, general = compile_fn()
    assert _sandwich_getter(general) is ops._no_sandwich
    assert_bitwise_equal(model, fast, general, RNG)


def test_constant_value_sees_through_allocs_and_joins():
    x = pt.join(0, pt.zeros((1, 3)), pt.as_tensor(np.ones((2, 3))))[None]
    np.testing.assert_array_equal(
        ops._constant_value(x), np.vstack([np.zeros((1, 3)), np.ones((2, 3))])[None]
    )
    assert ops._constant_value(x + pt.scalar("a")) is None
