"""The store: complete or absent, any fsspec URL, the summary beside it.

Serial runs (``client=None``) of two short local levels, with few draws.
"""

import fsspec
import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.fleet.store import MARKER, FleetStore

SAMPLE = {"draws": 10, "tune": 10, "chains": 1, "cores": 1}


def _data():
    rng = np.random.default_rng(5)
    return pd.DataFrame(
        {
            "shop": ["n", "n", "s", "s"] * 10,
            "item": [1, 2, 1, 2] * 10,
            "y": rng.normal(size=40).cumsum(),
        }
    )


def model_fn(frame):
    with pm.Model() as model:
        sigma = pm.HalfNormal("sigma_level", 1.0)
        dlm.DLM("y", dlm.LocalLevel(sigma), sigma_obs=1.0, observed=frame["y"].to_numpy())
    return model


def test_a_group_without_its_marker_is_absent_and_rewritten(tmp_path):
    store = str(tmp_path / "fits.zarr")
    fleet = FleetStore(store)
    fleet.create()
    # What a process killed while writing leaves: a group with arrays but no marker.
    partial = xr.DataTree.from_dict({"posterior": xr.Dataset({"junk": ("x", np.zeros(3))})})
    partial.to_zarr(fleet.url(("n", 1)), mode="w", consolidated=False)
    assert fleet.completed() == {}
    with pytest.raises(KeyError, match="not complete"):
        dlm.load_fit(store, ("n", 1))
    summary = dlm.fit_many(
        _data(),
        model_fn,
        by=["shop", "item"],
        store=store,
        random_seed=3,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    assert list(summary["status"]) == ["ok"] * 4
    assert not summary["from_store"].any()
    fit = dlm.load_fit(store, ("n", 1))
    assert "junk" not in fit["posterior"] and "sigma_level" in fit["posterior"]
    assert MARKER not in fit.attrs
    assert len(fleet.completed()) == 4


def test_fsspec_url_store_and_summary_beside_it():
    url = "memory://fleet-test/fits.zarr"
    fs = fsspec.filesystem("memory")
    if fs.exists("/fleet-test"):
        fs.rm("/fleet-test", recursive=True)
    summary = dlm.fit_many(
        _data(),
        model_fn,
        by=["shop", "item"],
        store=url,
        random_seed=3,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    assert (summary["status"] == "ok").all()
    with fsspec.open(url + ".summary.csv", "r") as f:
        stored = pd.read_csv(f)
    assert list(stored["shop"]) == list(summary["shop"])
    assert list(stored["item"]) == list(summary["item"])
    fit = dlm.load_fit(url, ("s", 2))
    mean = float(fit["posterior"]["sigma_level"].mean())
    row = summary[(summary["shop"] == "s") & (summary["item"] == 2)].iloc[0]
    assert row["sigma_level_mean"] == pytest.approx(mean, rel=1e-12)
    fs.rm("/fleet-test", recursive=True)


def test_states_and_forecast_are_stored_and_read_back_identical(tmp_path, monkeypatch):
    written = {}
    original = FleetStore.write

    def keep(self, key, tree, row):
        written[key] = tree.copy(deep=True)
        original(self, key, tree, row)

    monkeypatch.setattr(FleetStore, "write", keep)
    store = str(tmp_path / "fits.zarr")
    data = _data()
    data = data[data["shop"] == "n"]
    summary = dlm.fit_many(
        data,
        model_fn,
        by=["shop", "item"],
        store=store,
        random_seed=3,
        sample_kwargs=SAMPLE,
        states=True,
        forecast_steps=3,
        progressbar=False,
    )
    assert (summary["status"] == "ok").all(), summary["error"].tolist()
    for key, memory in written.items():
        back = dlm.load_fit(store, key)
        assert {"posterior", "sample_stats", "observed_data", "predictions"} <= set(back.children)
        assert "y_smoothed_state" in back["posterior"]
        assert back["predictions"]["y"].shape[2:] == (3,)  # (chain, draw, 3 future steps)
        assert sorted(back.children) == sorted(memory.children)
        assert back.attrs == memory.attrs
        for group in memory.children:
            xr.testing.assert_identical(back[group].to_dataset(), memory[group].to_dataset())


def test_parallel_chains_in_this_process(tmp_path):
    """Without a client, PyMC's parallel chains get the model in child processes: it pickles.

    ``mp_ctx="forkserver"`` makes PyMC pickle the step method, model and all, for its child
    processes (with ``fork``, the Linux default, the children inherit it and nothing is
    pickled). It also keeps this test process from forking: a pytest worker that has run a JAX
    test before this one holds JAX's threads, and JAX warns on a fork (an error in this suite).
    """
    data = _data()
    data = data[(data["shop"] == "s") & (data["item"] == 1)]
    summary = dlm.fit_many(
        data,
        model_fn,
        by=["shop", "item"],
        store=str(tmp_path / "fits.zarr"),
        random_seed=3,
        sample_kwargs={"draws": 10, "tune": 10, "chains": 2, "cores": 2, "mp_ctx": "forkserver"},
        progressbar=False,
    )
    assert (summary["status"] == "ok").all(), summary["error"].tolist()
