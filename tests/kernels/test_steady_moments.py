"""The kernels' recorded moments take the steady-state route, and stay those of the filter.

A local linear trend + ``Seasonal(4)`` (proper prior, fixed parameters), T = 300, one
missing value at t = 20. Past it the covariance recursion settles (to ``STEADY_TOL``), and
the forward pass that records moments (``kalman_smoother``, FFBS, forecasts) switches to the
steady steps: the filtered and predicted covariances of every later step are the settled
step's, bit for bit, as the steady steps record them. Oracle: statsmodels' Kalman filter
and smoother with its own steady-state switch turned off (``tolerance = 0``), every moment
and the log-likelihood to 1e-9 relative.

Before the steady route was taken with recorded moments (2026-12-07), the filtered
covariances of the last 100 steps differed from the last one by up to 5e-15 relative
(round-off of the recursion): no two rows were bitwise equal, and the test's route
assertion fails there.
"""

import numpy as np

import pymc_dlm as dlm
from tests.support.oracles import (
    assert_moments_close,
    mod_poly,
    mod_seas,
    mod_sum,
    moments_from_dataset,
    statsmodels_filter,
)

T = 300


def _data():
    rng = np.random.default_rng(5)
    trend = np.cumsum(np.cumsum(0.05 * rng.normal(size=T)))
    y = trend + np.tile([1.0, -0.5, 0.2, -0.7], T // 4) + 0.8 * rng.normal(size=T)
    y[20] = np.nan
    return y


def test_recorded_moments_take_the_steady_route_and_equal_statsmodels():
    y = _data()
    model = dlm.LocalLinearTrend(0.3, 0.05, m0=[0.0, 0.0], C0=[10.0, 1.0]) + dlm.Seasonal(
        4, 0.2, m0=0.0, C0=4.0
    )
    ds = dlm.kalman_smoother(model, y, sigma_obs=0.8)
    fC, pR = ds["filtered_cov"].values, ds["predicted_cov"].values
    settled = [t for t in range(21, T) if np.array_equal(fC[t], fC[-1])]
    assert len(settled) > 100 and settled == list(range(settled[0], T))
    assert all(np.array_equal(pR[t], pR[-1]) for t in settled[1:])
    system = mod_sum(
        mod_poly(2, [0.3, 0.05], m0=[0.0, 0.0], C0=[10.0, 1.0]),
        mod_seas(4, 0.2, m0=0.0, C0=4.0),
    )
    F, G, W, m0, C0 = system
    ref = statsmodels_filter(F, G, W, np.array([[0.8**2]]), m0, C0, y, smooth=True)
    ours = moments_from_dataset(ds)
    assert_moments_close(ours, ref, mean_scale=np.nanstd(y), rtol=1e-9, atol_factor=1e-9)
    assert abs(ours.loglik - ref.loglik) < 1e-9 * abs(ref.loglik)
