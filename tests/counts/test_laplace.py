"""The Laplace log-likelihood of counts and binary data against dense computations.

Witness: ``tests.support.count_oracles`` (dense T-dimensional Newton iterations and the dense
Gaussian, with scipy's probability mass functions); nothing is stored. The models are a
local level plus a quarterly seasonal (proper or diffuse prior) and a regression with an
offset; series are simulated with fixed seeds; one value is missing in each.
"""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

import pymc_dlm as dlm
from pymc_dlm.kalman import fixed_filter
from pymc_dlm.kalman.pseudo_smoother import PseudoSmoother
from pymc_dlm.laplace.loglik import LaplaceMode, laplace_loglik
from pymc_dlm.model.family import as_family
from pymc_dlm.model.statespace import system_matrices
from tests.support import count_oracles as C
from tests.support import discount_oracles as D

T = 20
LEVEL_SD, SEAS_SD = 0.15, 0.05
X = np.random.default_rng(7).standard_normal((T, 1))
OFFSET = np.log(np.linspace(1.0, 3.0, T))  # a log exposure


def _package(diffuse, level_sd=LEVEL_SD, seas_sd=SEAS_SD):
    if diffuse:
        return dlm.LocalLevel(level_sd, C0="diffuse") + dlm.Seasonal(4, seas_sd, C0="diffuse")
    return dlm.LocalLevel(level_sd, m0=1.0, C0=0.5) + dlm.Seasonal(4, seas_sd, C0=0.3)


def _oracle(diffuse, level_sd=LEVEL_SD, seas_sd=SEAS_SD):
    if diffuse:
        blocks = [
            D.poly_block(1, sigma=level_sd, n_time=T),
            D.seasonal_block(4, sigma=seas_sd, n_time=T),
        ]
    else:
        blocks = [
            D.poly_block(1, sigma=level_sd, m0=1.0, C0=0.5, n_time=T),
            D.seasonal_block(4, sigma=seas_sd, C0=0.3, n_time=T),
        ]
    return D.combine(*blocks)


def _models(diffuse, level_sd=LEVEL_SD, seas_sd=SEAS_SD):
    """The package's model and the oracle's system, the same DLM."""
    return _package(diffuse, level_sd, seas_sd), _oracle(diffuse, level_sd, seas_sd)


def _data(family, seed, n=None):
    rng = np.random.default_rng(seed)
    level = 1.0 + np.cumsum(rng.normal(0, 0.15, T))
    if family in ("bernoulli", "binomial"):
        p = 1 / (1 + np.exp(-(level - 1.0)))
        y = rng.binomial(np.asarray(n).astype(int), p).astype(float)
    else:
        y = rng.poisson(np.exp(level)).astype(float)
    y[6] = np.nan
    return y


CASES = [
    ("poisson", None, None),
    ("negative_binomial", 3.0, None),
    ("binomial", np.array(5.0), None),
    ("binomial", np.arange(1.0, T + 1), "per-step trials"),
    ("bernoulli", np.array(1.0), None),
]


def _family(name, param):
    if name == "negative_binomial":
        return dlm.NegativeBinomial(param)
    if name == "binomial":
        return dlm.Binomial(param)
    return name


@pytest.mark.parametrize("diffuse", [False, True], ids=["proper", "diffuse"])
@pytest.mark.parametrize(
    ("name", "param", "label"), CASES, ids=[c[0] + (c[2] or "") for c in CASES]
)  # noqa: E501
def test_loglik_and_mode_against_dense(name, param, label, diffuse):
    pkg, system = _models(diffuse)
    y = _data(name, 11, n=param)
    expected, mode = C.dense_laplace(name, system, y, param=param)
    ds = dlm.kalman_smoother(pkg, y, family=_family(name, param))
    assert abs(float(ds.loglik) - expected) < 1e-8 * max(1.0, abs(expected))
    np.testing.assert_allclose(ds.linear_predictor.values, mode, rtol=0, atol=1e-8)
    if not diffuse:
        assert abs(C.laplace_determinant_form(name, system, y, param=param) - expected) < 1e-9


def test_offset_and_regression_against_dense():
    pkg = dlm.LocalLevel(LEVEL_SD, m0=0.0, C0=1.0) + dlm.Regression(X, sigma=0.0, C0=0.25)
    system = D.combine(
        D.poly_block(1, sigma=LEVEL_SD, m0=0.0, C0=1.0, n_time=T),
        D.regression_block(X, sigma=0.0, C0=0.25),
    )
    y = _data("poisson", 3)
    expected, mode = C.dense_laplace("poisson", system, y, offset=OFFSET)
    ds = dlm.kalman_filter(pkg, y, family="poisson", offset=OFFSET)
    assert abs(float(ds.loglik) - expected) < 1e-8 * abs(expected)
    np.testing.assert_allclose(ds.linear_predictor.values, mode + OFFSET, atol=1e-8)


# ---------------------------------------------------------------------------------------
# The graph (the DLM's log-likelihood) and its gradient


def _graph(diffuse, name, param, y, s1=None, s2=None, al=None):
    """The package's Laplace log-likelihood graph in (level sd, seasonal sd[, alpha]).

    ``name="negative_binomial_fixed"``: the dispersion ``param`` is a number, not an input.
    """
    s1 = pt.dscalar("s1") if s1 is None else s1
    s2 = pt.dscalar("s2") if s2 is None else s2
    al = pt.dscalar("alpha") if al is None else al
    pkg = _package(diffuse, s1, s2)
    system = system_matrices(pkg.statespace, pt.ones(1), obs_diag=True)
    if name == "negative_binomial_fixed":
        name, al = "negative_binomial", pt.constant(float(param))
    sampled = name == "negative_binomial" and not isinstance(al, pt.TensorConstant)
    fam = as_family(_family(name, al if name == "negative_binomial" else param))
    p = al if name == "negative_binomial" else (0.0 if param is None else param)
    ll = laplace_loglik(system, y, fam, 0.0, p)
    inputs = [s1, s2] + ([al] if sampled else [])
    return inputs, ll


#: Poisson, binomial and a fixed dispersion take the two-log-likelihood route of the
#: gradient, a sampled dispersion the three-log-likelihood route (``laplace/loglik.py``).
GRAD_CASES = [
    ("poisson", None, False),
    ("negative_binomial", 3.0, False),
    ("negative_binomial_fixed", 3.0, True),
    ("binomial", np.array(5.0), True),
]


@pytest.mark.parametrize(("name", "param", "diffuse"), GRAD_CASES, ids=[c[0] for c in GRAD_CASES])
def test_gradient_against_dense_finite_differences(name, param, diffuse):
    """The exact gradient of the approximation against the dense oracle's differences.

    The gradient (implicit in the mode) and the central differences of the dense oracle are
    independent computations.
    """
    y = _data(name, 5, n=param)
    inputs, ll = _graph(diffuse, name, param, y)
    (mode,) = {
        v.owner.op for v in ancestors([ll]) if v.owner and isinstance(v.owner.op, LaplaceMode)
    }
    assert mode.solve == (name == "negative_binomial")  # the route: a sampled dispersion only
    f = pytensor.function(inputs, [ll, *pytensor.grad(ll, inputs)])
    x0 = [LEVEL_SD, SEAS_SD] + ([param] if name == "negative_binomial" else [])
    value, *grad = f(*x0)

    def oracle(x):
        system = _oracle(diffuse, x[0], x[1])
        par = x[2] if name == "negative_binomial" else param
        return C.dense_laplace(name.removesuffix("_fixed"), system, y, param=par)[0]

    assert abs(value - oracle(x0)) < 1e-8 * abs(value)
    for i in range(len(x0)):
        h = 1e-5 * x0[i]
        up, down = list(x0), list(x0)
        up[i] += h
        down[i] -= h
        fd = (oracle(up) - oracle(down)) / (2 * h)
        assert abs(grad[i] - fd) < 1e-6 * max(1.0, abs(fd)), (i, grad[i], fd)


def test_verify_grad_negative_binomial():
    y = _data("negative_binomial", 9)

    def fn(s1, s2, al):
        return _graph(False, "negative_binomial", None, y, s1, s2, al)[1]

    pytensor.gradient.verify_grad(
        fn, [np.array(LEVEL_SD), np.array(SEAS_SD), np.array(3.0)],
        rng=np.random.default_rng(1), eps=1e-6, abs_tol=1e-5, rel_tol=1e-5,
    )  # fmt: skip


@pytest.mark.parametrize("diffuse", [False, True], ids=["proper", "diffuse"])
def test_signal_moments_from_the_adjoint_equal_the_smoother(diffuse):
    """The adjoint's signal moments against the smoother's and the dense conditional mean.

    Two algorithms for E[s_t | y*] and Var[s_t | y*]: the RTS smoother's covariances, and the
    derivatives of the Gaussian log-likelihood in its data and noise (the adjoint kernel).
    """
    pkg, system = _models(diffuse)
    ss = pkg.statespace
    values = fixed_filter.numeric_system(ss, pt.ones(1))
    rng = np.random.default_rng(3)
    pseudo = rng.normal(1.0, 0.5, T)
    pseudo[6] = np.nan
    sd = rng.uniform(0.2, 0.6, T)
    smoother = PseudoSmoother(values, (T,), time_varying=ss.time_varying, diffuse=ss.diffuse)
    mean, var, loglik = smoother.signal_mean(pseudo, sd)
    means, covs, loglik_full = smoother.run(pseudo, sd)
    F = values["F"][0]
    seen = ~np.isnan(pseudo)
    np.testing.assert_allclose(mean[seen], (means @ F)[seen], atol=1e-12)
    np.testing.assert_allclose(var[seen], np.einsum("i,tij,j->t", F, covs, F)[seen], atol=1e-12)
    assert abs(loglik - loglik_full) < 1e-10
    mu, S, Xd = C.signal_moments(system)
    dense = C._conditional_mean(mu, S, Xd, pseudo, sd**2, seen)
    np.testing.assert_allclose(mean[seen], dense[seen], atol=1e-9)


def test_the_smoother_hands_the_kernels_their_one_array_type(monkeypatch):
    """Writable C-contiguous float64 inputs, also for read-only data and noise.

    A read-only array is a type of its own for numba: passed one, the kernels' forward pass
    and its callers were compiled a second time (found 2026-12-07: a cold importance-sampling
    call went from 5 min 45 s to 4 min 8 s once the broadcast noise was copied).
    """
    import pymc_dlm.kalman.pseudo_smoother as module

    pkg, _ = _models(False)
    ss = pkg.statespace
    values = fixed_filter.numeric_system(ss, pt.ones(1))
    pseudo = np.random.default_rng(3).normal(1.0, 0.5, T)
    seen = []

    def recording(inp, out, lo, hi):
        seen.extend(inp)
        return moments_into(inp, out, lo, hi)

    moments_into = module.moments_into
    monkeypatch.setattr(module, "moments_into", recording)
    smoother = PseudoSmoother(values, (T,), time_varying=ss.time_varying, diffuse=ss.diffuse)
    # Read-only views (a broadcast of the right shape) and a scalar noise.
    frozen = np.broadcast_to(pseudo, (T,))
    smoother.run(frozen, np.broadcast_to(np.full(T, 0.4), (T,)))
    smoother.run(frozen, np.float64(0.4))
    assert len(seen) == 16
    for x in seen:
        assert x.dtype == np.float64 and x.flags.c_contiguous and x.flags.writeable
