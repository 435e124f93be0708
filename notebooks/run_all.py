"""Re-execute the notebooks in place and store their outputs (figures included).

Usage, from the repository root::

    .venv/bin/python notebooks/run_all.py                 # every notebook, full draws
    .venv/bin/python notebooks/run_all.py nile.ipynb      # some of them

The number of draws is the notebooks' default (1000 per chain) unless the environment variable
``PYMC_DLM_NOTEBOOK_DRAWS`` is set. Each notebook runs in its own kernel with the notebook's
folder as working directory, and is written back only if every cell ran without error.
Two kinds of noise are removed from the stored outputs (:func:`strip_noise`): PyTensor's
"Rewrite failure" reports on stderr (a graph rewrite that raised and was skipped; the compiled
function is unaffected) and the placeholders that progress bars print when ``ipywidgets`` is
not installed.
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


# Start of each stderr chunk PyTensor prints when a graph rewrite raises (the rewrite is
# skipped; the result of the compiled function does not depend on it).
_REWRITE_NOISE = ("Rewrite failure due to:", "node: ", "TRACEBACK:")
_WIDGET_NOISE = 'install "ipywidgets" for Jupyter support'


def _is_noise(out):
    """Whether one cell output is rewrite-failure stderr or an empty progress-bar display."""
    if out.get("output_type") == "stream" and out.get("name") == "stderr":
        text = out.get("text", "")
        if text.startswith(_REWRITE_NOISE):
            return True
        return text.startswith("Traceback") and "pytensor/graph/rewriting" in text
    if out.get("output_type") == "display_data":
        plain = out.get("data", {}).get("text/plain", None)
        return plain is not None and (plain.strip() == "" or _WIDGET_NOISE in plain)
    return False


def strip_noise(nb):
    """Remove rewrite-failure stderr and progress-bar placeholders from ``nb``'s outputs."""
    removed = 0
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = [out for out in cell.get("outputs", []) if not _is_noise(out)]
        removed += len(cell.outputs) - len(kept)
        cell.outputs = kept
    return removed


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
        elapsed = time.perf_counter() - start
        removed = strip_noise(nb)
        nbformat.write(nb, path)
        note = f"{removed} noise outputs removed"
        print(f"{path.name}: executed in {elapsed:.0f} s, {note}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
