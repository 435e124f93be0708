"""Run a module of ``tests.support`` in a child process and read the JSON it prints last."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def child_results(module, numba_cache, timeout=900, **env):
    """``python -m module`` from the repository root, with its own numba cache and ``env``.

    Returns the JSON object of the child's last line of output; fails the test with the
    end of the child's error output if it exits with an error.
    """
    environment = dict(os.environ, NUMBA_CACHE_DIR=str(numba_cache), PYTHONPATH=str(ROOT))
    environment.update(env)
    child = subprocess.run(
        [sys.executable, "-m", module],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    return json.loads(child.stdout.strip().splitlines()[-1])
