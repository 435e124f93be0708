"""Re-execute the notebooks in place and store their outputs (figures included).

Usage, from the repository root::

    .venv/bin/python notebooks/run_all.py                 # every notebook, full draws
    .venv/bin/python notebooks/run_all.py nile.ipynb      # some of them

The number of draws is the notebooks' default (1000 per chain) unless the environment variable
``PYMC_DLM_NOTEBOOK_DRAWS`` is set. Each notebook runs in its own kernel with the notebook's
folder as working directory, and is written back only if every cell ran without error.
"""

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent


def notebooks():
    """The notebooks of this folder, sorted by name."""
    return sorted(HERE.glob("*.ipynb"))


def execute(path, timeout=1800, kernel_name="python3"):
    """Execute ``path`` top to bottom in its folder and return the executed notebook."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name=kernel_name,
        resources={"metadata": {"path": str(Path(path).parent)}},
    )
    client.execute()
    return nb


def main(argv=None):
    """Execute the notebooks named in ``argv`` (default: all) and write them back."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="notebook file names (default: all)")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per cell")
    args = parser.parse_args(argv)
    paths = [HERE / n for n in args.names] if args.names else notebooks()
    for path in paths:
        start = time.perf_counter()
        nb = execute(path, timeout=args.timeout)
        nbformat.write(nb, path)
        print(f"{path.name}: executed in {time.perf_counter() - start:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
