"""The series seeds, and the import of pymc_dlm without Dask.

The seeds must depend on the run's seed and the key only, never on the process deriving them.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import pymc_dlm as dlm
from pymc_dlm.fleet.seeds import group_name, series_seeds

ROOT = Path(__file__).resolve().parents[2]  # the repository: its pymc_dlm is imported


def test_seeds_depend_on_key_and_seed_only():
    a = series_seeds(7, ("store 1", 3))
    assert a == series_seeds(7, ["store 1", np.int64(3)])
    assert series_seeds(7, "x") == series_seeds(7, ("x",))
    assert a != series_seeds(8, ("store 1", 3))
    assert a != series_seeds(7, ("store 1", 4))
    assert series_seeds(7, 1) != series_seeds(7, True)  # bool keys are not ints
    assert len(set(a)) == 3  # sample, states and forecast seeds differ


def test_seeds_and_group_names_are_the_same_in_other_processes():
    """Python's salted hash would differ between processes; the SHA-256 derivation must not."""
    code = (
        "from pymc_dlm.fleet.seeds import series_seeds, group_name;"
        "print(tuple(series_seeds(7, ('store 1', 3))), group_name(('store 1', 3)))"
    )
    outs = set()
    for salt in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        out = subprocess.run(
            [sys.executable, "-c", code],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        outs.add(out.stdout.strip())
    assert outs == {f"{tuple(series_seeds(7, ('store 1', 3)))} {group_name(('store 1', 3))}"}


def test_import_does_not_import_dask():
    code = (
        "import sys, pymc_dlm; "
        "print(sorted(m for m in ('dask', 'distributed', 'zarr') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
    assert callable(dlm.fit_many) and callable(dlm.load_fit)
