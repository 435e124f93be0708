"""fit_many's argument checks, the series seeds, and the import of pymc_dlm without Dask.

No sampling here: every bad argument must be refused before any series is fitted (the store
is not even created), and the seeds must not depend on the process that derives them.
"""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest

import pymc_dlm as dlm
from pymc_dlm.fleet.seeds import group_name, series_seeds

ROOT = Path(__file__).resolve().parents[2]  # the repository: its pymc_dlm is imported


def _data():
    return pd.DataFrame({"id": ["a"] * 5 + ["b"] * 5, "y": np.arange(10.0)})


def _model_fn(frame):
    with pm.Model() as model:
        dlm.DLM("y", dlm.LocalLevel(1.0), sigma_obs=1.0, observed=frame["y"].to_numpy())
    return model


def _no_dlm(frame):
    with pm.Model() as model:
        pm.Normal("mu")
    return model


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"data": {"id": [1]}}, TypeError, "data must be a pandas DataFrame"),
        ({"by": "series"}, KeyError, "by: .*'series'"),
        ({"by": []}, TypeError, "by must be"),
        ({"model_fn": "not callable"}, TypeError, "model_fn must be callable"),
        ({"model_fn": lambda frame: None}, TypeError, "model_fn must return a pm.Model"),
        ({"model_fn": _no_dlm}, ValueError, "model_fn must return a model with exactly one DLM"),
        ({"store": 3}, TypeError, "store must be"),
        ({"sample_kwargs": {"random_seed": 1}}, ValueError, "sample_kwargs must not set"),
        ({"forecast_steps": -1}, ValueError, "forecast_steps"),
        ({"random_seed": 1.5}, ValueError, "random_seed"),
        ({"client": object()}, TypeError, "client must be"),
    ],
)
def test_bad_arguments_are_refused_before_any_work(tmp_path, kwargs, error, match):
    store = tmp_path / "fits.zarr"
    args = {"data": _data(), "model_fn": _model_fn, "by": "id", "store": str(store)}
    args.update(kwargs)
    data, model_fn = args.pop("data"), args.pop("model_fn")
    with pytest.raises(error, match=match):
        dlm.fit_many(data, model_fn, progressbar=False, **args)
    assert not store.exists()


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
