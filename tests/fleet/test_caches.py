"""Worker processes starting at once on a fresh machine: one compilation cache, no conflict.

Two processes start together with ``NUMBA_CACHE_DIR`` and ``PYTENSOR_FLAGS=compiledir=``
pointed at the same two empty directories, as workers of a new cluster would. Each compiles
the fused log-likelihood kernels of ``pymc_dlm.kalman.fused.native`` and a model's NUTS
log-density (numba backend) and evaluates it. All must succeed and agree to the last bit.
A third process started afterwards must load the package's kernels from the cache rather
than compile them: no numba index file is added or rewritten.

What this covers: numba keeps the cache of a function next to its source (``__pycache__``)
unless ``NUMBA_CACHE_DIR`` is set; with it set, every numba cache (the package's kernels
included) goes to that directory, so the kernels here are compiled cold, not loaded from the
repository's ``__pycache__``. The test checks that the package's kernels were written there.
It does not cover caches on a network file system shared by several machines. (Two writers
suffice for a conflict; three, until 2026-12-06, cost a third more of the suite's longest
test, each compiling the kernels cold.)
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import numpy as np
import pymc as pm
import pymc_dlm as dlm
from pymc.blocking import DictToArrayBijection

y = np.sin(np.arange(30) / 3.0) + np.linspace(0, 1, 30)
y[[4, 17]] = np.nan
with pm.Model() as model:
    level = pm.HalfNormal("sigma_level", 1.0)
    seasonal = pm.HalfNormal("sigma_seasonal", 1.0)
    obs = pm.HalfNormal("sigma_obs", 1.0)
    dlm.DLM("y", dlm.LocalLevel(level) + dlm.Seasonal(4, seasonal), sigma_obs=obs, observed=y)
fn = model.logp_dlogp_function(ravel_inputs=True)
point = {k: v + 0.25 for k, v in model.initial_point().items()}
logp, grad = fn(DictToArrayBijection.map({v.name: point[v.name] for v in fn._grad_vars}))
print(repr(float(logp)), [repr(float(g)) for g in grad])
"""


def _start(tmp_path):
    env = {
        **os.environ,
        "NUMBA_CACHE_DIR": str(tmp_path / "numba"),
        "PYTENSOR_FLAGS": f"compiledir={tmp_path / 'pytensor'}",
    }
    return subprocess.Popen(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _is_kernel(path):
    return path.parent.name.startswith("fused_")


def _index_files(tmp_path):
    return {p: p.stat().st_mtime_ns for p in (tmp_path / "numba").rglob("*.nbi")}


@pytest.mark.slow
def test_processes_compiling_at_once_into_empty_caches_agree(tmp_path):
    (tmp_path / "numba").mkdir()
    (tmp_path / "pytensor").mkdir()
    procs = [_start(tmp_path) for _ in range(2)]
    outputs = []
    for proc in procs:
        out, err = proc.communicate(timeout=1200)
        assert proc.returncode == 0, err[-3000:]
        outputs.append(out.strip())
    assert outputs[0] and len(set(outputs)) == 1, outputs
    index = _index_files(tmp_path)
    # numba names a cache folder after the source's folder (plus a hash of its path): the
    # package's kernels, in pymc_dlm/kalman/fused/, are cached under "fused_<hash>/".
    kernels = [p for p in index if _is_kernel(p)]
    assert any(p.name.startswith("native.") for p in kernels), sorted(map(str, index))[:20]
    assert any((tmp_path / "pytensor").iterdir())

    start = time.perf_counter()
    late = _start(tmp_path)
    out, err = late.communicate(timeout=1200)
    elapsed = time.perf_counter() - start
    assert late.returncode == 0, err[-3000:]
    assert out.strip() == outputs[0]
    after = _index_files(tmp_path)
    changed = [p for p in after if p not in index or after[p] != index[p]]
    assert not [p for p in changed if _is_kernel(p)], (changed, elapsed)
