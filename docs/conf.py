"""Sphinx configuration of the pymc_dlm documentation.

Build (from the repository root, with the ``docs`` extra installed)::

    .venv/bin/python -m sphinx -W -b html docs docs/_build/html

Nothing is executed: the notebooks of ``notebooks/`` are rendered with the outputs stored in
them (``nb_execution_mode = "off"``). They are copied into ``docs/_generated/notebooks/`` when
the build starts, together with a generated index page, so a notebook added later appears
without any change here. The benchmark table is taken from ``benchmarks/results/latest.md``
when that file exists.
"""

import json
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import pymc_dlm  # noqa: E402

project = "pymc_dlm"
author = "pymc_dlm developers"
copyright = "2026, pymc_dlm developers"
version = release = pymc_dlm.__version__

extensions = [
    "myst_nb",
    "numpydoc",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
]

exclude_patterns = ["_build", "**.ipynb_checkpoints", "_generated/benchmark_*.md"]
templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
root_doc = "index"

# --- API reference -----------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = True
autodoc_typehints = "none"
autodoc_member_order = "bysource"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# --- MyST and notebooks --------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 6
nb_execution_mode = "off"  # render the stored outputs; never run a notebook here
nb_merge_streams = True
# Stored notebooks may hold outputs whose MIME type has no HTML renderer (progress-bar
# widgets); they are skipped. That is expected for notebooks executed outside the docs.
# Headings are the notebook author's: a notebook whose first heading is not level 1 must not
# break the build (it gets an explicit title in the generated toctree).
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

# --- HTML ----------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"pymc_dlm {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
html_sidebars = {"**": ["sidebar-nav-bs"]}

# --- Generated pages ---------------------------------------------------------------------
GENERATED = DOCS / "_generated"
NOTEBOOK_SRC = ROOT / "notebooks"
NOTEBOOK_DST = GENERATED / "notebooks"
BENCH_LATEST = ROOT / "benchmarks" / "results" / "latest.md"


def _notebook_title(path):
    """The first Markdown heading of a notebook, or a title made from its file name."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, ValueError):
        cells = []
    for cell in cells:
        if cell.get("cell_type") != "markdown":
            continue
        source = cell.get("source", "")
        text = "".join(source) if isinstance(source, list) else source
        for line in text.splitlines():
            if line.startswith("#"):
                return line.lstrip("#").strip()
    return path.stem.replace("_", " ").strip().capitalize()


_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^()\s]+)\)")


def _unlink_unresolvable(text, src, keep_notebook_links=True):
    """Turn relative Markdown links the site cannot resolve into text naming the file.

    ``src`` is the file the text comes from, inside ``notebooks/``. A link that leaves
    ``notebooks/`` works on GitHub but has no target in the site; a link to a file that does
    not exist (yet) would break the build. Both become "text (`path` in the repository)"; an
    image that cannot be shown becomes its alternative text and path.
    Web links, anchors within the page and, when ``keep_notebook_links``, links to existing
    files under ``notebooks/`` (without their anchor) are kept.
    """

    def repl(match):
        image, label, target = match.groups()
        if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith(("#", "/")):
            return match.group(0)
        path = (src.parent / target.split("#", 1)[0]).resolve()
        inside = NOTEBOOK_SRC.resolve() in path.parents
        if inside and path.exists() and keep_notebook_links:
            # An anchor into another file may name a heading the site slugs differently.
            return f"{image}[{label}]({target.split('#', 1)[0]})"
        try:
            shown = path.relative_to(ROOT.resolve()).as_posix()
        except ValueError:
            shown = target
        what = "image " if image else ""
        return f"{label} ({what}`{shown}` in the repository)"

    return _LINK.sub(repl, text)


def _copy_notebook(src, dst):
    """Copy a notebook for the site, its stored outputs untouched.

    Python is declared as its language when its metadata does not say (without
    ``language_info`` myst-nb cannot pick a lexer and warns), and links the site cannot
    resolve become text. The copy keeps its source's modification time.
    """
    text = src.read_text(encoding="utf-8")
    try:
        nb = json.loads(text)
    except ValueError:
        nb = None
    if isinstance(nb, dict):
        meta = nb.setdefault("metadata", {})
        if not meta.get("language_info", {}).get("name"):
            meta.setdefault("language_info", {})["name"] = "python"
        for cell in nb.get("cells", []):
            if cell.get("cell_type") == "markdown":
                source = cell.get("source", "")
                source = "".join(source) if isinstance(source, list) else source
                cell["source"] = _unlink_unresolvable(source, src)
        text = json.dumps(nb, indent=1, ensure_ascii=False) + "\n"
    dst.write_text(text, encoding="utf-8")
    shutil.copystat(src, dst)


def _notebook_rank(rel):
    """Order notebooks as ``notebooks/README.md`` lists them; unlisted ones follow by name."""
    readme = NOTEBOOK_SRC / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.is_file() else ""
    listed = list(dict.fromkeys(re.findall(r"\(([^()\s]+\.ipynb)\)", text)))
    key = rel.as_posix()
    return (listed.index(key), "") if key in listed else (len(listed), key)


def _copy_notebooks():
    """Copy ``notebooks/`` (notebooks, the pages and files they link to) and write its index."""
    if NOTEBOOK_DST.exists():
        shutil.rmtree(NOTEBOOK_DST)
    NOTEBOOK_DST.mkdir(parents=True)
    notebooks = []
    if NOTEBOOK_SRC.is_dir():
        for src in sorted(NOTEBOOK_SRC.rglob("*")):
            rel = src.relative_to(NOTEBOOK_SRC)
            if not src.is_file() or any(p.startswith((".", "_")) for p in rel.parts):
                continue
            if src.stat().st_size > 20_000_000:  # never copy a large data file into the site
                continue
            dst = NOTEBOOK_DST / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.suffix == ".ipynb":
                _copy_notebook(src, dst)
                notebooks.append(rel)
            elif src.suffix == ".md":
                # Pages the notebooks link to (their README, data/README.md): built as
                # orphans, reachable through those links but not listed in the toctree.
                text = _unlink_unresolvable(src.read_text(encoding="utf-8"), src)
                if not text.startswith("---"):
                    text = "---\norphan: true\n---\n\n" + text
                dst.write_text(text, encoding="utf-8")
                shutil.copystat(src, dst)
            else:
                # Data files, images, scripts: links to them become downloads.
                shutil.copy2(src, dst)
    notebooks.sort(key=_notebook_rank)
    lines = [
        "# Notebooks",
        "",
        "Worked examples, rendered from the notebooks in the repository's `notebooks/`",
        "folder with the outputs stored in them (the documentation build does not run them).",
        "Each notebook runs top to bottom on its own; CI executes them with fewer draws.",
        "",
    ]
    if (NOTEBOOK_DST / "README.md").is_file():
        lines += [
            "The notebooks' [README](README.md) says which question each one answers, which data",
            "it uses and how to run them.",
            "",
        ]
    if notebooks:
        lines += ["```{toctree}", ":maxdepth: 1", ""]
        for rel in notebooks:
            title = _notebook_title(NOTEBOOK_SRC / rel)
            lines.append(f"{title} <{rel.with_suffix('').as_posix()}>")
        lines += ["```", ""]
    else:
        lines += ["No notebook was present when this documentation was built.", ""]
    (NOTEBOOK_DST / "index.md").write_text("\n".join(lines), encoding="utf-8")


def _readme_section(title):
    """The text of the README section ``## <title>`` (without its heading), or None."""
    readme = ROOT / "README.md"
    if not readme.is_file():
        return None
    lines = readme.read_text(encoding="utf-8").splitlines()
    try:
        start = lines.index(f"## {title}") + 1
    except ValueError:
        return None
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n".join(lines[start:end]).strip()


def _demote_headings(text, levels):
    """Add ``levels`` to every Markdown heading outside code fences."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
        if not fenced and re.match(r"#{1,6} ", line):
            line = "#" * levels + line
        out.append(line)
    return "\n".join(out)


def _benchmark_page():
    """Write the performance page's fragments: results and the suite's description.

    The results are ``benchmarks/results/latest.md`` when it exists, else the README's
    figures; the description is ``benchmarks/README.md``.
    """
    if BENCH_LATEST.is_file():
        table = BENCH_LATEST.read_text(encoding="utf-8")
        met, not_met = table.count("| met"), table.count("NOT met")
        text = (
            "The tables below are `benchmarks/results/latest.md`, as written by the last run of "
            "`python benchmarks/run.py` stored in the repository (the machine, the versions and "
            "every raw number are in `benchmarks/results/latest.json`). In that run "
            f"{met} target cell(s) are marked *met* and {not_met} *NOT met*.\n\n"
            + _demote_headings(table, 2)
            + "\n"
        )
    else:
        text = (
            "No benchmark run is stored in the repository yet (`benchmarks/results/latest.md` "
            "does not exist; `python benchmarks/run.py` writes it).\n"
        )
        section = _readme_section("Performance")
        if section:
            text += (
                "\nThe README's *Performance* section gives the figures measured so far. It "
                "follows here as it stands (its sub-headings are the README's):\n\n"
                + _unlink_unresolvable(section, ROOT / "README.md", False)
                + "\n"
            )
    (GENERATED / "benchmark_results.md").write_text(text, encoding="utf-8")
    suite = ROOT / "benchmarks" / "README.md"
    if suite.is_file():
        description = _demote_headings(suite.read_text(encoding="utf-8"), 2)
        description = _unlink_unresolvable(description, suite, False)
    else:
        description = "The benchmark suite's description (`benchmarks/README.md`) is missing."
    (GENERATED / "benchmark_suite.md").write_text(description + "\n", encoding="utf-8")


GENERATED.mkdir(exist_ok=True)
_copy_notebooks()
_benchmark_page()

# The API reference lists every public name of ``pymc_dlm.__all__``, grouped here; a name
# added to ``__all__`` later and not yet grouped appears under "Other" rather than missing.
API_GROUPS = {
    "Components": [
        "LocalLevel",
        "LocalLinearTrend",
        "Polynomial",
        "Seasonal",
        "Fourier",
        "Regression",
        "AR",
        "ARMA",
        "Cycle",
        "Component",
    ],
    "System matrices": ["StateSpace", "as_statespace"],
    "The distribution": ["DLM"],
    "Filtering and smoothing at fixed values": ["kalman_filter", "kalman_smoother"],
    "After sampling: states and forecasts": ["sample_states", "forecast"],
    "Plots": ["plot_states", "plot_components", "plot_forecast"],
    "Fleets of series": ["fit_many", "load_fit"],
}


def _api_page():
    """Write ``api/index.rst``'s autosummary tables from ``pymc_dlm.__all__``."""
    public = [name for name in pymc_dlm.__all__ if not name.startswith("_")]
    grouped = {g: [n for n in names if n in public] for g, names in API_GROUPS.items()}
    listed = {n for names in grouped.values() for n in names}
    other = [n for n in public if n not in listed]
    if other:
        grouped["Other"] = other
    lines = [
        "API reference",
        "=============",
        "",
        "Every public name of ``pymc_dlm`` (``import pymc_dlm as dlm``), generated from the",
        "docstrings.",
        "",
        ".. currentmodule:: pymc_dlm",
        "",
    ]
    for group, names in grouped.items():
        if not names:
            continue
        lines += [group, "-" * len(group), "", ".. autosummary::", "   :toctree: generated", ""]
        lines += [f"   {name}" for name in names]
        lines.append("")
    text = "\n".join(lines)
    target = DOCS / "api" / "index.rst"
    target.parent.mkdir(exist_ok=True)
    if not target.exists() or target.read_text(encoding="utf-8") != text:
        target.write_text(text, encoding="utf-8")


_api_page()
