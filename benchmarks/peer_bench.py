"""Peer side: the benchmark models written with pymc-extras 0.15.1 ``pymc_extras.statespace``.

Runs inside the peer's own virtual environment (its PyMC pin differs from ours); ``run.py``
starts it as a subprocess, one model and one phase per process, and reads the JSON line it
prints. The measuring code is ``harness.py``, shared with our side.

Mapping to our models (same data, same HalfNormal scales, same initial-state prior):

* the initial state is not a parameter: ``x0`` (``initial_*``, ``beta_*``, ``params_*``) is a
  ``pm.Deterministic`` of zeros and ``P0 = 1e7 I`` a ``pm.Deterministic`` constant. pymc-extras
  treats ``(x0, P0)`` as the *predicted* moments of the first state (``a1 = x0, P1 = P0``), where
  ours has ``a1 = G m0, P1 = G C0 G' + W``; with ``C0 = 1e7`` the two differ by a negligible
  amount and cost exactly the same to evaluate;
* pymc-extras adds ``cov_jitter = 1e-8`` to covariances at each step (its default, kept);
* filter: the default ``filter_type="standard"``;
* model 4 (fixed loadings) is not a structural component: it is a small ``PyMCStateSpace``
  subclass, the documented way to write a custom model;
* model 5 (100 independent series) has no batch axis in pymc-extras; the only way to express it
  is one 100-variate model (100 states, 100 observed series, diagonal matrices), which is what
  is measured, marked as such in the table.

Usage (normally via run.py): ``<peer-venv>/bin/python benchmarks/peer_bench.py --model 1``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
import models  # noqa: E402

NOTES = {
    5: "pymc-extras has no batch axis: expressed as one 100-variate model (100 states)",
    4: "custom PyMCStateSpace subclass (fixed loadings)",
}


def _fixed_loading_dfm_class():
    import pytensor.tensor as pt
    from pymc_extras.statespace.core.properties import Parameter
    from pymc_extras.statespace.core.statespace import PyMCStateSpace

    class FixedLoadingDFM(PyMCStateSpace):
        """y_t = L f_t + e_t, f_t = f_{t-1} + u_t, diagonal noises, L fixed (p x k)."""

        def __init__(self, loadings):
            self.loadings = np.asarray(loadings, dtype=float)
            p, k = self.loadings.shape
            super().__init__(
                k_endog=p, k_states=k, k_posdef=k, measurement_error=True, verbose=False
            )

        def set_parameters(self):
            p, k = self.loadings.shape
            return (
                Parameter(name="x0", shape=(k,), dims=None),
                Parameter(name="P0", shape=(k, k), dims=None),
                Parameter(name="sigma_factor", shape=(k,), dims=None, constraints="Positive"),
                Parameter(name="sigma_obs", shape=(p,), dims=None, constraints="Positive"),
            )

        def make_symbolic_graph(self):
            p, k = self.loadings.shape
            x0 = self.make_and_register_variable("x0", shape=(k,))
            P0 = self.make_and_register_variable("P0", shape=(k, k))
            s_f = self.make_and_register_variable("sigma_factor", shape=(k,))
            s_obs = self.make_and_register_variable("sigma_obs", shape=(p,))
            self.ssm["initial_state", :] = x0
            self.ssm["initial_state_cov", :, :] = P0
            self.ssm["design", :, :] = self.loadings
            self.ssm["transition", :, :] = np.eye(k)
            self.ssm["selection", :, :] = np.eye(k)
            self.ssm["state_cov", :, :] = pt.diag(s_f**2)
            self.ssm["obs_cov", :, :] = pt.diag(s_obs**2)

    return FixedLoadingDFM


def build_peer(k: int, data: dict):
    """``(pm.Model, statespace model)`` of benchmark ``k`` with pymc-extras."""
    import pymc as pm
    import pytensor.tensor as pt
    from pymc_extras.statespace import structural as st

    pr = models.PRIORS[k]
    y = data["y"]
    C0 = models.C0
    if k == 1:
        ss = (st.LevelTrend(order=1, innovations_order=1) + st.MeasurementError()).build(
            verbose=False
        )
        with pm.Model(coords=ss.coords) as model:
            pm.Deterministic("initial_level_trend", pt.zeros(1))
            pm.Deterministic("P0", C0 * pt.eye(1))
            pm.HalfNormal("sigma_level_trend", pr["sigma_level"], shape=1)
            pm.HalfNormal("sigma_MeasurementError", pr["sigma_obs"])
            ss.build_statespace_graph(y.reshape(y.shape[0], -1))
    elif k == 2:
        comp = (
            st.LevelTrend(order=2, innovations_order=[1, 1])
            + st.TimeSeasonality(season_length=12, innovations=True, name="seasonal")
            + st.MeasurementError()
        )
        ss = comp.build(verbose=False)
        with pm.Model(coords=ss.coords) as model:
            pm.Deterministic("initial_level_trend", pt.zeros(2))
            pm.Deterministic("params_seasonal", pt.zeros(11))
            pm.Deterministic("P0", C0 * pt.eye(ss.k_states))
            pm.HalfNormal(
                "sigma_level_trend", np.array([pr["sigma_level"], pr["sigma_slope"]]), shape=2
            )
            pm.HalfNormal("sigma_seasonal", pr["sigma_seasonal"])
            pm.HalfNormal("sigma_MeasurementError", pr["sigma_obs"])
            ss.build_statespace_graph(y.reshape(y.shape[0], -1))
    elif k == 3:
        X = data["X"]
        p = X.shape[1]
        comp = (
            st.Regression(state_names=[f"x{i}" for i in range(p)], innovations=True)
            + st.MeasurementError()
        )
        ss = comp.build(verbose=False)
        with pm.Model(coords=ss.coords) as model:
            pm.Data("data_regression", X)
            pm.Deterministic("beta_regression", pt.zeros(p))
            pm.Deterministic("P0", C0 * pt.eye(p))
            pm.HalfNormal("sigma_beta_regression", pr["sigma_beta"], shape=p)
            pm.HalfNormal("sigma_MeasurementError", pr["sigma_obs"])
            ss.build_statespace_graph(y.reshape(y.shape[0], -1))
    elif k == 4:
        L = data["loadings"]
        ss = _fixed_loading_dfm_class()(L)
        with pm.Model() as model:
            pm.Deterministic("x0", pt.zeros(L.shape[1]))
            pm.Deterministic("P0", C0 * pt.eye(L.shape[1]))
            pm.HalfNormal("sigma_factor", pr["sigma_factor"], shape=L.shape[1])
            pm.HalfNormal("sigma_obs", pr["sigma_obs"], shape=L.shape[0])
            ss.build_statespace_graph(y.reshape(y.shape[0], -1))
    elif k == 5:
        B = y.shape[0]
        names = [f"s{i}" for i in range(B)]
        comp = st.LevelTrend(
            order=1, innovations_order=1, observed_state_names=names
        ) + st.MeasurementError(observed_state_names=names)
        ss = comp.build(verbose=False)
        with pm.Model(coords=ss.coords) as model:
            pm.Deterministic("initial_level_trend", pt.zeros((B, 1)))
            pm.Deterministic("P0", C0 * pt.eye(ss.k_states))
            pm.HalfNormal("sigma_level_trend", pr["sigma_level"], shape=(B, 1))
            pm.HalfNormal("sigma_MeasurementError", pr["sigma_obs"], shape=B)
            ss.build_statespace_graph(y.T)  # (T, 100)
    else:
        raise ValueError(f"unknown model {k}")
    return model, ss


def measure_states(ss, idata, seed):
    """Conditional-posterior state trajectories for every posterior draw."""
    n = int(idata["posterior"].sizes["chain"] * idata["posterior"].sizes["draw"])
    t0 = time.perf_counter()
    # outside the model context: the method builds its own forward model with the same names
    ss.sample_conditional_posterior(idata, random_seed=seed, progressbar=False)
    return {
        "wall_s": time.perf_counter() - t0,
        "draws": n,
        "method": "sample_conditional_posterior (filtered, predicted, smoothed + observed)",
    }


def main(argv=None):
    args = harness.worker_args(argv)
    harness.quiet()
    import pymc  # noqa: F401  imported before any timing: build time is model construction only
    import pymc_extras.statespace  # noqa: F401
    from pymc_extras.statespace import structural  # noqa: F401

    k = args.model
    data = models.load_data(k, args.data)
    result = {
        "side": "peer",
        "model": k,
        "phase": args.phase,
        "note": NOTES.get(k),
        "versions": harness.package_versions(),
        "pytensor": harness.pytensor_config(),
    }
    if args.phase == "logp":
        result["logp"] = harness.cell(
            harness.measure_logp,
            lambda: build_peer(k, data)[0],
            min_time=args.min_time,
            repeat=args.repeat,
        )
    else:
        built = harness.cell(build_peer, k, data)
        if isinstance(built, dict):
            result["error"] = built["error"]
            harness.emit(result)
            return
        model, ss = built
        harness.sample_phase(
            result, args, model, lambda idata: measure_states(ss, idata, args.seed)
        )
    harness.emit(result)


if __name__ == "__main__":
    main()
