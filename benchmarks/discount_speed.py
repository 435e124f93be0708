"""Log-density and gradient of a discounted DLM with a learned variance, against fixed W.

Two pairs (a proper and a diffuse initial prior), all four models timed side by side in one
process.

Data: benchmark model 2's series (``models.simulate(2)``: local linear trend + a period-12
seasonal, monthly-like, T = 1000, fixed seed). Structure on every side: ``LocalLinearTrend``
+ ``Seasonal(12)`` (13 states), one series.

* ``discounted``: ``LocalLinearTrend(discount=d_trend)`` + ``Seasonal(12, discount=d_seas)``
  and ``obs_var=LearnedVariance(n0, S0, discount=d_var)``; five free variables, the
  discounts ``pm.Beta(40, 2)`` (prior mean 0.95), ``n0`` and ``S0`` ``pm.Gamma(2, 0.5)``
  (shape, rate; prior mean 4, the simulated observation variance). Its log-likelihood and
  gradient run in the numba kernel of ``pymc_dlm.kalman.fused.discounted`` (a Student-t
  product; hand-written adjoint); with the diffuse prior the scan of
  ``pymc_dlm.kalman.discount`` runs the exact diffuse period (13 steps here) in front of it.
* ``fixed W``: benchmark model 2 exactly (``models.build_ours(2, ...)``): four standard
  deviations with HalfNormal priors (``models.PRIORS[2]``), ``sigma_obs`` free. Its
  log-likelihood and gradient run in the fused numba kernels.

Initial prior, both members of a pair alike: ``proper``, m0 = 0 and C0 = 1e7 I (the benchmarks'
convention, ``models.C0``; under the learned variance C0 is the value at V = S0), or
``diffuse``, the components' default ``C0="diffuse"`` (exact diffuse start).

Measured, as PyMC's NUTS calls it (``harness.nuts_function``: the function of
``model.logp_dlogp_function(ravel_inputs=True)`` at the model's initial point):

* per call: the four functions are compiled in this process, with the four log-densities
  alone (``model.compile_logp()``, to see what the gradient costs), and warmed up (at least 3
  calls and 0.5 s each; not timed); then ``--repeat`` rounds, each timing a block of calls of
  every function in turn (the order rotated every round), a block lasting about
  ``--block-time`` seconds. Reported: the median and minimum over blocks of seconds per
  call, the ratio discounted / fixed W of the medians, and the median of the per-round
  ratios (pairs timed next to each other, so that load from other jobs cancels better).
* compile: in fresh worker processes (this script with ``--worker``), one per variant and
  phase, run ``--compile-runs`` times (the first may fill on-disk caches; the last runs with
  them warm). Phase ``logp``: ``model.compile_logp()`` and its first call. Phase ``grad``: the
  joint value-and-gradient function above (graph, symbolic gradient, rewrites, linking) and its
  first call. With pytensor's numba backend the first call of a scan graph includes its
  just-in-time compilation, not cached on disk, so it is reported apart from the construction.

Usage: ``python benchmarks/discount_speed.py [--repeat 15] [--block-time 0.6]
[--compile-runs 2] [--no-compile] [--smoke] [--out DIR]``.
Writes ``DIR/<date>_discount_speed_<commit>.md`` and ``.json`` (default
``benchmarks/results/``); ``--smoke`` (T = 120, short timings, one compile run) writes
``<date>_discount_speed_smoke_<commit>.*``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # the checkout's pymc_dlm

import harness  # noqa: E402
import models  # noqa: E402

#: Variant name -> (kind, initial prior).
VARIANTS = {
    "discounted_proper": ("discounted", "proper"),
    "fixed_proper": ("fixed", "proper"),
    "discounted_diffuse": ("discounted", "diffuse"),
    "fixed_diffuse": ("fixed", "diffuse"),
}
#: Initial prior -> (discounted variant, fixed-W variant): the ratios reported.
PAIRS = {
    "proper": ("discounted_proper", "fixed_proper"),
    "diffuse": ("discounted_diffuse", "fixed_diffuse"),
}
#: Priors of the discounted model's free variables: Beta(alpha, beta), Gamma(alpha, beta).
DISCOUNT_PRIORS = {
    "d_trend": (40.0, 2.0),
    "d_seas": (40.0, 2.0),
    "d_var": (40.0, 2.0),
    "n0": (2.0, 0.5),
    "S0": (2.0, 0.5),
}
TARGET = 1.5  # the target for discounted / fixed W, per call
SMOKE_T = 120


def parse(argv=None):
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--repeat", type=int, default=15, help="timing rounds (median over them)")
    p.add_argument("--block-time", type=float, default=0.6, help="seconds per timed block")
    p.add_argument("--compile-runs", type=int, default=2, help="fresh processes per cell")
    p.add_argument("--no-compile", action="store_true", help="per-call timings only")
    p.add_argument("--smoke", action="store_true", help=f"T = {SMOKE_T}, short timings")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per worker process")
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--worker", choices=sorted(VARIANTS), help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=("logp", "grad"), default="grad", help=argparse.SUPPRESS)
    p.add_argument("--T", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def series(T=None):
    """Benchmark model 2's simulated series, its first ``T`` values."""
    y = models.simulate(2)["y"]
    return y if T is None else y[:T]


def build(variant, y):
    """The PyMC model of one variant (imports pymc and pymc_dlm)."""
    kind, prior = VARIANTS[variant]
    if kind == "fixed":
        return models.build_ours(2, {"y": y}, "proper" if prior == "proper" else "default")
    import pymc as pm

    import pymc_dlm as dlm

    pr = DISCOUNT_PRIORS
    init = {} if prior == "diffuse" else {"C0": models.C0}
    with pm.Model() as model:
        d_trend = pm.Beta("d_trend", *pr["d_trend"])
        d_seas = pm.Beta("d_seas", *pr["d_seas"])
        d_var = pm.Beta("d_var", *pr["d_var"])
        n0 = pm.Gamma("n0", *pr["n0"])
        S0 = pm.Gamma("S0", *pr["S0"])
        trend = dlm.LocalLinearTrend(discount=d_trend, m0=[0.0, 0.0], **init)
        season = dlm.Seasonal(12, discount=d_seas, m0=[0.0] * 11, **init)
        obs_var = dlm.LearnedVariance(n0, S0, discount=d_var)
        dlm.DLM("y", trend + season, obs_var=obs_var, observed=y)
    return model


# ------------------------------------------------------------------------------ compile worker
def compile_cell(variant, phase, T):
    """Build, compile and call once in this (fresh) process; seconds of each step."""
    import numpy as np
    import pymc  # noqa: F401  imports are not part of the measurement

    import pymc_dlm  # noqa: F401

    y = series(T)
    t0 = time.perf_counter()
    model = build(variant, y)
    t1 = time.perf_counter()
    if phase == "logp":
        fn = model.compile_logp()
        point = model.initial_point()
        t2 = time.perf_counter()
        value = fn(point)
        t3 = time.perf_counter()
        grad_finite = None
    else:
        fn, q = harness.nuts_function(model)
        t2 = time.perf_counter()
        value, grad = fn(q)
        t3 = time.perf_counter()
        grad_finite = bool(np.all(np.isfinite(grad)))
    return {
        "variant": variant,
        "phase": phase,
        "build_s": t1 - t0,
        "compile_s": t2 - t1,
        "first_call_s": t3 - t2,
        "total_s": t3 - t0,
        "logp_at_initial_point": float(value),
        "grad_finite": grad_finite,
    }


def run_worker(variant, phase, T, timeout):
    """One compile cell in a fresh process; its JSON, or an error entry."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", variant, "--phase", phase]
    if T is not None:
        cmd += ["--T", str(T)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"variant": variant, "phase": phase, "error": f"timeout after {timeout} s"}
    for line in proc.stdout.splitlines():
        if line.startswith(harness.JSON_PREFIX):
            return json.loads(line[len(harness.JSON_PREFIX) :])
    tail = (proc.stderr or proc.stdout)[-500:]
    return {"variant": variant, "phase": phase, "error": f"exit {proc.returncode}: {tail}"}


# -------------------------------------------------------------------------------- per call
def warm_up(call, q, min_s=0.5, min_calls=3):
    """Call until ``min_calls`` calls and ``min_s`` seconds; the mean seconds per call."""
    n, t0 = 0, time.perf_counter()
    while n < min_calls or time.perf_counter() - t0 < min_s:
        call(q)
        n += 1
    return (time.perf_counter() - t0) / n


def interleaved(calls, repeat, block_time):
    """Seconds per call of every function, timed in rotating order, one block per round.

    ``calls`` maps a name to ``(call, q)``. Returns ``{name: [seconds per call, ...]}`` (one
    entry per round), the calls per block, and the order of every round.
    """
    estimate = {name: warm_up(call, q) for name, (call, q) in calls.items()}
    number = {name: max(1, round(block_time / est)) for name, est in estimate.items()}
    names = list(calls)
    per = {name: [] for name in names}
    orders = []
    for r in range(repeat):
        order = names[r % len(names) :] + names[: r % len(names)]
        orders.append(order)
        for name in order:
            call, q = calls[name]
            k = number[name]
            t0 = time.perf_counter()
            for _ in range(k):
                call(q)
            per[name].append((time.perf_counter() - t0) / k)
    return per, number, orders


def per_call(y, repeat, block_time):
    """Compile the eight functions here (four models, with and without gradient), time them."""
    import numpy as np

    calls, info = {}, {}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        model = build(variant, y)
        call, q = harness.nuts_function(model)
        value, grad = call(q)
        logp_fn, point = model.compile_logp(), model.initial_point()
        logp_fn(point)
        info[variant] = {
            "n_params": int(q.size),
            "free_variables": [v.name for v in model.free_RVs],
            "logp_at_initial_point": float(value),
            "grad_at_initial_point": np.asarray(grad).tolist(),
            "setup_in_this_process_s": time.perf_counter() - t0,
        }
        calls[variant] = (call, q)
        calls[variant, "logp"] = (lambda p, fn=logp_fn: fn(p), point)
    per, number, orders = interleaved(calls, repeat, block_time)
    for variant in VARIANTS:
        for key, label in ((variant, ""), ((variant, "logp"), "logp_only_")):
            info[variant].update(
                {
                    f"{label}median_s": statistics.median(per[key]),
                    f"{label}min_s": min(per[key]),
                    f"{label}per_round_s": per[key],
                    f"{label}calls_per_block": number[key],
                }
            )
    ratios = {}
    for prior, (disc, fixed) in PAIRS.items():
        for label, (kd, kf) in (
            ("", (disc, fixed)),
            ("logp_only_", ((disc, "logp"), (fixed, "logp"))),
        ):
            paired = [d / f for d, f in zip(per[kd], per[kf])]
            ratios[f"{label}{prior}"] = {
                "ratio_of_medians": info[disc][f"{label}median_s"]
                / info[fixed][f"{label}median_s"],
                "median_of_round_ratios": statistics.median(paired),
                "ratio_of_minima": info[disc][f"{label}min_s"] / info[fixed][f"{label}min_s"],
                "round_ratios": paired,
            }
    return info, ratios, [[str(k) for k in order] for order in orders]


# --------------------------------------------------------------------------------- report
def commit():
    """Short hash of HEAD and the paths where the work tree differs from it."""

    def git(*a):
        return subprocess.run(
            ["git", *a], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]
    return head, changed


def fmt(s):
    """Seconds as a readable string."""
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.0f} µs"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def percall_table(info, ratios, repeat):
    """Markdown: per-call times and the ratios."""
    lines = [
        f"| variant | free variables | logp + gradient per call (median of {repeat} blocks) "
        "| min | logp alone per call (median) | min | logp at initial point |",
        "|---|---|---|---|---|---|---|",
    ]
    for variant, r in info.items():
        lines.append(
            f"| {variant} | {r['n_params']} | {fmt(r['median_s'])} | {fmt(r['min_s'])} "
            f"| {fmt(r['logp_only_median_s'])} | {fmt(r['logp_only_min_s'])} "
            f"| {r['logp_at_initial_point']:.4f} |"
        )
    lines += [
        "",
        "| function | initial prior | discounted / fixed W (ratio of medians) | median of the "
        f"per-round ratios | ratio of minima | target ≤ {TARGET} |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in ratios.items():
        logp_only = key.startswith("logp_only_")
        met = "met" if r["ratio_of_medians"] <= TARGET else "NOT met"
        lines.append(
            f"| {'logp alone' if logp_only else 'logp + gradient'} "
            f"| {key.removeprefix('logp_only_')} | {r['ratio_of_medians']:.1f} "
            f"| {r['median_of_round_ratios']:.1f} | {r['ratio_of_minima']:.1f} "
            f"| {'(not the target)' if logp_only else met} |"
        )
    return "\n".join(lines)


def compile_table(cells):
    """Markdown: compile cells, first and last run of each."""
    lines = [
        "| variant | phase | run | build | construct function | first call | total "
        "| first run's total |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (variant, phase), runs in cells.items():
        last, first = runs[-1], runs[0]
        if "error" in last:
            lines.append(f"| {variant} | {phase} | n/a | {last['error'][:80]} | | | | |")
            continue
        first_total = fmt(first.get("total_s")) if "error" not in first else "n/a"
        lines.append(
            f"| {variant} | {'logp only' if phase == 'logp' else 'logp + gradient'} "
            f"| {len(runs)} of {len(runs)} | {fmt(last['build_s'])} | {fmt(last['compile_s'])} "
            f"| {fmt(last['first_call_s'])} | {fmt(last['total_s'])} | {first_total} |"
        )
    return "\n".join(lines)


def main(argv=None):
    """Run the comparison, print the tables and write the result files."""
    args = parse(argv)
    harness.quiet()
    if args.worker:
        harness.emit(harness.cell(compile_cell, args.worker, args.phase, args.T))
        return
    T = SMOKE_T if args.smoke else None
    repeat = 3 if args.smoke else args.repeat
    block_time = 0.1 if args.smoke else args.block_time
    compile_runs = 1 if args.smoke else args.compile_runs
    started = datetime.datetime.now().isoformat(timespec="seconds")
    machine = harness.cpu_info()
    head, changed = commit()
    cells = {}
    if not args.no_compile:
        for variant in VARIANTS:
            for phase in ("logp", "grad"):
                cells[variant, phase] = [
                    run_worker(variant, phase, T, args.timeout) for _ in range(compile_runs)
                ]
    import pymc  # noqa: F401

    import pymc_dlm  # noqa: F401

    y = series(T)
    load_before = harness.cpu_info()["load_avg_1min"]
    info, ratios, orders = per_call(y, repeat, block_time)
    load_after = harness.cpu_info()["load_avg_1min"]
    cmd = "python benchmarks/discount_speed.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    result = {
        "started": started,
        "command": cmd.strip(),
        "commit": head,
        "work_tree_changes": changed,
        "machine": machine,
        "load_avg_1min_per_call_start_end": [load_before, load_after],
        "versions": harness.package_versions(),
        "pytensor": harness.pytensor_config(),
        "T": len(y),
        "repeat": repeat,
        "block_time_s": block_time,
        "discount_priors": DISCOUNT_PRIORS,
        "fixed_priors": models.PRIORS[2],
        "proper_C0": models.C0,
        "per_call": info,
        "ratios": ratios,
        "round_orders": orders,
        "compile": [run for runs in cells.values() for run in runs],
    }
    pp = result["pytensor"]
    text = "\n".join(
        [
            "# Discounted DLM with a learned variance vs fixed W: logp + gradient\n",
            f"{started}. Command: `{result['command']}`. Code: {head}"
            + (f" (work tree differs from it in: {', '.join(changed)})" if changed else "")
            + ".\n",
            f"Machine: {machine['cpu_model']}, {machine['logical_cores']} logical cores "
            f"({machine['usable_cores']} usable), load average {machine['load_avg_1min']} at "
            f"the start, {load_before} / {load_after} at the start / end of the per-call "
            f"timing; {machine['platform']}.\n",
            "Versions: "
            + ", ".join(f"{k} {v}" for k, v in result["versions"].items())
            + f". pytensor mode {pp.get('mode')}, linker {pp.get('linker')}.\n",
            f"Data: benchmark model 2's series, T = {len(y)}. Structure: LocalLinearTrend + "
            "Seasonal(12), 13 states. Discounted: discounts Beta(40, 2), n0 and S0 Gamma(2, "
            "0.5), LearnedVariance(n0, S0, discount=d_var). Fixed W: benchmark model 2 "
            "(HalfNormal standard deviations). Proper: m0 = 0, C0 = 1e7 I; diffuse: "
            'C0="diffuse". The function is `model.logp_dlogp_function(ravel_inputs=True)` at '
            "the initial point, called as NUTS calls it.\n",
            "## Per call (interleaved, one process)\n",
            percall_table(info, ratios, repeat),
            "",
            *(
                [
                    "## Compile (fresh process per cell; the last of the runs, caches warm)\n",
                    compile_table(cells),
                    "",
                    "`construct function`: `model.compile_logp()` or "
                    "`model.logp_dlogp_function(...)` (graph, symbolic gradient, rewrites, "
                    "linking); `first call`: with the numba backend this includes the "
                    "just-in-time compilation of the graph (the fused kernels of fixed W are "
                    "cached on disk by numba).\n",
                ]
                if cells
                else []
            ),
        ]
    )
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started[:10]}_discount_speed{'_smoke' if args.smoke else ''}_{head}"
    (out / f"{stem}.md").write_text(text + "\n")
    (out / f"{stem}.json").write_text(
        json.dumps(result, indent=1, default=harness._json_default) + "\n"
    )
    print(f"written to {out / stem}.md and .json")


if __name__ == "__main__":
    main()
