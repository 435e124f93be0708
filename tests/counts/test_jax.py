"""The Laplace log-likelihood in JAX graphs: numpyro's NUTS runs on it.

Witness for the value and the gradient: the same model's log-density and gradient compiled
by pytensor on numba (the gradient graph of ``pymc_dlm.laplace.loglik``, itself tested
against dense Newton iterations and central differences in ``test_laplace.py``). JAX
differentiates its own conversion of the graph, with the mode search behind a host callback
and ``stop_gradient``; the two must agree to rounding, for a diffuse and a proper start and
a negative-binomial dispersion sampled with the states' parameter.
"""

import numpy as np
import pymc as pm
import pytest

import pymc_dlm as dlm

jax = pytest.importorskip("jax")
pytest.importorskip("numpyro")
from pymc.sampling.jax import get_jaxified_graph  # noqa: E402  (sets JAX to float64)

Y = np.array([3.0, 5, 2, np.nan, 4, 6, 1, 3, 8, 7, 5, 9, 4, 6, 10, 12, 7, 9])


def _model(kind):
    with pm.Model() as model:
        sigma = pm.HalfNormal("sigma", 0.3)
        if kind == "diffuse":
            dlm.DLM("y", dlm.LocalLinearTrend(sigma, 0.0), family="poisson", observed=Y)
        else:
            m0 = pm.Normal("m0", 1.0, 1.0)
            alpha = pm.Gamma("alpha", 4.0, 1.0)
            level = dlm.LocalLevel(sigma, m0=m0, C0=2.0)
            dlm.DLM("y", level, family=dlm.NegativeBinomial(alpha), observed=Y)
    return model


@pytest.mark.parametrize("kind", ["diffuse", "negative_binomial"])
def test_jax_value_and_gradient_equal_the_numba_ones(kind):
    model = _model(kind)
    logp = model.logp()
    jax_fn = jax.jit(get_jaxified_graph(inputs=model.value_vars, outputs=[logp]))
    value_and_grad = jax.value_and_grad(
        lambda *x: jax_fn(*x)[0], argnums=tuple(range(len(model.value_vars)))
    )
    numba_logp = model.compile_logp()
    numba_dlogp = model.compile_dlogp()
    rng = np.random.default_rng(4)
    ip = model.initial_point()
    for _ in range(3):
        point = {k: np.asarray(v + rng.normal(0, 0.3, np.shape(v))) for k, v in ip.items()}
        args = [jax.numpy.asarray(point[v.name]) for v in model.value_vars]
        value, grads = value_and_grad(*args)
        assert abs(float(value) - numba_logp(point)) < 1e-9 * (1 + abs(float(value)))
        expected = numba_dlogp(point)
        got = np.concatenate([np.ravel(g) for g in grads])
        np.testing.assert_allclose(got, expected, rtol=1e-8, atol=1e-10)


@pytest.mark.slow
def test_numpyro_samples_the_laplace_likelihood():
    model = _model("negative_binomial")
    with model:
        idata = pm.sample(
            draws=150, tune=150, chains=1, nuts_sampler="numpyro", random_seed=5,
            progressbar=False,
        )  # fmt: skip
    draws = idata["posterior"]["sigma"].values
    assert draws.shape == (1, 150) and np.all(np.isfinite(draws)) and np.all(draws > 0)
    assert np.unique(draws).size > 20  # the chain moved
