"""CI's run of the benchmark suite: the tiny smoke version (``benchmarks/run.py --smoke``).

The suite's figures are timings and are never asserted. What is checked: the one command runs
end to end (model 1, our side and the numba floor, 2 chains of 20 + 20 NUTS iterations, state
draws), every one of our cells is measured (``--strict`` exits 1 otherwise), and the tables
and the JSON are written with a value in each of those cells.
"""

import json
import subprocess
import sys
from pathlib import Path

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_benchmark_smoke_run(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(RUN), "--smoke", "--strict", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads((tmp_path / "smoke.json").read_text())
    assert result["problems"] == []
    model = result["summary"]["1"]
    cells = [
        model["logp_grad_s"]["ours"],
        model["logp_grad_s"]["ours_default_prior"],
        model["logp_grad_s"]["numba"],
        model["build_compile_s"]["ours"],
        model["sample"]["pymc"]["ours_wall_s"],
        model["states_s"]["ours"],
    ]
    assert all(isinstance(x, float) and x > 0 for x in cells), cells
    assert model["sample"]["pymc"]["ours_divergences"] is not None
    table = (tmp_path / "smoke.md").read_text()
    assert "Nile local level" in table and "NUTS end to end" in table
