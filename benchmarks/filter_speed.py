"""``kalman_smoother``/``kalman_filter`` against statsmodels, side by side in one process.

Data: monthly CO2 at Mauna Loa, ``statsmodels.datasets.co2`` (weekly, March 1958 to December
2001) resampled to monthly means (``resample("MS").mean()``): T = 526 months, of which 5 have
no weekly value. They are left as NaN, missing values for both sides (not interpolated).

Model: local linear trend + ``Seasonal(12)`` (13 states), the exact diffuse start on every
state (the components' default ``C0="diffuse"``; statsmodels ``use_exact_diffuse=True``). The
four standard deviations are statsmodels' maximum-likelihood estimates,
``UnobservedComponents(y, level="local linear trend", seasonal=12, stochastic_seasonal=True,
use_exact_diffuse=True).fit()``, fitted once at the start of the run (not timed). Both sides
then compute the same quantities at those values; the log-likelihoods and smoothed levels are
printed as a check.

Timings (wall clock, ``time.perf_counter``), imports and data loading done before any clock:

* first call: the first ``dlm.kalman_smoother`` (then ``kalman_filter``) call in this process,
  which compiles the structure's function (on-disk caches as earlier runs left them, or empty
  with ``--cold``); for statsmodels the first ``smooth``/``filter`` of a freshly built model
  (it has no compilation step; its Cython is imported by the fit).
* warm: the median (and minimum) of ``--repeat`` calls each, ours and statsmodels' alternating
  so that both see the same load. ``model`` is built once, as statsmodels' ``mod`` is;
  ``build + call`` also rebuilds the model each time (a new parameter value needs a new
  model).

``--backends`` times our side's routes: ``default``, the package's (the numba kernels of
``pymc_dlm.kalman.fused.moments``), or the scans (``fixed_filter.KERNELS = False``) with a
pytensor backend (``pymc_dlm.kalman.fixed_filter.MODE``): ``c`` (C virtual machine),
``py`` (Python), ``numba``; ``--cold`` starts from empty pytensor caches (C modules and numba,
a temporary ``base_compiledir``); ``--new-structure K`` adds the first call on another model,
LocalLinearTrend + ``Seasonal(K)``: choose a K not run before on the machine to see what a new
structure costs.

Usage: ``python benchmarks/filter_speed.py [--repeat 25] [--backends default c py numba]
[--cold] [--new-structure K] [--out DIR]``.
Writes ``DIR/<date>_filter_speed_<commit>.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Our side's routes: ``default`` the package's (the kernels); the others run the scans with
#: (linker, rewrites) as ``pymc_dlm.kalman.fixed_filter.MODE``.
BACKENDS = {
    "default": None,
    "c": ("cvm", "fast_run"),
    "py": ("py", "fast_compile"),
    "numba": ("numba", "fast_run"),
}


def parse(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=25, help="warm calls per cell (median)")
    p.add_argument(
        "--backends",
        nargs="+",
        default=["default"],
        choices=sorted(BACKENDS),
        help="pytensor backends of our side (default: the package's choice)",
    )
    p.add_argument("--cold", action="store_true", help="empty pytensor caches (C and numba)")
    p.add_argument(
        "--new-structure",
        type=int,
        metavar="K",
        help="also time the first smoother call on LocalLinearTrend + Seasonal(K)",
    )
    p.add_argument("--out", default=str(HERE / "results"))
    return p.parse_args(argv)


def co2_monthly():
    """Monthly means of the weekly Mauna Loa CO2 series, NaN where a month has no value."""
    from statsmodels.datasets import co2

    return co2.load_pandas().data["co2"].resample("MS").mean()


def fit_statsmodels(y):
    """Statsmodels' model (exact diffuse) and its maximum-likelihood variances."""
    import statsmodels.api as sm

    def build():
        return sm.tsa.UnobservedComponents(
            y,
            level="local linear trend",
            seasonal=12,
            stochastic_seasonal=True,
            use_exact_diffuse=True,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # statsmodels re-enables its own warnings on import
        fit = build().fit(disp=False, maxiter=500)
    return build, fit.params, bool(fit.mle_retvals["converged"])


def clock(call):
    """Seconds taken by one call, and its result."""
    t0 = time.perf_counter()
    out = call()
    return time.perf_counter() - t0, out


def measure(pairs, repeat):
    """First-call and alternating warm timings of {label: (ours, statsmodels)} callables."""
    rows = {}
    for label, (ours, theirs) in pairs.items():
        first_ours, res_ours = clock(ours)
        first_sm, res_sm = clock(theirs)
        warm_ours, warm_sm = [], []
        for _ in range(repeat):
            warm_ours.append(clock(ours)[0])
            warm_sm.append(clock(theirs)[0])
        rows[label] = {
            "first": (first_ours, first_sm),
            "median": (statistics.median(warm_ours), statistics.median(warm_sm)),
            "min": (min(warm_ours), min(warm_sm)),
            "results": (res_ours, res_sm),
        }
    return rows


def calls(dlm, y, sigmas, sm_mod, params):
    """The timed callables: ours and statsmodels' for the smoother and the filter."""
    level, slope, season, obs = sigmas

    def model():
        return dlm.LocalLinearTrend(level, slope) + dlm.Seasonal(12, season)

    fixed = model()
    return {
        "smoother": (
            lambda: dlm.kalman_smoother(fixed, y, sigma_obs=obs),
            lambda: sm_mod.smooth(params),
        ),
        "filter": (
            lambda: dlm.kalman_filter(fixed, y, sigma_obs=obs),
            lambda: sm_mod.filter(params),
        ),
        "build + smoother": (
            lambda: dlm.kalman_smoother(model(), y, sigma_obs=obs),
            lambda: sm_mod.smooth(params),
        ),
    }


def agreement(rows):
    """Log-likelihoods and the largest smoothed-level difference (ours vs statsmodels)."""
    import numpy as np

    ds, res = rows["smoother"]["results"]
    level = ds["smoothed_mean"].values[:, 0]
    return {
        "loglik_ours": float(ds["loglik"]),
        "loglik_statsmodels": float(res.llf),
        "max_abs_level_diff": float(np.max(np.abs(level - res.smoothed_state[0]))),
    }


def fmt(s):
    """Seconds as a readable string."""
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def table(backends, repeat):
    """Markdown table of every backend's rows."""
    lines = [
        f"| call | backend | ours first | statsmodels first | ours warm (median of {repeat}) "
        "| statsmodels warm | ours/statsmodels | ours min | statsmodels min |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for backend, rows in backends.items():
        for label, r in rows.items():
            (fo, fs), (mo, ms), (lo, ls) = r["first"], r["median"], r["min"]
            lines.append(
                f"| {label} | {backend} | {fmt(fo)} | {fmt(fs)} | {fmt(mo)} | {fmt(ms)} "
                f"| {mo / ms:.2f} | {fmt(lo)} | {fmt(ls)} |"
            )
    return "\n".join(lines)


def commit():
    """Short hash of HEAD and whether the work tree differs from it."""

    def git(*a):
        return subprocess.run(
            ["git", *a], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") or "unknown", bool(git("status", "--porcelain"))


def main(argv=None):
    """Run the comparison, print the table and write the result file."""
    args = parse(argv)
    if args.cold:
        os.environ["PYTENSOR_FLAGS"] = f"base_compiledir={tempfile.mkdtemp(prefix='pytensor_')}"
    sys.path.insert(0, str(HERE))
    import harness

    harness.quiet()
    import numpy as np

    import pymc_dlm as dlm
    from pymc_dlm.kalman import fixed_filter

    started = datetime.datetime.now().isoformat(timespec="seconds")
    machine = harness.cpu_info()
    series = co2_monthly()
    y = series.to_numpy()
    build_sm, params, converged = fit_statsmodels(series)
    sigmas = np.sqrt(params[["sigma2.level", "sigma2.trend", "sigma2.seasonal"]]).tolist()
    sigmas.append(float(np.sqrt(params["sigma2.irregular"])))
    from pytensor.compile.mode import Mode

    default = fixed_filter.MODE
    backends, extra = {}, []
    for name in args.backends:
        spec = BACKENDS[name] or fixed_filter.BACKEND
        fixed_filter.MODE = default if name == "default" else Mode(*spec)
        fixed_filter.KERNELS = name == "default"
        label = "default (kernels)" if name == "default" else f"scans ({spec[0]}, {spec[1]})"
        backends[label] = measure(calls(dlm, y, sigmas, build_sm(), params), args.repeat)
        if args.new_structure:
            k = args.new_structure
            other = dlm.LocalLinearTrend(*sigmas[:2]) + dlm.Seasonal(k, sigmas[2])
            first = clock(lambda: dlm.kalman_smoother(other, y, sigma_obs=sigmas[3]))[0]
            extra.append(f"| {label} | LocalLinearTrend + Seasonal({k}) | {fmt(first)} |")
    check = agreement(next(iter(backends.values())))
    head, dirty = commit()
    cmd = "python benchmarks/filter_speed.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    text = "\n".join(
        [
            "# kalman_smoother / kalman_filter vs statsmodels: monthly CO2\n",
            f"{started}. Command: `{cmd.strip()}`. Code: {head}"
            f"{' plus uncommitted changes' if dirty else ''}.\n",
            f"Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
            f"({machine['usable_cores']} usable), load average at start "
            f"{machine['load_avg_1min']}, {machine['platform']}.\n",
            "Versions: "
            + ", ".join(f"{k} {v}" for k, v in harness.package_versions().items())
            + f". pytensor compiledir: {harness.pytensor_config().get('compiledir')}"
            + (" (new, empty: --cold)" if args.cold else " (as earlier runs left it)")
            + f". Backend of the scans: {', '.join(fixed_filter.BACKEND)} unless the row says"
            + ".\n",
            f"Data: T = {len(y)} months, {int(np.isnan(y).sum())} missing (NaN). Model: "
            "LocalLinearTrend + Seasonal(12), exact diffuse start. Standard deviations "
            f"(statsmodels MLE): level {sigmas[0]:.6g}, slope {sigmas[1]:.6g}, seasonal "
            f"{sigmas[2]:.6g}, observation {sigmas[3]:.6g} (optimizer converged: {converged}).\n",
            table(backends, args.repeat),
            "",
            *(
                [
                    "New structure, first smoother call (after the rows above):\n",
                    "| backend | model | first call |",
                    "|---|---|---|",
                    *extra,
                    "",
                ]
                if extra
                else []
            ),
            f"Check: loglik ours {check['loglik_ours']:.10f}, statsmodels "
            f"{check['loglik_statsmodels']:.10f}; largest smoothed-level difference "
            f"{check['max_abs_level_diff']:.3g} ppm.\n",
        ]
    )
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{started[:10]}_filter_speed_{head}.md"
    path.write_text(text + "\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
