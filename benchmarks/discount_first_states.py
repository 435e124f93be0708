"""The first ``sample_states`` of a discounted model in a new process: kernels against scan.

Each route runs in a fresh process with an empty pytensor compile directory (the numba
caches as they are: warm after the test suite or a previous run): a discounted local level
(δ = 0.8) plus ``Seasonal(4, 0.3)`` with the exact diffuse start, T = 60 simulated values,
200 posterior draws (the model has no free variable); two calls of ``sample_states``, the
first paying the compilation. ``scan`` forces the scans' route (the pytensor definition)
by making the kernels' route unavailable.

Run as ``python benchmarks/discount_first_states.py``.
"""

import os
import subprocess
import sys
import tempfile
import time


def _worker(route):
    import numpy as np
    import pymc as pm
    import xarray as xr

    import pymc_dlm as dlm
    from pymc_dlm.postprocess import states

    if route == "scan":
        states.kernel_system = lambda target: None
    rng = np.random.default_rng(3)
    season = np.tile([1.0, -0.5, 0.2, -0.7], 15)
    y = np.cumsum(rng.normal(size=60)) + season + rng.normal(size=60)
    with pm.Model() as model:
        components = dlm.LocalLevel(discount=0.8) + dlm.Seasonal(4, 0.3)
        dlm.DLM("y", components, observed=y, sigma_obs=1.0)
    draws = xr.Dataset(
        {"unused": (("chain", "draw"), np.zeros((1, 200)))},
        coords={"chain": [0], "draw": np.arange(200)},
    )
    idata = xr.DataTree.from_dict({"posterior": draws})
    for call in (1, 2):
        start = time.perf_counter()
        dlm.sample_states(idata, model, random_seed=1, progressbar=False)
        print(f"{route:>6}  call {call}: {time.perf_counter() - start:8.2f} s", flush=True)


def main():
    for route in ("kernel", "scan"):
        with tempfile.TemporaryDirectory() as compiledir:
            env = {**os.environ, "PYTENSOR_FLAGS": f"base_compiledir={compiledir}"}
            subprocess.run([sys.executable, __file__, "--worker", route], env=env, check=True)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        _worker(sys.argv[2])
    else:
        main()
