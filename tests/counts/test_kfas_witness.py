r"""The count log-likelihoods against R's KFAS, on Durbin & Koopman's van-drivers model.

Witness: KFAS 1.6.0 (Helske 2017), run as an oracle; its numbers are stored in
``reference/kfas_van_drivers.json``, written by ``reference/kfas_van_drivers.R`` (R 4.2.2,
KFAS built from commit 6211c22, 2026-12-06; ``reference/README.md`` gives the versions, the
command and why that commit). Every expected number below comes from that file:

* ``loglik``: ``logLik(model)`` (``nsim = 0``) with the approximating model at the mode,
  KFAS's Laplace log-likelihood (Durbin & Koopman 2012, §10.6);
* ``thetahat``: ``approxSSM(model)$thetahat``, the mode of the signal
  :math:`\hat\eta_t - o_t` (KFAS's signal has no offset: its Poisson mean is
  :math:`u_t e^{\theta_t}`, so ``u`` = exposure is the offset :math:`o_t = \log u_t`);
* ``alphahat``: the smoothed states of the approximating Gaussian model at the mode
  (``KFS``), the mode of the states;
* ``importance``: ``logLik(model, nsim = 10000)`` (40,000 draws with KFAS's two antithetics)
  for 40 seeds: their mean and the standard error of that mean;
* ``mle``: the level's standard deviation maximising ``logLik(model)`` (``optimize`` on
  :math:`\log\sigma`), and that maximum.

The model (Durbin & Koopman 2012, §14.5): the monthly van drivers killed in Great Britain
1969-1984 (R's ``Seatbelts``; ``notebooks/data/seatbelts_van.csv``), a local level, a dummy
seasonal of period 12 without disturbance and a static coefficient of the seat-belt law
dummy; all 13 states diffuse. The level's standard deviation is KFAS's maximum-likelihood
estimate rounded to 4 digits (``sigma`` in the file). The cases: Poisson; Poisson with 5
months missing; negative binomial with :math:`\alpha = 20` (KFAS ``u = 20``; both have
variance :math:`\mu + \mu^2/\alpha`); binomial with :math:`n_t = y_t + 30` trials; Bernoulli
:math:`1\{y_t > 6\}` (6 is the lower quartile; above the median would separate the law's
coefficient: no finite mode); Poisson with exposure :math:`1 + t/192`.

**The constant.** Both log-likelihoods are :math:`\log p(y \mid \hat s) - \log g(y^* \mid
\hat s) + \log g(y^*)` with the same density of the counts (every constant, :math:`\log
y!` included: KFAS calls R's ``dpois``, ``dbinom``, ``dnbinom``); they differ only in
:math:`\log g(y^*)`, the approximating model's Gaussian log-likelihood, where KFAS's diffuse
convention leaves out :math:`\tfrac12\log 2\pi` for each of the :math:`d` observations
informative about the :math:`d` diffuse states. So KFAS = ours + :math:`\tfrac d2 \log
2\pi`, with :math:`d = 13`, in every case and at every :math:`\sigma`; the importance
estimates, :math:`\log g(y^*)` plus the log of a mean of weights, carry the same constant.
"""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

import pymc_dlm as dlm

REFERENCE = json.loads((Path(__file__).parent / "reference" / "kfas_van_drivers.json").read_text())
DATA = Path(__file__).parents[2] / "notebooks" / "data" / "seatbelts_van.csv"
SIGMA = REFERENCE["sigma"]
INPUTS = REFERENCE["inputs"]
#: Draws of pymc_dlm's importance sampler per case (half of them antithetic). The Bernoulli
#: weights are heavy-tailed (the Laplace value is 0.45 below the exact one, against 0.009 to
#: 0.016 for the counts), and with few draws their standard error is too small when no large
#: weight is drawn: with 4000 draws one seed in 10 gave z = -4.2; with 20,000, |z| < 2 for 10
#: seeds. For the other cases 4000 draws gave |z| < 2 for 10 seeds.
N_IMPORTANCE = {"bernoulli": 20000}
N_IMPORTANCE_DEFAULT = 4000
SEED = 20261206


def _van():
    with DATA.open() as f:
        rows = list(csv.DictReader(f))
    y = np.array([float(r["VanKilled"]) for r in rows])
    law = np.array([float(r["law"]) for r in rows])
    return y, law


Y, LAW = _van()


def _components(sigma):
    return dlm.LocalLevel(sigma) + dlm.Seasonal(12, 0.0) + dlm.Regression(LAW[:, None], sigma=0.0)


def _case(name):
    """(y, family, offset) of a case, as ``reference/kfas_van_drivers.R`` builds it."""
    if name == "poisson":
        return Y, "poisson", None
    if name == "poisson_missing":
        y = Y.copy()
        y[np.array(INPUTS["missing_months_1based"]) - 1] = np.nan
        return y, "poisson", None
    if name == "negative_binomial":
        return Y, dlm.NegativeBinomial(INPUTS["nb_alpha"]), None
    if name == "binomial":
        return Y, dlm.Binomial(Y + 30), None
    if name == "bernoulli":
        return (Y > INPUTS["bernoulli_threshold"]).astype(float), "bernoulli", None
    if name == "poisson_offset":
        exposure = 1 + np.arange(1, len(Y) + 1) / len(Y)
        return Y, "poisson", np.log(exposure)
    raise KeyError(name)


CASES = sorted(REFERENCE["cases"])


def _kfas_constant(model):
    r"""KFAS's log-likelihood minus ours: :math:`\tfrac d2 \log 2\pi` (module docstring)."""
    return 0.5 * model.n_diffuse * np.log(2 * np.pi)


def test_reference_covers_the_cases_and_the_diffuse_states():
    assert CASES == sorted(
        [
            "bernoulli",
            "binomial",
            "negative_binomial",
            "poisson",
            "poisson_missing",
            "poisson_offset",
        ]
    )
    model = _components(SIGMA)
    for name in CASES:
        ref = REFERENCE["cases"][name]
        assert ref["n_diffuse"] == model.n_diffuse == 13
        assert ref["n_observed"] == np.sum(~np.isnan(_case(name)[0]))
    assert INPUTS["bernoulli_threshold"] == np.quantile(Y, 0.25) == 6


@pytest.mark.parametrize("case", CASES)
def test_laplace_loglik_is_kfas(case):
    y, family, offset = _case(case)
    model = _components(SIGMA)
    loglik = float(dlm.kalman_filter(model, y, family=family, offset=offset)["loglik"])
    expected = REFERENCE["cases"][case]["loglik"]
    # Agreement seen: at most 1.5e-12 absolute (2e-14 relative).
    assert abs(loglik + _kfas_constant(model) - expected) < 1e-10 * abs(expected)


@pytest.mark.parametrize("case", CASES)
def test_mode_of_states_and_signal_is_kfas(case):
    y, family, offset = _case(case)
    model = _components(SIGMA)
    smoothed = dlm.kalman_smoother(model, y, family=family, offset=offset)
    ref = REFERENCE["cases"][case]
    T, n = len(y), model.n_state

    # The states, in KFAS's order: "law", "level", "sea_dummy1".."sea_dummy11".
    kfas_name = {"level": "level", "regression_1": "law"}
    kfas_name.update({f"seasonal_{k}": f"sea_dummy{k}" for k in range(1, 12)})
    alphahat = np.reshape(ref["alphahat"], (T, n))
    columns = [ref["state_names"].index(kfas_name[label]) for label in model.state_labels]
    states = np.asarray(smoothed["smoothed_mean"])
    np.testing.assert_allclose(states, alphahat[:, columns], rtol=0, atol=1e-8)

    # The signal, F_t times the states' mode, and the reported linear predictor minus the
    # offset. Agreement seen: 3e-14.
    F = model.F.eval()  # (T, 1, n)
    signal = np.einsum("tpn,tn->t", F, states)
    thetahat = np.array(ref["thetahat"])
    np.testing.assert_allclose(signal, thetahat, rtol=0, atol=1e-8)
    eta = np.asarray(smoothed["linear_predictor"])
    np.testing.assert_allclose(eta - (0 if offset is None else offset), thetahat, atol=1e-8)


@pytest.mark.parametrize("case", CASES)
def test_importance_sampling_is_kfas(case):
    y, family, offset = _case(case)
    model = _components(SIGMA)
    result = dlm.kalman_filter(
        model,
        y,
        family=family,
        offset=offset,
        n_importance=N_IMPORTANCE.get(case, N_IMPORTANCE_DEFAULT),
        random_seed=SEED,
    )
    kfas = REFERENCE["cases"][case]["importance"]["antithetic"]
    ours = float(result["loglik_importance"]) + _kfas_constant(model)
    se = np.hypot(float(result["loglik_importance_se"]), kfas["se_of_mean"])
    assert abs(ours - kfas["mean"]) < 4 * se


def test_maximum_likelihood_sigma_is_kfas():
    def negative_loglik(log_sigma):
        model = _components(float(np.exp(log_sigma)))
        return -float(dlm.kalman_filter(model, Y, family="poisson")["loglik"])

    found = minimize_scalar(
        negative_loglik,
        bounds=(np.log(1e-3), np.log(0.2)),
        method="bounded",
        options={"xatol": 1e-8},
    )
    mle = REFERENCE["mle"]
    # Agreement seen: 8e-8 relative (KFAS's fitSSM, with BFGS's default tolerance: 9e-6).
    np.testing.assert_allclose(np.exp(found.x), mle["sigma"], rtol=1e-5)
    np.testing.assert_allclose(np.exp(found.x), mle["fitssm_sigma"], rtol=1e-3)
    maximum = -found.fun + _kfas_constant(_components(SIGMA))
    assert abs(maximum - mle["loglik"]) < 1e-10 * abs(mle["loglik"])
