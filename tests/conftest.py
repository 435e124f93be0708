"""Shared fixtures: the Nile series (R's ``datasets::Nile``, see /work/shared/data/README.md)."""

import os
from pathlib import Path

import numpy as np
import pytest

_SHARED = Path("/work/shared/data/nile.csv")
_SHIPPED = Path(__file__).resolve().parents[1] / "pymc_dlm" / "data" / "nile.csv"


@pytest.fixture(scope="session")
def nile():
    """(years, flow) of the Nile, 1871-1970; ``PYMC_DLM_NILE`` overrides the file."""
    path = Path(os.environ.get("PYMC_DLM_NILE", _SHARED if _SHARED.exists() else _SHIPPED))
    table = np.genfromtxt(path, delimiter=",", names=True)
    return table["year"].astype(int), table["flow"].astype(float)
