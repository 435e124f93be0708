"""The importance-sampling log-likelihood against exact and dense references.

Witnesses: one-dimensional quadrature of the exact likelihood when the linear predictor is a
single Gaussian variable (a level with no noise), and importance sampling from the dense
Gaussian posterior of the signal with many more draws (``tests.support.count_oracles``).
Agreement is required within 4 combined standard errors; nothing is stored.
"""

import numpy as np
import pytest

import pymc_dlm as dlm
from tests.support import count_oracles as C
from tests.support import discount_oracles as D

Y = np.array([3.0, 5.0, 2.0, np.nan, 4.0, 6.0, 1.0, 3.0])


@pytest.mark.parametrize(("family", "param"), [("poisson", None), ("negative_binomial", 2.0)])
def test_importance_loglik_against_quadrature(family, param):
    m0, C0 = 1.0, 0.5
    fam = dlm.NegativeBinomial(param) if param else family
    ds = dlm.kalman_filter(
        dlm.LocalLevel(0.0, m0=m0, C0=C0), Y, family=fam, n_importance=4000, random_seed=1
    )
    exact = C.static_level_loglik(family, Y, m0, C0, param)
    se = float(ds.loglik_importance_se)
    assert 0 < se < 0.01
    assert abs(float(ds.loglik_importance) - exact) < 4 * se


def test_importance_loglik_against_dense_sampling():
    T = 12
    system = D.combine(D.poly_block(1, sigma=0.3, m0=1.0, C0=0.5, n_time=T))
    rng = np.random.default_rng(4)
    y = rng.poisson(np.exp(1.0 + np.cumsum(rng.normal(0, 0.3, T)))).astype(float)
    y[5] = np.nan
    ds = dlm.kalman_filter(
        dlm.LocalLevel(0.3, m0=1.0, C0=0.5), y, family="poisson", n_importance=2000,
        random_seed=2,
    )  # fmt: skip
    expected, se_ref = C.dense_importance("poisson", system, y, n=200_000, seed=3)
    se = np.hypot(float(ds.loglik_importance_se), se_ref)
    assert abs(float(ds.loglik_importance) - expected) < 4 * se


def test_importance_needs_an_even_count_and_a_family():
    level = dlm.LocalLevel(0.1, m0=1.0, C0=0.5)
    with pytest.raises(ValueError, match="n_importance"):
        dlm.kalman_filter(level, Y, family="poisson", n_importance=3)
    with pytest.raises(TypeError, match="n_importance"):
        dlm.kalman_filter(level, Y, sigma_obs=1.0, n_importance=10)
