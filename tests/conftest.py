"""Shared fixtures: the Nile series (R's ``datasets::Nile``).

The file is the package's copy, ``pymc_dlm/data/nile.csv`` (provenance in
``pymc_dlm/data/README.md``); the environment variable ``PYMC_DLM_NILE`` names another copy.
Helpers shared by the tests live in ``tests/support/``.
"""

import numpy as np
import pytest

from tests.support.oracles import nile_path


@pytest.fixture(scope="session")
def nile():
    """(years, flow) of the Nile, 1871-1970; ``PYMC_DLM_NILE`` overrides the file."""
    table = np.genfromtxt(nile_path(), delimiter=",", names=True)
    return table["year"].astype(int), table["flow"].astype(float)


#: Tests whose child processes compile the kernels into empty caches of their own: the
#: longest single tests of a cold run, started first so that they end before the rest.
_OWN_CACHES = (
    "tests/kernels/test_prebuilt.py::test_prebuilt_kernels_give_the_jit_numbers_without_compiling",
    "tests/kernels/test_compat.py::test_fallbacks_in_a_child_process_equal_the_private_routes",
    "tests/fleet/test_caches.py::test_processes_compiling_at_once_into_empty_caches_agree",
)
#: Tests whose child processes read the kernels from the suite's numba cache: run last, when
#: the tests before them have compiled the kernels into it (first, they compiled them a
#: second time beside the test processes: 360 s of a cold run for the benchmark smoke run
#: against about 10 s with the kernels cached, 2026-12-07).
_SHARED_CACHE = ("tests/benchmarks/", "tests/notebooks/")


def pytest_collection_modifyitems(config, items):
    """Order the tests for a cold start: own-cache children first, shared-cache children last.

    The order is the same in every pytest-xdist worker (each collects and sorts alike), and
    the scheduler hands the tests out in it. CI runs ``--dist worksteal``: a worker that is
    done takes tests queued on the other (with the default ``load`` scheduler, a cold run of
    2026-12-07 left one worker idle for its last 18 minutes while the other worked
    through a queue of discounted models, each compiling its graph).
    """

    def rank(item):
        if item.nodeid in _OWN_CACHES:
            return 0
        return 2 if item.nodeid.startswith(_SHARED_CACHE) else 1

    items.sort(key=rank)  # stable: the collection order within each rank
