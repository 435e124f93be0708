"""Reproduce the log-likelihood figures quoted in ``docs/loglik.md``.

Nile local level at the maximum-likelihood values of Durbin & Koopman (2012, §2.10),
sigma_level = 38.33 and sigma_obs = 122.88 (W = 1469.2, V = 15099.5). Prints pymc_dlm's
log-likelihood with its default (exact diffuse) initial state and with the proper prior
theta_0 ~ N(0, 1e7), and statsmodels' figures under three initialisations. Run from the
repository root with the test extra installed (statsmodels)::

    .venv/bin/python docs/scripts/loglik_conventions.py

It is not run by the documentation build.
"""

from importlib.resources import files

import numpy as np
import pandas as pd
import statsmodels.api as sm

import pymc_dlm as dlm

SIGMA_LEVEL, SIGMA_OBS, C0 = 38.33, 122.88, 1e7


def main():
    """Print the figures."""
    y = pd.read_csv(files("pymc_dlm") / "data" / "nile.csv")["flow"].to_numpy(float)
    W, V = SIGMA_LEVEL**2, SIGMA_OBS**2

    def loglik(component):
        return float(dlm.kalman_filter(component, y, sigma_obs=SIGMA_OBS)["loglik"])

    ours_default = loglik(dlm.LocalLevel(SIGMA_LEVEL))
    ours_proper = loglik(dlm.LocalLevel(SIGMA_LEVEL, m0=0.0, C0=C0))

    # statsmodels with the proper prior moved to alpha_1: a1 = G m0 = 0, P1 = G C0 G' + W.
    known = sm.tsa.statespace.MLEModel(y, k_states=1)
    known.ssm.tolerance = 0
    one = np.ones((1, 1))
    known["design"], known["transition"], known["selection"] = one, one, one
    known["obs_cov"], known["state_cov"] = V * one, W * one
    known.ssm.initialize_known(np.zeros(1), np.array([[C0 + W]]))
    known_ll = known.ssm.loglike()

    params = [V, W]  # UnobservedComponents orders them: irregular, level
    diffuse = sm.tsa.UnobservedComponents(y, level="llevel", use_exact_diffuse=True)
    diffuse.ssm.tolerance = 0
    diffuse_ll = diffuse.loglike(params)
    default = sm.tsa.UnobservedComponents(y, level="llevel")  # approximate diffuse, burn 1
    default_ll = default.loglike(params)

    rows = [
        ("pymc_dlm, default C0='diffuse'", ours_default),
        ("pymc_dlm, m0 = 0, C0 = 1e7", ours_proper),
        ("statsmodels, initialize_known(a1, P1)", known_ll),
        ("statsmodels, use_exact_diffuse=True", diffuse_ll),
        ("statsmodels UnobservedComponents default", default_ll),
        ("pymc_dlm proper - exact diffuse", ours_proper - diffuse_ll),
        ("-0.5 log C0", -0.5 * np.log(C0)),
        ("-0.5 y_1^2 / C0", -0.5 * y[0] ** 2 / C0),
        ("0.5 log(2 pi)", 0.5 * np.log(2 * np.pi)),
    ]
    for label, value in rows:
        print(f"{label:45s} {value:10.4f}")


if __name__ == "__main__":
    main()
