"""A store of kernels compiled ahead of time gives the JIT's numbers and skips the compile.

The store is built once (``pymc_dlm.prebuild.build``: a child process compiles for numba's
generic CPU, about two minutes), then a second child with an empty numba cache computes the
numbers of ``tests.support.prebuilt_case`` with it. They must equal this process's numbers
(kernels compiled for this machine's processor) bit for bit, and every kernel of the store
must have been loaded, not compiled: a compile would have written numba's cache, which
stays empty of them.
"""

import pickle

import numpy as np
import pytest

from pymc_dlm.kalman.fused import prebuilt
from pymc_dlm.prebuild import build
from tests.support import prebuilt_case
from tests.support.child import child_results


def _store(directory, key, tables):
    directory.mkdir()
    (directory / "KEY").write_text(key + "\n")
    for name, table in tables.items():
        with open(directory / f"{name}.pkl", "wb") as f:
            pickle.dump(table, f)
    return prebuilt.Store(directory)


def test_a_store_is_read_only_under_its_own_key(tmp_path):
    table = {"ffbs_into": {"(int64,)": "payload"}}
    ours = _store(tmp_path / "ours", prebuilt.store_key(), table)
    assert ours.load("ffbs_into", "(int64,)") == "payload"
    assert ours.load("ffbs_into", "(float64,)") is None
    assert ours.load("forecast_into", "(int64,)") is None
    # Built from other kernel sources or another numba: ignored.
    other = _store(tmp_path / "other", "0" * 64, table)
    assert other.load("ffbs_into", "(int64,)") is None
    assert prebuilt.Store(tmp_path / "absent").load("ffbs_into", "(int64,)") is None
    # A store being built never answers (its kernels are compiled, then written).
    recording = prebuilt.Store(tmp_path / "ours", recording=True)
    assert recording.load("ffbs_into", "(int64,)") is None


def test_an_unreadable_store_warns_and_compiles(tmp_path):
    store = _store(tmp_path / "broken", prebuilt.store_key(), {})
    (tmp_path / "broken" / "ffbs_into.pkl").write_bytes(b"not a pickle")
    with pytest.warns(RuntimeWarning, match="cannot be read"):
        assert store.load("ffbs_into", "(int64,)") is None


def test_the_key_changes_with_the_kernel_sources(tmp_path, monkeypatch):
    key = prebuilt.store_key()
    package = tmp_path / "pymc_dlm"
    for folder in ("kalman", "compat"):
        for path in (prebuilt._PACKAGE / folder).rglob("*.py"):
            copy = package / path.relative_to(prebuilt._PACKAGE)
            copy.parent.mkdir(parents=True, exist_ok=True)
            copy.write_bytes(path.read_bytes())
    monkeypatch.setattr(prebuilt, "_PACKAGE", package)
    assert prebuilt.store_key() == key
    steps = package / "kalman" / "fused" / "steps.py"
    steps.write_text(steps.read_text() + "\n# one more line\n")
    assert prebuilt.store_key() != key


@pytest.mark.slow  # builds the store: two minutes of compiling in a child process
def test_prebuilt_kernels_give_the_jit_numbers_without_compiling(tmp_path):
    store = tmp_path / "store"
    key = build(store)
    assert key == prebuilt.store_key()
    assert {p.name for p in store.iterdir()} == {"KEY"} | {f"{n}.pkl" for n in prebuilt.COMPILED}
    cache = tmp_path / "numba_cache"
    cache.mkdir()
    got = child_results(
        "tests.support.prebuilt_case", cache, **{prebuilt.DIRECTORY_ENV: str(store)}
    )
    assert got.pop("loaded") == dict.fromkeys(prebuilt.COMPILED, 1)
    cached = [p.name for p in cache.rglob("*") if p.is_file()]
    for name in prebuilt.COMPILED:
        assert not [c for c in cached if name in c], cached
    want = prebuilt_case.results()
    want.pop("loaded")
    assert set(got) == set(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
