"""BLAS and LAPACK on one thread while the package's small-matrix computations run.

Every operation of the filters and smoothers is on (n, n) matrices with n of a few tens.
With both cores busy, OpenBLAS's threads made the C backend of the scans 5 times slower
(644 against 119 ms per smoother call, measured once), so numeric runs limit BLAS to one
thread (``threadpoolctl``, a dependency of PyMC).

The limit is process-wide (BLAS's own setting), so it is counted: nested and concurrent
entries share one limit, set by the first entry and restored by the last exit. Setting it
costs about 20 µs, which the mode search of the Laplace log-likelihood (several smoother
runs per log-density evaluation) would otherwise pay at every run.
"""

import contextlib
import threading

from threadpoolctl import ThreadpoolController

__all__ = ["one_blas_thread"]

_LOCK = threading.Lock()
_STATE = {"controller": None, "depth": 0, "limiter": None}


@contextlib.contextmanager
def one_blas_thread():
    """A context in which BLAS and LAPACK use one thread (counted: see the module doc)."""
    with _LOCK:
        if _STATE["depth"] == 0:
            if _STATE["controller"] is None:
                _STATE["controller"] = ThreadpoolController()
            _STATE["limiter"] = _STATE["controller"].limit(limits=1, user_api="blas")
        _STATE["depth"] += 1
    try:
        yield
    finally:
        with _LOCK:
            _STATE["depth"] -= 1
            if _STATE["depth"] == 0:
                _STATE["limiter"].restore_original_limits()
                _STATE["limiter"] = None
