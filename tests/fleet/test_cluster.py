"""fit_many on a two-worker LocalCluster: nothing lost, resumable, the same draws everywhere.

One cluster (two worker processes, one thread each) serves the module. The series are short
local levels (T = 40, 20 draws after 20 tuning steps, 2 chains): the statistics are
meaningless, the bookkeeping is what is tested. One series is planted broken (its model
raises). Every comparison of draws is exact (``np.testing.assert_array_equal``).
"""

import os
import signal
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pymc as pm
import pytest
import xarray as xr

import pymc_dlm as dlm
from pymc_dlm.fleet.store import FleetStore

distributed = pytest.importorskip("distributed")

N_SERIES, T = 20, 40
BROKEN = "s07"
SEED = 20261205
SAMPLE = {"draws": 20, "tune": 20, "chains": 2, "cores": 1}


def _series_data():
    rng = np.random.default_rng(0)
    frames = []
    for i in range(N_SERIES):
        level = np.cumsum(rng.normal(0, 0.5, T))
        frames.append(
            pd.DataFrame({"id": f"s{i:02d}", "t": np.arange(T), "y": level + rng.normal(0, 1, T)})
        )
    return pd.concat(frames, ignore_index=True)


DATA = _series_data()


def model_fn(frame):
    if frame["id"].iloc[0] == BROKEN:
        raise ValueError("planted: this series cannot be modelled")
    with pm.Model() as model:
        sigma_level = pm.HalfNormal("sigma_level", 1.0)
        sigma_obs = pm.HalfNormal("sigma_obs", 1.0)
        dlm.DLM(
            "y", dlm.LocalLevel(sigma_level), sigma_obs=sigma_obs, observed=frame["y"].to_numpy()
        )
    return model


class CountingModelFn:
    """``model_fn`` that appends the series id to a file at every call (from any process)."""

    def __init__(self, path, stop_after=None):
        self.path, self.stop_after = str(path), stop_after

    def calls(self):
        p = Path(self.path)
        return p.read_text().split() if p.exists() else []

    def __call__(self, frame):
        if self.stop_after is not None and len(self.calls()) >= self.stop_after:
            raise KeyboardInterrupt("simulated interruption of the run")
        with open(self.path, "a") as f:
            f.write(f"{frame['id'].iloc[0]}\n")
        return model_fn(frame)


class SlowModelFn:
    """``model_fn`` after a pause of ``seconds``."""

    def __init__(self, seconds):
        self.seconds = seconds

    def __call__(self, frame):
        time.sleep(self.seconds)
        return model_fn(frame)


def _subset(ids):
    return DATA[DATA["id"].isin(ids)]


def _posterior(store, key):
    return dlm.load_fit(store, key)["posterior"].to_dataset()


def _assert_same_draws(store_a, store_b, keys):
    for key in keys:
        a, b = _posterior(store_a, key), _posterior(store_b, key)
        assert set(a.data_vars) == set(b.data_vars) and a.data_vars
        for name in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=f"{key} {name}")


@pytest.fixture(scope="module")
def client():
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as c,
    ):
        yield c


@pytest.fixture(scope="module")
def full_run(client, tmp_path_factory):
    store = str(tmp_path_factory.mktemp("fleet") / "fits.zarr")
    summary = dlm.fit_many(
        DATA,
        model_fn,
        by="id",
        store=store,
        client=client,
        random_seed=SEED,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    return store, summary


def test_every_series_complete_and_the_broken_one_failed(full_run):
    store, summary = full_run
    assert list(summary["id"]) == [f"s{i:02d}" for i in range(N_SERIES)]
    ok = summary[summary["status"] == "ok"]
    assert set(summary.loc[summary["status"] == "failed", "id"]) == {BROKEN}
    assert len(ok) == N_SERIES - 1
    error = summary.set_index("id").loc[BROKEN, "error"]
    assert error == "ValueError: planted: this series cannot be modelled"
    assert (ok["error"] == "").all() and not summary["from_store"].any()
    for col in ("wall_time_s", "divergences", "max_r_hat", "min_ess_bulk"):
        assert ok[col].notna().all(), col
    for col in ("sigma_level_mean", "sigma_level_sd", "sigma_obs_mean", "sigma_obs_sd"):
        assert (ok[col] > 0).all(), col
    fleet = FleetStore(store)
    assert len(fleet.completed()) == N_SERIES - 1
    with pytest.raises(KeyError, match="not complete"):
        dlm.load_fit(store, BROKEN)
    on_disk = pd.read_csv(fleet.summary_url)
    assert list(on_disk["id"]) == list(summary["id"])
    # The stored means are those of the stored draws.
    post = _posterior(store, "s03")
    row = summary.set_index("id").loc["s03"]
    assert row["sigma_obs_mean"] == pytest.approx(float(post["sigma_obs"].mean()), rel=1e-12)


def test_serial_run_equals_distributed_and_load_fit_equals_memory(full_run, tmp_path, monkeypatch):
    store, _ = full_run
    written = {}
    original = FleetStore.write

    def keep(self, key, tree, row):
        written[key] = tree.copy(deep=True)
        original(self, key, tree, row)

    monkeypatch.setattr(FleetStore, "write", keep)  # serial: the writes run in this process
    keys = ["s00", "s11", "s19"]
    serial = str(tmp_path / "serial.zarr")
    summary = dlm.fit_many(
        _subset(keys),
        model_fn,
        by="id",
        store=serial,
        random_seed=SEED,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    assert (summary["status"] == "ok").all()
    _assert_same_draws(serial, store, keys)
    for key in keys:
        memory, back = written[(key,)], dlm.load_fit(serial, key)
        assert sorted(back.children) == sorted(memory.children)
        assert back.attrs == memory.attrs
        for group in memory.children:
            xr.testing.assert_identical(back[group].to_dataset(), memory[group].to_dataset())


def test_interrupted_run_resumes_and_skips_finished_series(full_run, client, tmp_path):
    store, _ = full_run
    keys = [f"s{i:02d}" for i in range(8)]  # the broken s07 included
    resumed = str(tmp_path / "resumed.zarr")
    first = CountingModelFn(tmp_path / "first.txt", stop_after=4)
    with pytest.raises(KeyboardInterrupt):
        dlm.fit_many(
            _subset(keys),
            first,
            by="id",
            store=resumed,
            random_seed=SEED,
            sample_kwargs=SAMPLE,
            progressbar=False,
        )
    # One call checks the first model before any work, then s00, s01, s02 are fitted.
    assert first.calls() == ["s00", "s00", "s01", "s02"]
    assert len(FleetStore(resumed).completed()) == 3
    second = CountingModelFn(tmp_path / "second.txt")
    summary = dlm.fit_many(
        _subset(keys),
        second,
        by="id",
        store=resumed,
        client=client,
        random_seed=SEED,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    # The check of the first model (s00, in this process), then only the unfinished series.
    assert sorted(second.calls()) == sorted(["s00", "s03", "s04", "s05", "s06", "s07"])
    assert list(summary["from_store"]) == [True] * 3 + [False] * 5
    assert list(summary["status"]) == ["ok"] * 7 + ["failed"]
    _assert_same_draws(resumed, store, [k for k in keys if k != BROKEN])


def test_a_killed_worker_loses_no_series(full_run, client, tmp_path):
    store, _ = full_run
    keys = [f"s{i:02d}" for i in range(8, 18)]
    target = str(tmp_path / "killed.zarr")
    pids = client.run(os.getpid)
    killed = {}

    def kill_one_busy_worker():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                busy = [w for w, tasks in client.processing().items() if tasks]
                done = len(FleetStore(target).completed()) if Path(target).exists() else 0
            except Exception as err:  # a group being written while it is read: poll again
                killed["last_poll_error"] = repr(err)
                busy, done = [], 0
            if busy and done >= 2:
                killed["done_before"] = done
                os.kill(pids[busy[0]], signal.SIGKILL)
                return
            time.sleep(0.2)

    thread = threading.Thread(target=kill_one_busy_worker)
    thread.start()
    # With warm caches a series takes well under a second; a pause in model_fn (which
    # changes no draw) keeps the run going long enough for the kill to land in the middle.
    summary = dlm.fit_many(
        _subset(keys),
        SlowModelFn(0.5),
        by="id",
        store=target,
        client=client,
        random_seed=SEED,
        sample_kwargs=SAMPLE,
        progressbar=False,
    )
    thread.join()
    assert "done_before" in killed, f"no worker was killed during the run: {killed}"
    assert killed["done_before"] < len(keys)
    assert (summary["status"] == "ok").all(), summary[["id", "status", "error"]]
    assert len(FleetStore(target).completed()) == len(keys)
    _assert_same_draws(target, store, keys)
    client.wait_for_workers(2, timeout=120)  # the nanny restarts the killed worker


def test_chains_run_in_the_worker_process_by_default(client, tmp_path):
    # Without ``cores`` PyMC would start a process per chain, which a daemonic Dask worker
    # cannot do; on a worker fit_many sets ``cores=1`` unless told otherwise.
    keys = ["s01", "s02"]
    sample = {k: v for k, v in SAMPLE.items() if k != "cores"}
    summary = dlm.fit_many(
        _subset(keys),
        model_fn,
        by="id",
        store=str(tmp_path / "cores.zarr"),
        client=client,
        random_seed=SEED,
        sample_kwargs=sample,
        progressbar=False,
    )
    assert (summary["status"] == "ok").all(), summary[["id", "error"]]
    forced = dlm.fit_many(
        _subset(keys),
        model_fn,
        by="id",
        store=str(tmp_path / "forced.zarr"),
        client=client,
        random_seed=SEED,
        sample_kwargs={**sample, "cores": 2},
        progressbar=False,
    )
    # The user's cores=2 is passed on, and fails in a daemonic worker: the default matters.
    assert (forced["status"] == "failed").all()
    assert forced["error"].str.contains("daemon").all(), forced["error"].tolist()
