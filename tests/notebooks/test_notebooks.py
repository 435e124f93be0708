"""Execute every notebook in notebooks/ top to bottom, with few draws.

Each notebook runs in a temporary copy of the notebooks folder (its data included), with
``PYMC_DLM_NOTEBOOK_DRAWS=50`` (and ``PYMC_DLM_FLEET_SERIES=24`` for the fleet notebook), in a
fresh kernel; a cell that raises fails the test. The
stored notebooks and their outputs are never written to.
"""

import os
import shutil
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
DRAWS = "50"
TIMEOUT = 900  # seconds per cell


def test_every_notebook_is_collected():
    names = {p.name for p in PATHS}
    expected = {
        "nile.ipynb",
        "trend_seasonality.ipynb",
        "dynamic_regression.ipynb",
        "missing_data.ipynb",
        "dynamic_factor.ipynb",
        "many_series.ipynb",
        "co2_workflow.ipynb",
        "fleet.ipynb",
        "discounting.ipynb",
        "counts.ipynb",
    }
    assert expected <= names, f"missing notebooks: {sorted(expected - names)}"


# Notebooks that cannot run here yet, with the reason. Remove an entry once its cause is
# fixed and the test passes, then refresh the stored outputs with notebooks/run_all.py.
KNOWN_BROKEN: dict[str, str] = {}


def _param(path):
    reason = KNOWN_BROKEN.get(path.stem)
    # run=False: a known failure costs minutes of compilation in CI for nothing.
    marks = [pytest.mark.xfail(reason=reason, run=False)] if reason else []
    return pytest.param(path, id=path.stem, marks=marks)


@pytest.mark.slow
@pytest.mark.parametrize("path", [_param(p) for p in PATHS])
def test_notebook_executes(path, tmp_path, monkeypatch):
    work = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    before = path.read_bytes()
    monkeypatch.setenv("PYMC_DLM_NOTEBOOK_DRAWS", DRAWS)
    # fleet.ipynb: 24 series here (its stored outputs show 120); the planted broken series
    # are among the first 12.
    monkeypatch.setenv("PYMC_DLM_FLEET_SERIES", "24")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(work / path.name, as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=TIMEOUT,
        kernel_name="python3",
        resources={"metadata": {"path": str(work)}},
    )
    client.execute()  # raises CellExecutionError, naming the cell, if a cell fails
    errors = [
        out
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]
    assert not errors
    assert os.environ["PYMC_DLM_NOTEBOOK_DRAWS"] == DRAWS
    assert path.read_bytes() == before, "the stored notebook was modified"
