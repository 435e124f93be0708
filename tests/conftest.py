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
