"""One-step moments over draws: a draw the kernels do not take is redone by the filter scan.

``posterior_residuals`` of a fixed-W local level + ``Seasonal(4)`` (two series, a missing value)
over four draws of distinct parameter values. ``moments_into`` is wrapped so that the
members of draw 2 come back with the status ``FAILED`` and NaN moments, as when the
kernels' accuracy guard cannot hold: the residuals must equal those of the run where every
draw takes the kernels, and those where every draw takes the filter scan (the definition,
``one_step.one_step_over_draws``), and the scan must have run for that one draw only.
Mutations (2026-12-07): without the redo the scan is not called; with the scan run but its
result not written back, draw 2's residuals are NaN.
"""

import numpy as np
import pymc as pm
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.kalman.constants import FAILED
from pymc_dlm.postprocess import one_step

T = 24


def _fit():
    rng = np.random.default_rng(11)
    y = np.cumsum(rng.normal(size=(2, T)), axis=1) + rng.normal(size=(2, T))
    y[1, 7] = np.nan
    with pm.Model(coords={"series": [0, 1], "time": np.arange(T)}) as model:
        s = pm.HalfNormal("s", 1.0)
        e = pm.HalfNormal("e", 1.0)
        system = dlm.LocalLevel(s, m0=0.0, C0=9.0) + dlm.Seasonal(4, s, m0=0.0, C0=4.0)
        dlm.DLM("y", system, sigma_obs=e, observed=y, dims=("series", "time"))
    values = {"s": [[0.3, 0.5, 0.7, 0.9]], "e": [[1.0, 0.8, 1.3, 0.6]]}
    post = xr.Dataset({k: (("chain", "draw"), np.array(v)) for k, v in values.items()})
    return model, xr.DataTree.from_dict({"posterior": post})


def _residuals(model, idata):
    out = dlm.posterior_residuals(idata, model, progressbar=False, chunk_size=4)
    return out["y"].values


def test_a_draw_the_kernels_do_not_take_is_redone_by_the_scan(monkeypatch):
    model, idata = _fit()
    kernels = _residuals(model, idata)
    real, scan = one_step.moments_into, one_step.one_step_over_draws
    bad_draw, members = 2, 2  # two series: members 4 and 5

    def failing(inp, out, lo, hi):
        real(inp, out, lo, hi)
        for b in range(max(lo, bad_draw * members), min(hi, (bad_draw + 1) * members)):
            out.status[b] = FAILED
            out.pa[b], out.pR[b] = np.nan, np.nan

    calls = []

    def counting(target):
        fn = scan(target)

        def run(*values):
            calls.append([np.shape(v)[0] for v in values])
            return fn(*values)

        return run

    monkeypatch.setattr(one_step, "moments_into", failing)
    monkeypatch.setattr(one_step, "one_step_over_draws", counting)
    redone = _residuals(model, idata)
    assert calls == [[1, 1]]
    monkeypatch.setattr(one_step, "fused_system", lambda target: None)
    scans = _residuals(model, idata)
    assert calls[1:] == [[4, 4]]
    assert np.isnan(kernels).sum() == 4  # y[1, 7] at each draw (a proper prior)
    np.testing.assert_allclose(redone, kernels, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(scans, kernels, rtol=1e-10, atol=1e-12)
