"""The fused numba route of the DLM log-likelihood against its definition, the scan filter.

On pytensor's numba backend the DLM log-likelihood and its gradient run the hand-written
kernels of ``pymc_dlm.kalman.fused`` (covariance form, analytic adjoint, exact diffuse
recursions for diffuse states). The witness is the
square-root scan filter differentiated by pytensor's autodiff, run on the Python linker
(``FAST_COMPILE``), where the fused rewrite does not exist. Independent algorithm, independent
gradient: agreement to ~1e-10 relative (log-likelihood) checks both the kernels and their
wiring (batching, time variation, missing values, which gradients are skipped).
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

import pymc_dlm as dlm
from pymc_dlm.kalman.fused.ops import FusedLoglik, FusedLoglikGrad, fused_loglik
from pymc_dlm.kalman.fused.records import Inputs
from pymc_dlm.model.notation import SystemMatrices
from tests.support import oracles as O
from tests.support.sqrt_case import sqrt_case
from tests.support.vague_prior import S_LEVEL, S_OBS, S_SEAS, S_SLOPE, vague_case

RNG = np.random.default_rng(20261124)

#: pytensor's C backends need a C++ compiler (``pytensor.config.cxx``); without one, "CVM"
#: runs Python code only and the fused nodes' C code is never compiled.
requires_cxx = pytest.mark.skipif(not pytensor.config.cxx, reason="no C++ compiler for pytensor")


def _series(T, p=None, missing=()):
    shape = (T,) if p is None else (T, p)
    y = np.cumsum(RNG.normal(size=shape), axis=0) + RNG.normal(size=shape)
    for idx in missing:
        y[idx] = np.nan
    return y


def _level_model(y, C0=10.0):
    """A local level with half-normal scales and a proper prior, observing ``y``."""
    with pm.Model() as model:
        s = pm.HalfNormal("s", 2.0)
        e = pm.HalfNormal("e", 2.0)
        dlm.DLM("y", dlm.LocalLevel(s, m0=0.0, C0=C0), sigma_obs=e, observed=y)
    return model


def model_local_level():
    return _level_model(_series(60, missing=[3, 40]), C0=1e7)


def model_trend_seasonal_regression():
    T = 48
    X = RNG.normal(size=(T, 2))
    y = _series(T, missing=[0, 5, 6, 30])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=3)
        b = pm.HalfNormal("b", 0.5)
        e = pm.HalfNormal("e", 1.0)
        comp = (
            dlm.LocalLinearTrend(s[0], s[1], m0=[0.5, -0.1], C0=[10.0, 1.0])
            + dlm.Seasonal(4, s[2], m0=0.0, C0=5.0)
            + dlm.Regression(X, sigma=b, m0=0.0, C0=2.0)
        )
        dlm.DLM("y", comp, sigma_obs=e, observed=y)
    return m


def model_ar_stationary():
    y = _series(50, missing=[10])
    with pm.Model() as m:
        rho = pm.Uniform("rho", -0.9, 0.9, shape=2, initval=[0.4, -0.2])
        s = pm.HalfNormal("s", 1.0, shape=2)
        e = pm.HalfNormal("e", 1.0)
        comp = dlm.LocalLevel(s[0], m0=0.0, C0=100.0) + dlm.AR(rho, s[1], C0="stationary")
        dlm.DLM("y", comp, sigma_obs=e, observed=y)
    return m


def model_factor_loadings():
    """Two series, one factor with a free loading (F is a parameter), partly missing rows."""
    y = _series(40, p=2)
    y[[3, 17], 0] = np.nan
    y[[3, 25], 1] = np.nan
    with pm.Model() as m:
        lam = pm.Normal("lam", 1.0, 0.5)
        m0 = pm.Normal("m0", 0.0, 1.0)
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0, shape=2)
        F = pt.stack([pt.constant(1.0), lam])[:, None]
        ss = dlm.StateSpace(F, np.eye(1), s[None, None] ** 2, m0, 3.0)
        dlm.DLM("y", ss, sigma_obs=e, observed=y)
    return m


def model_batched():
    y = np.stack([_series(30, missing=[2]) for _ in range(3)])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=3)
        e = pm.HalfNormal("e", 1.0)
        dlm.DLM("y", dlm.LocalLevel(s, m0=0.0, C0=50.0), sigma_obs=e, observed=y)
    return m


def model_time_varying_obs():
    T = 36
    scale = np.linspace(0.5, 2.0, T)
    y = _series(T, missing=[7])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0)
        dlm.DLM(
            "y",
            dlm.LocalLevel(s, m0=0.0, C0=20.0),
            sigma_obs=e * scale,
            obs_time_varying=True,
            observed=y,
        )
    return m


def model_diffuse_mixed():
    """Default (exact diffuse) trend, seasonal and time-varying regression + stationary AR.

    Missing values inside the diffuse period (t = 1, 3), a regressor that is zero at first
    (an uninformative scalar while its coefficient is diffuse), G with a parameter (rho).
    """
    T = 40
    X = RNG.normal(size=T)
    X[:4] = 0.0
    y = _series(T, missing=[0, 2, 20])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=3)
        rho = pm.Uniform("rho", -0.9, 0.9, initval=0.5)
        e = pm.HalfNormal("e", 1.0)
        comp = (
            dlm.LocalLinearTrend(s[0], s[1])
            + dlm.Seasonal(4, s[2])
            + dlm.Regression(X, sigma=0.1)
            + dlm.AR(rho[None], 0.5)
        )
        dlm.DLM("y", comp, sigma_obs=e, observed=y)
    return m


def model_diffuse_factor():
    """Two series, a diffuse random-walk factor with a free loading (F is a parameter)."""
    y = _series(30, p=2)
    y[[0, 9], 0] = np.nan
    y[[1, 9], 1] = np.nan
    with pm.Model() as m:
        lam = pm.Normal("lam", 1.0, 0.5)
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0, shape=2)
        F = pt.stack([pt.constant(1.0), lam])[:, None]
        ss = dlm.StateSpace(F, np.eye(1), s[None, None] ** 2, 0.0, "diffuse")
        dlm.DLM("y", ss, sigma_obs=e, observed=y)
    return m


def model_diffuse_damped_batched():
    """Damped trend, G = [[1, 1], [0, phi]] with phi a parameter, every state diffuse.

    The diffuse part depends on phi (P_inf and the Jacobian of the diffuse start), so its
    gradient goes through the diffuse recursion; two series share the parameters.
    """
    y = np.stack([_series(25, missing=[1]), _series(25, missing=[0, 12])])
    with pm.Model(coords={"unit": [0, 1], "t": range(25)}) as m:
        phi = pm.Uniform("phi", 0.2, 0.95, initval=0.7)
        s = pm.HalfNormal("s", 1.0, shape=2)
        e = pm.HalfNormal("e", 1.0)
        G = pt.stack([pt.stack([1.0, 1.0]), pt.stack([pt.constant(0.0), phi])])
        ss = dlm.StateSpace(np.array([[1.0, 0.0]]), G, pt.diag(s**2), 0.0, "diffuse")
        dlm.DLM("y", ss, sigma_obs=e, observed=y, dims=("unit", "t"))  # the batch, declared
    return m


MODELS = [
    model_local_level,
    model_trend_seasonal_regression,
    model_ar_stationary,
    model_factor_loadings,
    model_batched,
    model_time_varying_obs,
    model_diffuse_mixed,
    model_diffuse_factor,
    model_diffuse_damped_batched,
]


def _logp_and_grad(model, mode):
    logp = model.logp()
    grads = pt.grad(logp, model.value_vars)
    return pytensor.function(model.value_vars, [logp, *grads], mode=mode)


def _points(model):
    ip = model.initial_point()
    rng = np.random.default_rng(1)
    jittered = {k: v + rng.uniform(-0.3, 0.3, size=np.shape(v)) for k, v in ip.items()}
    return [[ip[v.name] for v in model.value_vars], [jittered[v.name] for v in model.value_vars]]


def _ops(fn):
    return [type(node.op) for node in fn.maker.fgraph.apply_nodes]


@pytest.mark.parametrize("build", MODELS, ids=lambda f: f.__name__)
def test_fused_equals_scan_definition(build):
    model = build()
    fused = _logp_and_grad(model, None)  # default mode: numba
    scan = _logp_and_grad(model, "FAST_COMPILE")  # Python linker: the scan definition
    ops = _ops(fused)
    assert FusedLoglikGrad in ops, "the numba graph does not take the fused route"
    assert FusedLoglik not in ops, "the log-likelihood should come from the gradient's pass"
    assert not any("Scan" in t.__name__ for t in ops)
    assert FusedLoglikGrad not in _ops(scan)
    for point in _points(model):
        got, want = fused(*point), scan(*point)
        assert np.isfinite(want[0])
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=0)
        for g_got, g_want in zip(got[1:], want[1:]):
            np.testing.assert_allclose(g_got, g_want, rtol=1e-7, atol=1e-9)


C_BACKEND_MODELS = [model_local_level, model_batched, model_time_varying_obs, model_diffuse_mixed]


@requires_cxx
@pytest.mark.parametrize("build", C_BACKEND_MODELS, ids=lambda f: f.__name__)
def test_c_backend_runs_the_kernels_through_c_code(build):
    """On pytensor's C backend ("CVM") the fused nodes run their C code, equal to the scan."""
    model = build()
    fused = _logp_and_grad(model, "CVM")
    scan = _logp_and_grad(model, "FAST_COMPILE")
    assert FusedLoglikGrad in _ops(fused), "the C backend does not take the fused route"
    assert FusedLoglik not in _ops(fused), "the log-likelihood should come from the gradient"
    assert not any("Scan" in t.__name__ for t in _ops(fused))
    for point in _points(model):
        got, want = fused(*point), scan(*point)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=0)
        for g_got, g_want in zip(got[1:], want[1:]):
            np.testing.assert_allclose(g_got, g_want, rtol=1e-7, atol=1e-9)


@requires_cxx
def test_fused_ops_c_code_on_strided_inputs_and_skipped_gradients():
    """The C code copies non-contiguous inputs, and writes zeros for gradients not needed.

    Witness: the same ops run by ``perform`` (the compiled kernels called from Python) on
    contiguous copies.
    """
    inputs = _kernel_inputs(model_batched())
    symbols = [pt.tensor(dtype="float64", shape=(None,) * x.ndim) for x in inputs]
    # Each array enters doubled along its longest axis and the graph takes every other entry:
    # the ops receive strided, non-contiguous views.
    axes = [int(np.argmax(x.shape)) for x in inputs]
    doubled = [np.repeat(x, 2, axis=a) for x, a in zip(inputs, axes, strict=True)]
    views = [
        s[(slice(None),) * a + (slice(None, None, 2),)] for s, a in zip(symbols, axes, strict=True)
    ]
    g = pt.vector(dtype="float64")
    need = (False, False, False, True, True, False, True, False)
    outputs = [FusedLoglik()(*views), *FusedLoglikGrad(need)(*views, g, return_list=True)]
    c_fn = pytensor.function([*symbols, g], outputs, mode="CVM")
    assert FusedLoglikGrad in _ops(c_fn)
    py_fn = pytensor.function([*symbols, g], outputs, mode=pytensor.compile.mode.Mode("py"))
    cot = np.linspace(0.5, 1.5, inputs[0].shape[0])
    got, want = c_fn(*doubled, cot), py_fn(*doubled, cot)
    for a, b in zip(got, want, strict=True):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-14, atol=0)
    for flag, grad in zip(need, got[2:], strict=True):
        assert np.any(grad != 0) if flag else not np.any(grad)


def test_definitions_run_only_where_no_kernel_does():
    """The nodes carry no inner graph; their definition runs where no fused kernel does.

    A series length no other test uses gives node types of their own. numba runs the fused
    nodes; ``FAST_COMPILE`` replaces the nodes by ``OpFromGraph``s of the scan definition
    (``definition._expand_definitions``), built once per node type; a graph compiled with no
    rewrite at all runs the nodes' ``perform``. All three agree.
    """
    from pytensor.compile.builders import OpFromGraph
    from pytensor.compile.mode import Mode
    from pytensor.graph.op import HasInnerGraph
    from pytensor.graph.traversal import ancestors

    from pymc_dlm.kalman.fused.definition import KalmanLoglik, KalmanLoglikGrad, definition_op

    y = _series(37, missing=[5])
    model = _level_model(y)
    logp = model.logp()
    grads = pt.grad(logp, model.value_vars)
    ops = {v.owner.op for v in ancestors(grads) if v.owner is not None}
    (grad_op,) = [op for op in ops if isinstance(op, KalmanLoglikGrad)]
    (loglik_op,) = [op for op in ops if isinstance(op, KalmanLoglik)]
    assert not isinstance(loglik_op, HasInnerGraph) and not isinstance(grad_op, HasInnerGraph)
    assert KalmanLoglik(loglik_op.input_types, loglik_op.time_varying) == loglik_op
    assert KalmanLoglik(loglik_op.input_types, frozenset({"F"})) != loglik_op
    fused = pytensor.function(model.value_vars, [logp, *grads], mode="NUMBA")
    assert not {KalmanLoglik, KalmanLoglikGrad, OpFromGraph} & set(_ops(fused))
    scan = pytensor.function(model.value_vars, [logp, *grads], mode="FAST_COMPILE")
    names = {n.op.name for n in scan.maker.fgraph.apply_nodes if isinstance(n.op, OpFromGraph)}
    assert names == {"KalmanLoglik", "KalmanLoglikGrad"}
    assert not {FusedLoglik, FusedLoglikGrad, KalmanLoglik, KalmanLoglikGrad} & set(_ops(scan))
    assert definition_op(KalmanLoglik(loglik_op.input_types, loglik_op.time_varying)) is (
        definition_op(loglik_op)
    )
    no_rewrite = Mode(linker="py", optimizer=None).excluding("minimum_compile")
    bare = pytensor.function(model.value_vars, [logp, *grads], mode=no_rewrite)
    assert {KalmanLoglik, KalmanLoglikGrad} <= set(_ops(bare))
    for point in _points(model):
        for got, want, plain in zip(fused(*point), scan(*point), bare(*point)):
            np.testing.assert_allclose(got, want, rtol=1e-9)
            np.testing.assert_allclose(plain, want, rtol=1e-9)


def test_second_derivatives_and_pushforward_through_the_definition():
    """Hessians and Jacobian-vector products of the log-likelihood node.

    The gradient node's own derivative is the scan definition's (``definition_op``): the
    Hessian of a local level's logp (``FAST_COMPILE``) must equal central differences of the
    fused (numba) gradient, and pytensor's pushforward (double pullback) must equal the
    gradient times the tangent. A warning about disconnected inputs is an error here.
    """
    import warnings

    from pytensor.gradient import pushforward

    y = _series(30, missing=[4])
    model = _level_model(y)
    logp = model.logp()
    vv = model.value_vars
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        grads = pt.grad(logp, vv)
        hess = pt.stack([pt.stack(pt.grad(gi, vv)) for gi in grads])
        tangents = [x.type() for x in vv]
        jvp = pushforward(logp, vv, tangents)
    second = pytensor.function([*vv, *tangents], [hess, jvp], mode="FAST_COMPILE")
    first = pytensor.function(vv, grads, mode="NUMBA")
    point = [np.array(0.3), np.array(-0.1)]
    direction = [np.array(1.0), np.array(2.0)]
    H, jv = second(*point, *direction)
    eps = 1e-5
    numeric = np.empty((2, 2))
    for j in range(2):
        up = [x + eps * (k == j) for k, x in enumerate(point)]
        down = [x - eps * (k == j) for k, x in enumerate(point)]
        numeric[:, j] = (np.array(first(*up)) - np.array(first(*down))) / (2 * eps)
    np.testing.assert_allclose(H, numeric, rtol=1e-6)
    np.testing.assert_allclose(H, H.T, rtol=1e-12)
    np.testing.assert_allclose(jv, np.dot(first(*point), direction), rtol=1e-10)


def test_pymc_never_builds_the_definition_on_numba(monkeypatch):
    """Model building, PyMC's passes and pickling never build the scan definition.

    PyMC walks every inner graph of a log-probability graph looking for random variables,
    rewrites inner graphs before differentiating (``rewrite_pregrad``) and pickles the model
    for sampler processes; with the scan inside the node, that cost 0.13 s of the Nile
    model's ``pm.sample``. Counted here: calls of the definition builders, zero until a
    backend without kernels (``FAST_COMPILE``) compiles the graph.
    """
    import cloudpickle
    from pymc.pytensorf import rewrite_pregrad

    from pymc_dlm.kalman.fused import definition

    built = []
    original = definition._definition
    monkeypatch.setattr(definition, "_definition", lambda tv: built.append(tv) or original(tv))
    y = _series(41, missing=[3])
    model = _level_model(y)
    logp = model.logp()
    rewrite_pregrad(logp)
    fn = model.logp_dlogp_function(ravel_inputs=True)
    fn.set_extra_values({})
    copy = cloudpickle.loads(cloudpickle.dumps(fn))
    q = np.array([0.1, 0.2])
    np.testing.assert_array_equal(copy(q)[1], fn(q)[1])
    assert built == []
    with model:
        slow = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    assert len(built) >= 1
    slow.set_extra_values({})
    np.testing.assert_allclose(slow(q)[1], fn(q)[1], rtol=1e-8)


_ENTRY_CHILD = """
import json, sys
import numpy as np, pymc as pm
import pymc_dlm as dlm
from pymc_dlm.kalman.fused import native
y = np.array(json.loads(sys.argv[1]), dtype=float)  # null -> nan
with pm.Model() as model:
    s = pm.HalfNormal("s", 2.0)
    e = pm.HalfNormal("e", 2.0)
    dlm.DLM("y", dlm.LocalLevel(s, m0=0.0, C0=10.0), sigma_obs=e, observed=y)
f = model.logp_dlogp_function(ravel_inputs=True)
f.set_extra_values({})
q = np.array(json.loads(sys.argv[2]))
logp, grad = f(q)
entry = native._entries[native._GRAD_NAME]
print(json.dumps([float(logp), grad.tolist(), entry.cache_hits]))
"""


def test_gradient_entry_loaded_from_its_cache_without_linking_bitcode():
    """The gradient entry comes back from numba's cache as machine code only, and runs.

    ``compat.compile_entry`` stores the entry without the bitcode numba keeps for linking
    (an entry is called by address). A fresh process loads it from the cache this process
    filled (``cache_hits == 1``) and must give this process's logp and gradient, which are
    checked against the scan definition (``FAST_COMPILE``).
    """
    import json
    import subprocess
    import sys

    from numba.core.registry import cpu_target

    from pymc_dlm import compat
    from pymc_dlm.kalman.fused import native

    y = _series(23, missing=[4])
    model = _level_model(y)
    q = np.array([0.3, -0.2])
    fused = model.logp_dlogp_function(ravel_inputs=True)
    fused.set_extra_values({})
    want = model.logp_dlogp_function(ravel_inputs=True, mode="FAST_COMPILE")
    want.set_extra_values({})
    logp, grad = fused(q)
    logp_def, grad_def = want(q)
    np.testing.assert_allclose(logp, logp_def, rtol=1e-10)
    np.testing.assert_allclose(grad, grad_def, rtol=1e-8)

    entry = native._entries[native._GRAD_NAME]
    assert isinstance(entry._cache, compat.EntryCache)
    cres = entry._cache.load_overload(entry._sig, cpu_target.target_context)
    assert cres is not None  # saved (or found) by this process
    defined = [f.name for f in cres.library._shared_module.functions if not f.is_declaration]
    assert defined == [cres.fndesc.llvm_cfunc_wrapper_name]

    child = subprocess.run(
        [
            sys.executable,
            "-c",
            _ENTRY_CHILD,
            json.dumps(np.where(np.isnan(y), None, y).tolist()),
            json.dumps(q.tolist()),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    child_logp, child_grad, hits = json.loads(child.stdout.strip().splitlines()[-1])
    assert hits == 1
    assert child_logp == logp and child_grad == grad.tolist()


def test_fused_logp_alone_and_gradient_flags():
    """Without a gradient the fused log-likelihood node runs alone.

    Unused gradients are skipped: data and constant matrices are never differentiated.
    """
    model = model_local_level()
    f = model.compile_logp()
    assert FusedLoglik in _ops(f.f)
    want = model.compile_logp(mode="FAST_COMPILE")
    ip = model.initial_point()
    np.testing.assert_allclose(f(ip), want(ip), rtol=1e-12)
    g = _logp_and_grad(model, None)
    (node,) = [n for n in g.maker.fgraph.apply_nodes if isinstance(n.op, FusedLoglikGrad)]
    # order: y, F, G, W, sd, m0, C0, Q — only W (sigma) and sd (sigma_obs) are parameters
    assert node.op.need == (False, False, False, True, True, False, False, False)


def test_fused_verify_grad_every_input():
    """Finite differences of the fused log-likelihood w.r.t. every input (numba mode)."""
    T, p, n = 12, 2, 3
    rng = np.random.default_rng(3)
    y = rng.normal(size=(T, p))
    y[4, 1] = np.nan
    y[7, :] = np.nan

    def loglik(F, G, W, sd, m0, C0):
        system = SystemMatrices(F, G, W, sd, m0, C0, frozenset(), True)
        return fused_loglik(system, pt.constant(y))

    args = [
        rng.normal(size=(p, n)),
        0.5 * rng.normal(size=(n, n)),
        0.5 * rng.normal(size=(n, n)),
        0.5 + rng.uniform(size=p),
        rng.normal(size=n),
        rng.normal(size=(n, n)),
    ]
    verify_grad(loglik, args, rng=rng, mode=pytensor.compile.mode.get_default_mode())


def test_fused_diffuse_verify_grad_every_input():
    """Finite differences of the exact diffuse fused log-likelihood w.r.t. every input.

    Two of three states diffuse, dense G and F, a missing scalar in the diffuse period: the
    gradient flows through the diffuse start (pytensor) and the kernel's diffuse adjoint.
    """
    T, p, n = 10, 2, 3
    rng = np.random.default_rng(5)
    y = rng.normal(size=(T, p))
    y[0, 1] = np.nan
    y[6, :] = np.nan
    A = np.eye(n)[:, [0, 2]]

    def loglik(F, G, W, sd, m0, C0):
        system = SystemMatrices(F, G, W, sd, m0, C0, frozenset(), True, A)
        return fused_loglik(system, pt.constant(y))

    args = [
        rng.normal(size=(p, n)),
        np.eye(n) + 0.3 * rng.normal(size=(n, n)),
        0.5 * rng.normal(size=(n, n)),
        0.5 + rng.uniform(size=p),
        rng.normal(size=n),
        rng.normal(size=(n, n)),
    ]
    mode = pytensor.compile.mode.get_default_mode()
    f = pytensor.function([], loglik(*map(pt.constant, args)), mode=mode)
    assert FusedLoglik in _ops(f)
    verify_grad(loglik, args, rng=rng, mode=mode)


def test_fused_diffuse_nile_matches_statsmodels(nile):
    """The default (exact diffuse) local level on the Nile data, fused route, vs statsmodels.

    Oracle: statsmodels ``UnobservedComponents(level="llevel", use_exact_diffuse=True)``,
    ``ssm.tolerance = 0``: its log-likelihood at fixed variances is the exact diffuse one
    (Durbin & Koopman 2012, §7.2.2), our convention (notes/diffuse.md). Two missing values,
    one of them the first observation (inside the diffuse period).
    """
    from statsmodels.tsa.statespace.structural import UnobservedComponents

    y = nile[1].copy()
    y[[0, 50]] = np.nan
    s_level, s_obs = pt.dscalar("s_level"), pt.dscalar("s_obs")
    rv = dlm.DLM.dist(dlm.LocalLevel(s_level), sigma_obs=s_obs, steps=len(y))
    f = pytensor.function([s_level, s_obs], pm.logp(rv, y))
    assert FusedLoglik in _ops(f)
    mod = UnobservedComponents(y, level="llevel", use_exact_diffuse=True)
    mod.ssm.tolerance = 0
    for sl, so in [(38.0, 122.0), (5.0, 300.0)]:
        want = mod.loglike(np.array([so**2, sl**2]))
        np.testing.assert_allclose(f(sl, so), want, rtol=1e-12)


def test_full_obs_cov_is_decorrelated_in_front_of_the_kernels():
    """A full obs_cov runs the kernels on L_t^{-1} y_t (``canonical.decorrelate``).

    Oracles: the value of the square-root scan on the original system
    (``dlm.kalman_filter``, which never takes the fused route) and the central finite
    differences of that value, with a partially missing row and a fully missing one.
    """
    y = _series(20, p=2, missing=[(3, 1), 7])
    s, r = pt.dscalar("s"), pt.dscalar("r")

    def system(level_sd):
        return dlm.StateSpace(np.ones((2, 1)), np.eye(1), level_sd**2, 0.0, 10.0)

    def cov(rho):
        return pt.stack([pt.stack([1.0, rho]), pt.stack([rho, 2.0])])

    rv = dlm.DLM.dist(system(s[None, None]), obs_cov=cov(r), steps=len(y))
    logp = pm.logp(rv, y)
    f = pytensor.function([s, r], [logp, *pytensor.grad(logp, [s, r])])
    assert FusedLoglikGrad in _ops(f)  # its forward pass also gives the value

    def reference(level_sd, rho):
        V = np.array([[1.0, rho], [rho, 2.0]])
        ss = system(np.array([[level_sd]]))
        return float(dlm.kalman_filter(ss, y, obs_cov=V)["loglik"])

    h = 1e-6
    for point in [(0.7, 0.3), (1.3, -0.8)]:
        value, g_s, g_r = f(*point)
        np.testing.assert_allclose(value, reference(*point), rtol=1e-10)
        num_s = (reference(point[0] + h, point[1]) - reference(point[0] - h, point[1])) / (2 * h)
        num_r = (reference(point[0], point[1] + h) - reference(point[0], point[1] - h)) / (2 * h)
        np.testing.assert_allclose([g_s, g_r], [num_s, num_r], rtol=1e-6)
    # Not positive definite: -inf, not NaN.
    assert f(0.7, 2.0)[0] == -np.inf


def test_fused_vague_prior_is_exact_against_mpmath():
    """Vague prior, tiny variances: the fused log-likelihood keeps ~1e-8 relative accuracy.

    The covariance form alone loses digits here (tests/kalman/test_oracle_mpmath.py shows a plain
    covariance filter missing 1e-8); the kernel detects the cancellation and takes the value
    from its square-root route. Witness: the 60-digit mpmath filter of tests/support/oracles.py.
    """
    ref, y = vague_case()
    exact = float(O.mpmath_loglik(ref.F, ref.G, ref.W, S_OBS**2, ref.m0, ref.C0, y))
    comp = dlm.LocalLinearTrend(S_LEVEL, S_SLOPE, m0=0.0, C0=1e7) + dlm.Seasonal(
        4, S_SEAS, m0=0.0, C0=1e7
    )
    rv = dlm.DLM.dist(comp, sigma_obs=S_OBS, steps=len(y))
    f = pytensor.function([], pm.logp(rv, y))
    assert FusedLoglik in _ops(f)
    ours = float(f())
    assert abs(ours - exact) <= 1e-8 * abs(exact), (ours, exact)


def test_square_root_route_equals_dense_gaussian():
    """The kernels' square-root route and its early switch, against the dense Gaussian.

    ``sqrtform._sqrt_head`` is run to the end, then with its early switch to the covariance
    form inside the fused kernel.

    Three states, two series with one component and one whole row missing, a proper prior
    (factor L0, not diagonal) and a rank-deficient noise factor: every branch of the update
    (q = 2, q = 1, q = 0) and of the prediction (``tests/support/sqrt_case.py``).
    """
    from pymc_dlm.kalman.fused.discounting import no_discounting
    from pymc_dlm.kalman.fused.forward import no_moments
    from pymc_dlm.kalman.fused.sqrtform import _sqrt_head

    F, G, LW, sd, m0, L0, y = sqrt_case()
    T, n = y.shape[0], G.shape[0]
    exact = O.dense_loglik(F, G, LW @ LW.T, np.diag(sd**2), m0, L0 @ L0.T, y)
    args = (y[None], F[None, None], G[None, None], LW[None, None], sd[None, None], m0[None])
    proper = Inputs(*args, L0[None], np.zeros((1, n, 0)))
    value, t_next, _, _ = _sqrt_head(proper, 0, np.inf, no_moments(n, 0), no_discounting(n))
    assert t_next == T
    np.testing.assert_allclose(value, exact, rtol=1e-12)
    # With a finite switch ratio it stops early; the fused kernel then finishes in covariance
    # form from the square-root moments, and the total is the same.
    head, t_next, _, _ = _sqrt_head(proper, 0, 1e3, no_moments(n, 0), no_discounting(n))
    assert 0 < t_next < T and head > -np.inf
    inputs = [np.ascontiguousarray(x) for x in (*args, L0[None], np.zeros((1, n, 0)))]
    from pymc_dlm.kalman.fused.kernels import loglik_kernel

    np.testing.assert_allclose(loglik_kernel(Inputs(*inputs))[0], exact, rtol=1e-12)


def test_cancellation_met_late_runs_the_square_root_filter_to_the_end():
    """Cancellation met late: the value is the square-root filter's over the whole series.

    That is ``_headed``'s last resort, ``_sqrt_head(..., inf)``.

    Local level, noise sd 10 for 5 steps then 1e-3: the first prediction is well conditioned
    (no square-root head up front), the head switches after one step, and from step 6 the
    covariance form's f/h exceeds ``CANCELLATION_LIMIT``. Until d0b90e1 (2026-11-25) an
    infinite switch ratio stopped the square-root filter after its first step, so this value
    was that of one observation. Witness: the dense joint Gaussian.
    """
    from pymc_dlm.kalman.fused.discounting import no_discounting
    from pymc_dlm.kalman.fused.forward import no_moments
    from pymc_dlm.kalman.fused.kernels import loglik_grad_kernel, loglik_kernel
    from pymc_dlm.kalman.fused.sqrtform import CANCELLATION_LIMIT, SWITCH_RATIO, _sqrt_head

    rng = np.random.default_rng(3)
    T = 20
    sd = np.where(np.arange(T) < 5, 10.0, 1e-3)
    y = np.cumsum(2.0 * rng.normal(size=T)) + sd * rng.normal(size=T)
    inputs = [
        y[None, :, None],
        np.ones((1, 1, 1, 1)),
        np.ones((1, 1, 1, 1)),
        np.full((1, 1, 1, 1), 2.0),
        sd[None, :, None],
        np.zeros((1, 1)),
        np.full((1, 1, 1), 10.0),
        np.zeros((1, 1, 0)),
    ]
    # The route: the head switches after one step; a plain covariance filter meets f/h - 1
    # above the limit later.
    fixed_w = no_discounting(1)
    assert _sqrt_head(Inputs(*inputs), 0, SWITCH_RATIO, no_moments(1, 0), fixed_w)[1] == 1
    C, worst = 100.0, 0.0
    for t in range(T):
        f = C + 4.0 + sd[t] ** 2
        worst = max(worst, (f - sd[t] ** 2) / sd[t] ** 2)
        C = (C + 4.0) * sd[t] ** 2 / f
    assert worst > CANCELLATION_LIMIT
    exact = O.dense_loglik([[1.0]], [[1.0]], [[4.0]], (sd**2)[:, None, None], 0.0, 100.0, y)
    np.testing.assert_allclose(loglik_kernel(Inputs(*inputs))[0], exact, rtol=1e-9)
    need = np.array([False, False, False, True, True, False, False, False])
    value = loglik_grad_kernel(Inputs(*inputs), np.ones(1), need)[0][0]
    np.testing.assert_allclose(value, exact, rtol=1e-9)


# ---------------------------------------------------------------------------------------
# Steady state: long time-invariant series, where the kernels stop updating the covariance
# once it has converged (``kernels.STEADY_TOL``) and reuse the last gains.


def model_steady_trend_seasonal():
    y = _series(300, missing=[5, 120])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=3)
        e = pm.HalfNormal("e", 1.0)
        comp = dlm.LocalLinearTrend(s[0], s[1], C0=100.0) + dlm.Seasonal(4, s[2], C0=100.0)
        dlm.DLM("y", comp, sigma_obs=e, observed=y)
    return m


def model_steady_diffuse_bivariate():
    y = _series(250, p=2, missing=[(3, 1)])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0, shape=2)
        L = np.array([[1.0, 0.0], [0.7, 1.0]])
        ss = dlm.StateSpace(L, np.eye(2), s**2 * np.eye(2), 0.0, "diffuse")
        dlm.DLM("y", ss, sigma_obs=e, observed=y)
    return m


def model_steady_batched():
    y = np.stack([_series(200, missing=[10]), _series(200, missing=[190])])
    with pm.Model() as m:
        s = pm.HalfNormal("s", 1.0, shape=2)
        e = pm.HalfNormal("e", 1.0)
        ones = np.ones((2, 1, 1))
        ss = dlm.StateSpace(ones, ones, (s**2)[:, None, None], 0.0, 10.0)
        dlm.DLM("y", ss, sigma_obs=e, observed=y)
    return m


STEADY = [model_steady_trend_seasonal, model_steady_diffuse_bivariate, model_steady_batched]


def _kernel_inputs(model):
    """The fused node's inputs at the initial point (numpy), from the model's logp graph."""
    from pytensor.graph.traversal import ancestors

    from pymc_dlm.kalman.fused.ops import KalmanLoglik

    logp = model.logp()
    (node,) = {
        v.owner
        for v in ancestors([logp])
        if v.owner is not None and isinstance(v.owner.op, KalmanLoglik)
    }
    inputs = pytensor.function(model.value_vars, node.inputs, mode="FAST_COMPILE")
    ip = model.initial_point()
    return [np.ascontiguousarray(x) for x in inputs(*[ip[v.name] for v in model.value_vars])]


@pytest.mark.parametrize("build", STEADY, ids=lambda f: f.__name__)
def test_steady_state_equals_scan_definition(build):
    """Value (1e-10) and gradient (1e-7) of the steady-state route against the scan."""
    from pymc_dlm.kalman.fused.kernels import steady_start

    model = build()
    start = steady_start(Inputs(*_kernel_inputs(model)))
    # The route is taken (after the last missing value), and not for a member whose
    # series has a gap near its end.
    assert np.any(start < 0.8 * np.asarray(_kernel_inputs(model)[0].shape[1])), start
    fused = _logp_and_grad(model, None)
    scan = _logp_and_grad(model, "FAST_COMPILE")
    for point in _points(model):
        got, want = fused(*point), scan(*point)
        np.testing.assert_allclose(got[0], want[0], rtol=1e-10, atol=0)
        for g_got, g_want in zip(got[1:], want[1:]):
            np.testing.assert_allclose(g_got, g_want, rtol=1e-7, atol=1e-9)


def test_steady_state_verify_grad():
    """Finite differences through the steady steps, every input (numba mode)."""
    from pymc_dlm.kalman.fused.kernels import steady_start

    T, p, n = 120, 2, 2
    rng = np.random.default_rng(5)
    y = rng.normal(size=(T, p)).cumsum(axis=0)
    y[10, 0] = np.nan

    def loglik(F, G, W, sd, m0, C0):
        system = SystemMatrices(F, G, W, sd, m0, C0, frozenset(), True)
        return fused_loglik(system, pt.constant(y))

    args = [
        np.array([[1.0, 0.0], [0.5, 1.0]]),
        np.array([[0.9, 0.1], [0.0, 0.8]]),
        np.array([[0.6, 0.0], [0.2, 0.5]]),
        np.array([0.7, 0.9]),
        np.array([0.1, -0.2]),
        np.array([[1.0, 0.0], [0.3, 2.0]]),
    ]
    Q = np.zeros((1, n, 0))
    canon = [y[None], args[0][None, None], args[1][None, None], args[2][None, None]]
    canon += [args[3][None, None], args[4][None], args[5][None], Q]
    assert steady_start(Inputs(*canon))[0] < T // 2  # the steady steps are what is differentiated
    verify_grad(loglik, args, rng=rng, mode=pytensor.compile.mode.get_default_mode())
