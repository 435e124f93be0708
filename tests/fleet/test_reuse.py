"""The compiled NUTS log-density shared by models that differ only in their observed data.

Witness: PyMC's own compilation of each model (``Model.compile_logp`` / ``compile_dlogp``,
which never go through the cache) at the same point. Models whose graphs differ in anything
but the DLM's data (another constant) must compile their own function. Everything is
compiled in pytensor's FAST_COMPILE mode (seconds instead of a numba compilation per model);
the cache's graph comparison and data swap do not depend on the mode, which is part of the
cache key.
"""

import numpy as np
import pymc as pm
import pytest
from pymc.blocking import DictToArrayBijection

import pymc_dlm as dlm
from pymc_dlm.fleet import reuse
from pymc_dlm.fleet.task import check_model

MODE = "FAST_COMPILE"


def _model(y, sigma_seasonal_scale=1.0):
    with pm.Model() as model:
        level = pm.HalfNormal("sigma_level", 1.0)
        seasonal = pm.HalfNormal("sigma_seasonal", sigma_seasonal_scale)
        obs = pm.HalfNormal("sigma_obs", 1.0)
        dlm.DLM("y", dlm.LocalLevel(level) + dlm.Seasonal(4, seasonal), sigma_obs=obs, observed=y)
    reuse.share_compiled(model, check_model(model))
    return model


def _value_and_grad(model):
    fn = model.logp_dlogp_function(ravel_inputs=True, mode=MODE)
    point = {k: v + 0.3 for k, v in model.initial_point().items()}
    q = DictToArrayBijection.map({v.name: point[v.name] for v in fn._grad_vars})
    logp, grad = fn(q)
    plain_logp = model.compile_logp(mode=MODE)(point)
    plain_grad = model.compile_dlogp(mode=MODE)(point)
    return (logp, grad), (plain_logp, plain_grad)


def test_models_differing_in_data_share_one_compiled_function():
    rng = np.random.default_rng(3)
    ys = [rng.normal(size=24) for _ in range(3)]
    ys[2][[4, 5, 11]] = np.nan  # missing values are read at run time, not compiled in
    before = reuse.cache_stats()
    for y in ys:
        (logp, grad), (plain_logp, plain_grad) = _value_and_grad(_model(y))
        np.testing.assert_allclose(logp, plain_logp, rtol=1e-12)
        np.testing.assert_allclose(grad, plain_grad, rtol=1e-10, atol=1e-12)
    after = reuse.cache_stats()
    assert after["compiled"] - before["compiled"] == 1
    assert after["reused"] - before["reused"] == 2


@pytest.mark.parametrize("change", ["prior", "length"])
def test_other_differences_compile_their_own_function(change):
    rng = np.random.default_rng(4)
    first = _model(rng.normal(size=20))
    _value_and_grad(first)
    before = reuse.cache_stats()
    if change == "prior":
        other = _model(rng.normal(size=20), sigma_seasonal_scale=2.5)
    else:
        other = _model(rng.normal(size=21))
    (logp, grad), (plain_logp, plain_grad) = _value_and_grad(other)
    np.testing.assert_allclose(logp, plain_logp, rtol=1e-12)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-10, atol=1e-12)
    assert reuse.cache_stats()["compiled"] - before["compiled"] == 1
    assert reuse.cache_stats()["reused"] == before["reused"]


def test_without_pymc_internals_each_model_compiles_its_own(monkeypatch):
    """The ``logp_reuse`` fallback of ``pymc_dlm.compat``: the model is left as PyMC made it."""
    from pymc_dlm import compat

    monkeypatch.setitem(compat._FOUND, "logp_reuse", None)
    y = np.random.default_rng(5).normal(size=24)
    model = _model(y)
    assert "_logp_dlogp_function" not in vars(model)
    (logp, grad), (plain_logp, plain_grad) = _value_and_grad(model)
    np.testing.assert_allclose(logp, plain_logp, rtol=1e-12)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-12)
