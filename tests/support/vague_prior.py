"""The vague-prior case: local linear trend + Seasonal(4), small variances, C0 = 1e7.

With C0 = 1e7 and variances around 1e-3..1e-6 a plain float64 covariance filter loses about
7 digits of the log-likelihood. The case is shared by the 60-digit mpmath tests
(``tests/kalman/test_oracle_mpmath.py``) and the fused kernels' test
(``tests/kernels/test_fused.py``). Built from ``oracles`` only: nothing from pymc_dlm.
"""

import numpy as np

from tests.support import oracles as O

SEED = 20261124

S_OBS = np.sqrt(1e-3)
S_LEVEL, S_SLOPE, S_SEAS = 1e-2, 1e-3, 1e-2
T_VAGUE = 60
C0_VAGUE = 1e7  # R dlm's default prior variance, the oracles' default


def vague_case():
    """(oracle system, simulated series of length ``T_VAGUE``) of the vague-prior case."""
    ref = O.mod_sum(
        O.mod_poly(2, [S_LEVEL, S_SLOPE], C0=C0_VAGUE), O.mod_seas(4, S_SEAS, C0=C0_VAGUE)
    )
    rng = np.random.default_rng([SEED, 60])
    theta0 = np.array([10.0, 0.1, 1.0, -0.5, 0.2])
    _, y = O.simulate(ref.F, ref.G, ref.W, S_OBS**2, theta0, 0.0, T_VAGUE, rng)
    return ref, y[:, 0]
