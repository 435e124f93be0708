r"""Kernels compiled ahead of time: a store of machine code for any x86-64 (or other) host.

numba compiles the kernels on their first use and caches them per machine: on a new machine,
container, CI run or cluster worker the first fit waits for that compile (about 90 s for
the log-likelihood's entry, 20–40 s more for the first :func:`pymc_dlm.sample_states`).
A *store* holds the same compile results made ahead of time for numba's ``generic`` CPU
(the instruction set every processor of the target triple has), so that a process loads
them in a fraction of a second instead.

``python -m pymc_dlm prebuild DIRECTORY`` builds a store (:mod:`pymc_dlm.prebuild`): a
process with ``NUMBA_CPU_NAME=generic`` and an empty numba cache compiles the
log-likelihood's entry (:mod:`pymc_dlm.kalman.fused.native`) and runs a small model's state
draws and forecast, and every compile result of :data:`COMPILED` is written to the store. A
package built for distribution ships one in ``pymc_dlm/_prebuilt`` (where it is looked for
by default); ``PYMC_DLM_PREBUILT`` names another directory (a container image, a shared
disk of a cluster). A store is used only when its key, written beside it, equals
:func:`store_key`: the hash of the kernels' sources (everything under ``pymc_dlm/kalman``
and ``pymc_dlm/compat``), of the numba, llvmlite and Python versions and of the target
triple. Otherwise, and for signatures it lacks, numba compiles (and caches) as before.

The machine code is the same computation: numba's code has no fused multiply-adds and no
reassociation without ``fastmath``, so the generic build gives the same numbers, bitwise, as
a build for the host processor (tested); measured on an AMD Zen 4 (2026-12-06), its
log-likelihood and gradient ran as fast (41.7 µs against 42.2 µs for the Nile model, 499 µs
against 531 µs for a trend + ``Seasonal(12)`` model with T = 1000).
"""

import hashlib
import os
import pickle
import sys
import threading
import warnings
from pathlib import Path

import llvmlite
import llvmlite.binding as llvm
import numba

from pymc_dlm import compat

__all__ = ["COMPILED", "DIRECTORY_ENV", "RECORD_ENV", "STORE", "Store", "attach", "store_key"]

#: The environment variable naming a store's directory (default: ``pymc_dlm/_prebuilt``).
DIRECTORY_ENV = "PYMC_DLM_PREBUILT"
#: Set to "1" in the process that builds a store (:mod:`pymc_dlm.prebuild`).
RECORD_ENV = "PYMC_DLM_PREBUILT_RECORD"
_PACKAGE = Path(__file__).resolve().parents[2]
_KEY_FILE = "KEY"

#: The compiled functions a store holds: the log-likelihood's entry and the post-processing
#: kernels that a first fit's :func:`~pymc_dlm.sample_states`, :func:`~pymc_dlm.forecast`
#: and :func:`~pymc_dlm.kalman_smoother` (the one-step checks and the mode search of count
#: data too) call.
COMPILED = ("loglik_grad_entry", "ffbs_into", "forecast_into", "moments_into")


def store_key():
    """The key a store must carry to be used here (a hex string).

    Hash of the text of every module under ``pymc_dlm/kalman`` and ``pymc_dlm/compat`` (the
    kernels and the numba internals they are compiled with), of the numba, llvmlite and
    Python versions and of LLVM's target triple of this process.
    """
    digest = hashlib.sha256()
    for folder in ("kalman", "compat"):
        for path in sorted((_PACKAGE / folder).rglob("*.py")):
            digest.update(str(path.relative_to(_PACKAGE)).encode())
            digest.update(path.read_bytes())
    versions = (numba.__version__, llvmlite.__version__, sys.version_info[:2])
    digest.update(repr((versions, llvm.get_process_triple())).encode())
    return digest.hexdigest()


class Store:
    """Compile results by name and signature, in a directory (one pickle per name).

    Parameters
    ----------
    directory : path-like
        The store's directory; need not exist.
    recording : bool
        Whether new compile results are written to the store (while it is built).
    """

    def __init__(self, directory, recording=False):
        self.directory = Path(directory)
        self.recording = recording
        self._valid = None
        self._loaded = {}
        self._lock = threading.Lock()

    def active(self):
        """Whether the store is being built or holds kernels of these sources (else unused)."""
        return self.recording or self._is_valid()

    def _is_valid(self):
        if self._valid is None:
            key_file = self.directory / _KEY_FILE
            self._valid = key_file.is_file() and key_file.read_text().strip() == store_key()
        return self._valid

    def _table(self, name):
        if name not in self._loaded:
            path = self.directory / f"{name}.pkl"
            table = {}
            if self._is_valid() and path.is_file():
                try:
                    with open(path, "rb") as f:
                        table = pickle.load(f)  # noqa: S301 (written by a build, as numba's cache)
                except Exception as error:  # noqa: BLE001 (any unreadable file: compile instead)
                    warnings.warn(
                        f"the store of prebuilt kernels {path} cannot be read ({error!r}); "
                        "compiling the kernel instead",
                        RuntimeWarning,
                        stacklevel=2,
                    )
            self._loaded[name] = table
        return self._loaded[name]

    def load(self, name, signature):
        """The stored compile result of ``name`` for ``signature`` (a string), or None."""
        if self.recording:
            return None
        with self._lock:
            return self._table(name).get(signature)

    def save(self, name, signature, payload):
        """Write a compile result (only while recording)."""
        with self._lock:
            table = self._loaded.setdefault(name, {})
            table[signature] = payload
            self.directory.mkdir(parents=True, exist_ok=True)
            temporary = self.directory / f".{name}.pkl.tmp"
            with open(temporary, "wb") as f:
                pickle.dump(table, f, protocol=pickle.HIGHEST_PROTOCOL)
            temporary.replace(self.directory / f"{name}.pkl")
            (self.directory / _KEY_FILE).write_text(store_key() + "\n")


def _directory():
    return Path(os.environ.get(DIRECTORY_ENV) or _PACKAGE / "_prebuilt")


#: The store of this process.
STORE = Store(_directory(), recording=os.environ.get(RECORD_ENV) == "1")


def attach(dispatcher, name):
    """Make the numba ``dispatcher`` look in :data:`STORE` first (see :data:`COMPILED`)."""
    compat.use_store(dispatcher, STORE, name)
