"""Benchmark runner: pymc_dlm against pymc-extras (peer) and a hand-written numba floor.

    python benchmarks/run.py                       # everything (long: see README.md)
    python benchmarks/run.py --models 1 2 --no-sample
    python benchmarks/run.py --smoke               # tiny version for CI (no peer unless --peer)

Every measurement runs in a fresh worker process (``bench_ours.py`` in this environment,
``peer_bench.py`` in the peer's own virtual environment, created on first use with
``pymc-extras==0.15.1``), so one failing cell is reported as n/a and the run goes on. Results:
``<out>/latest.md`` and ``<out>/latest.json`` (``smoke.*`` for ``--smoke``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import harness  # noqa: E402
import models  # noqa: E402

PEER_REQUIREMENTS = ["pymc-extras==0.15.1", "nutpie"]
TARGETS = {
    "logp_vs_peer": 0.1,   # ours/peer per-call logp+grad <= 0.1 on every model the peer expresses
    "logp_vs_numba_m2": 3.0,  # ours/numba <= 3 on model 2
    "nuts_vs_peer_m1": 0.2,   # end-to-end NUTS on model 1 >= 5x faster
    "states_vs_peer": 0.1,    # sample_states >= 10x faster
    "compile_vs_peer": 1.0,   # build + compile no slower
}


# ------------------------------------------------------------------------------------ arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=None,
                   help="subset of 1..5, e.g. '--models 1 2' or '--models 1,2' (default all; 1 with --smoke)")
    p.add_argument("--repeat", type=int, default=None,
                   help="timing batches per per-call measurement, median reported (default 7; 3 with --smoke)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds spent timing calls per cell (default 3; 0.3 with --smoke)")
    p.add_argument("--compile-runs", type=int, default=None,
                   help="fresh processes measuring build+compile; the last (warm cache) is reported "
                        "(default 2; 1 with --smoke)")
    p.add_argument("--smoke", action="store_true", help="tiny fast version for CI")
    p.add_argument("--no-peer", action="store_true", help="skip pymc-extras")
    p.add_argument("--peer", action="store_true", help="run the peer even with --smoke")
    p.add_argument("--no-sample", action="store_true", help="skip pm.sample and state sampling")
    p.add_argument("--no-numba", action="store_true", help="skip the numba floor")
    p.add_argument("--samplers", default=None, help="comma list of pymc,nutpie (default both; pymc with --smoke)")
    p.add_argument("--draws", type=int, default=None, help="default 1000 (20 with --smoke)")
    p.add_argument("--tune", type=int, default=None, help="default 1000 (20 with --smoke)")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results"), help="output directory")
    p.add_argument("--peer-venv", default=str(HERE / ".peer-venv"),
                   help="virtual environment for pymc-extras (created when missing)")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per worker process")
    p.add_argument("--strict", action="store_true",
                   help="exit 1 when any of our cells is n/a or failed (for CI)")
    a = p.parse_args(argv)
    if a.models is None:
        a.models = [1] if a.smoke else list(models.MODELS)
    else:
        a.models = sorted({int(x) for tok in a.models for x in str(tok).split(",") if x.strip()})
        bad = [m for m in a.models if m not in models.MODELS]
        if bad:
            p.error(f"unknown model(s) {bad}; choose from {list(models.MODELS)}")
    smoke = a.smoke
    a.repeat = a.repeat or (3 if smoke else 7)
    a.min_time = a.min_time if a.min_time is not None else (0.3 if smoke else 3.0)
    a.compile_runs = a.compile_runs or (1 if smoke else 2)
    a.samplers = a.samplers or ("pymc" if smoke else "pymc,nutpie")
    a.draws = a.draws or (20 if smoke else 1000)
    a.tune = a.tune or (20 if smoke else 1000)
    a.run_peer = not a.no_peer and (a.peer or not smoke)
    return a


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------- workers
def run_worker(python, script, model, data_path, phase, args, extra=()):
    """Run one worker process; return its JSON dict or ``{"error": ...}``."""
    cmd = [str(python), str(HERE / script), "--model", str(model), "--data", str(data_path),
           "--phase", phase, "--min-time", str(args.min_time), "--repeat", str(args.repeat),
           "--samplers", args.samplers, "--draws", str(args.draws), "--tune", str(args.tune),
           "--chains", str(args.chains), "--cores", str(args.cores), *extra]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # never leak one environment's packages into the other
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env,
                              cwd=str(HERE))
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {args.timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"could not start worker: {exc}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(harness.JSON_PREFIX):
            out = json.loads(line[len(harness.JSON_PREFIX):])
            out["worker_wall_s"] = time.perf_counter() - t0
            return out
    return {"error": f"worker exited {proc.returncode} without a result",
            "stderr_tail": proc.stderr[-2000:]}


def ensure_peer_venv(path: Path):
    """Create the peer's virtual environment with pymc-extras when missing. Returns (python, error)."""
    python = path / "bin" / "python"
    probe = [str(python), "-c", "import pymc_extras.statespace, nutpie"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, None
    log(f"creating peer environment {path} ({' '.join(PEER_REQUIREMENTS)}); this downloads PyMC et al.")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True,
                           capture_output=True, text=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
                       capture_output=True, text=True)
        r = subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None, f"pip install failed: {r.stderr[-800:]}"
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not create the peer environment: {exc}"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None, "pymc_extras does not import in the peer environment"
    return python, None


def peer_versions(python):
    code = ("import json,sys; sys.path.insert(0, %r); import harness; "
            "print(json.dumps(harness.package_versions()))" % str(HERE))
    # run from the venv's own folder, so the checkout's pymc_dlm metadata is not on the path
    r = subprocess.run([str(python), "-c", code], capture_output=True, text=True, cwd=str(python.parent))
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {}


def numba_floor(models_, data_paths, args):
    try:
        import numba_reference as nr

        data = {k: models.load_data(k, data_paths[k])["y"] for k in models_ if k in (1, 2)}
        if not data:
            return {}
        out = nr.benchmark(models=tuple(sorted(data)), min_time=args.min_time, data=data)
        return {str(k): v for k, v in out.items()}
    except Exception as exc:  # noqa: BLE001
        return {"error": f"{type(exc).__name__}: {exc}"}


# ------------------------------------------------------------------------------------ reporting
def fmt_time(s):
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    if s < 1.0:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.1f} s"


def fmt_ratio(x):
    if x is None:
        return "n/a"
    return f"{x:.3g}"


def get(d, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    if isinstance(d, dict) and "error" in d:
        return None
    return d


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def err_of(*cells):
    for c in cells:
        if isinstance(c, dict) and "error" in c:
            return c["error"]
    return None


def verdict(r, limit, better="lower"):
    if r is None:
        return "n/a"
    ok = r <= limit if better == "lower" else r >= limit
    return "met" if ok else "NOT met"


def summarize(res):
    """Flatten the raw results into rows with ratios (ours/peer, ours/numba)."""
    rows = {}
    for k in res["models"]:
        key = str(k)
        ours = res["ours"].get(key, {})
        peer = res["peer"].get(key, {})
        num = res["numba"].get(key)
        o_lp = get(ours, "logp", "logp")
        p_lp = get(peer, "logp", "logp")
        row = {
            "title": models.TITLES[k],
            "peer_note": get(peer, "logp", "note"),
            "logp_grad_s": {"ours": get(o_lp, "logp_grad_s"), "peer": get(p_lp, "logp_grad_s"),
                            "numba": get(num, "logp_grad_s")},
            "build_compile_s": {"ours": get(o_lp, "total_s"), "peer": get(p_lp, "total_s"),
                                "ours_first_run": get(ours, "logp_first", "logp", "total_s"),
                                "peer_first_run": get(peer, "logp_first", "logp", "total_s")},
            "sample": {},
            "states_s": {"ours": get(ours, "sample", "states", "wall_s"),
                         "peer": get(peer, "sample", "states", "wall_s")},
        }
        for s in res["config"]["samplers"]:
            row["sample"][s] = {
                "ours_wall_s": get(ours, "sample", "sample", s, "wall_s"),
                "peer_wall_s": get(peer, "sample", "sample", s, "wall_s"),
                "ours_ess_per_s": get(ours, "sample", "sample", s, "ess_per_s"),
                "peer_ess_per_s": get(peer, "sample", "sample", s, "ess_per_s"),
                "ours_min_ess": get(ours, "sample", "sample", s, "min_bulk_ess"),
                "peer_min_ess": get(peer, "sample", "sample", s, "min_bulk_ess"),
                "ours_divergences": get(ours, "sample", "sample", s, "divergences"),
                "peer_divergences": get(peer, "sample", "sample", s, "divergences"),
            }
        lg = row["logp_grad_s"]
        row["ratios"] = {
            "logp_ours_over_peer": ratio(lg["ours"], lg["peer"]),
            "logp_ours_over_numba": ratio(lg["ours"], lg["numba"]),
            "logp_peer_over_numba": ratio(lg["peer"], lg["numba"]),
            "build_compile_ours_over_peer": ratio(row["build_compile_s"]["ours"],
                                                  row["build_compile_s"]["peer"]),
            "states_ours_over_peer": ratio(row["states_s"]["ours"], row["states_s"]["peer"]),
        }
        for s, v in row["sample"].items():
            row["ratios"][f"nuts_{s}_wall_ours_over_peer"] = ratio(v["ours_wall_s"], v["peer_wall_s"])
            row["ratios"][f"nuts_{s}_ess_per_s_ours_over_peer"] = ratio(v["ours_ess_per_s"],
                                                                        v["peer_ess_per_s"])
        rows[key] = row
    return rows


def markdown(res):
    rows = res["summary"]
    m = res["machine"]
    L = []
    L.append(f"# pymc_dlm benchmarks ({'smoke' if res['config']['smoke'] else 'full'} run)\n")
    L.append(f"{res['started']} → {res['finished']}. Command: `{res['command']}`\n")
    L.append(f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
             f"({m['usable_cores']} usable), load average at start {m['load_avg_1min']}, "
             f"{m['platform']}.\n")
    L.append(f"Ours: {_versions(res['versions']['ours'])}  ")
    L.append(f"Peer: {_versions(res['versions']['peer']) if res['versions']['peer'] else 'not run'}"
             f"{' — ' + res['peer_status'] if res.get('peer_status') else ''}\n")
    L.append("Ratios are ours/peer and ours/numba: below 1 means ours is faster (for ESS/s, above 1 "
             "means ours is better). n/a: not measured, not expressible, or not implemented yet "
             "(see the JSON for the reason).\n")

    L.append("## Log-density + gradient per call (as NUTS calls it)\n")
    L.append("| model | numba floor | ours | pymc-extras | ours/numba | ours/peer | target ours/peer ≤ 0.1 |")
    L.append("|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        lg, ra = r["logp_grad_s"], r["ratios"]
        tgt = verdict(ra["logp_ours_over_peer"], TARGETS["logp_vs_peer"])
        if k == "2":
            tgt += f"; ours/numba ≤ 3: {verdict(ra['logp_ours_over_numba'], TARGETS['logp_vs_numba_m2'])}"
        note = f" ({r['peer_note']})" if r.get("peer_note") else ""
        L.append(f"| {k}. {r['title']} | {fmt_time(lg['numba'])} | {fmt_time(lg['ours'])} | "
                 f"{fmt_time(lg['peer'])}{note} | {fmt_ratio(ra['logp_ours_over_numba'])} | "
                 f"{fmt_ratio(ra['logp_ours_over_peer'])} | {tgt} |")

    L.append("\n## Build + compile to the first log-density + gradient value\n")
    L.append("Fresh process, imports excluded; the last of `--compile-runs` runs (warm on-disk "
             "caches). `first run` is the first process of this run, cold only if the caches were.\n")
    L.append("| model | ours | pymc-extras | ours/peer | target ≤ 1 | ours first run | peer first run |")
    L.append("|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        b = r["build_compile_s"]
        rr = r["ratios"]["build_compile_ours_over_peer"]
        L.append(f"| {k} | {fmt_time(b['ours'])} | {fmt_time(b['peer'])} | {fmt_ratio(rr)} | "
                 f"{verdict(rr, TARGETS['compile_vs_peer'])} | {fmt_time(b['ours_first_run'])} | "
                 f"{fmt_time(b['peer_first_run'])} |")

    c = res["config"]
    if not c["no_sample"]:
        L.append(f"\n## NUTS end to end: `pm.sample` {c['chains']} chains × {c['draws']} draws after "
                 f"{c['tune']} tune, cores={c['cores']}\n")
        L.append("Wall time includes compilation and initialisation. ESS: smallest bulk ESS over all "
                 "parameters (arviz), per second of wall time.\n")
        L.append("| model | sampler | ours wall | peer wall | ours/peer wall | ours ESS/s | peer ESS/s "
                 "| ours/peer ESS/s | divergences ours / peer | target (model 1, pymc NUTS) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for k, r in rows.items():
            for s, v in r["sample"].items():
                rw = r["ratios"][f"nuts_{s}_wall_ours_over_peer"]
                re_ = r["ratios"][f"nuts_{s}_ess_per_s_ours_over_peer"]
                tgt = verdict(rw, TARGETS["nuts_vs_peer_m1"]) if (k == "1" and s == "pymc") else ""
                L.append(f"| {k} | {s} | {fmt_time(v['ours_wall_s'])} | {fmt_time(v['peer_wall_s'])} | "
                         f"{fmt_ratio(rw)} | {_num(v['ours_ess_per_s'])} | {_num(v['peer_ess_per_s'])} | "
                         f"{fmt_ratio(re_)} | {_num(v['ours_divergences'])} / {_num(v['peer_divergences'])} "
                         f"| {tgt} |")
        L.append("\n## Posterior state draws for every posterior draw\n")
        L.append("Ours: `pymc_dlm.sample_states(idata)`. Peer: `sample_conditional_posterior(idata)` "
                 "(draws filtered, predicted and smoothed states and their observed versions; model 1 "
                 "only by default).\n")
        L.append("| model | ours | pymc-extras | ours/peer | target ≤ 0.1 |")
        L.append("|---|---|---|---|---|")
        for k, r in rows.items():
            st = r["states_s"]
            rr = r["ratios"]["states_ours_over_peer"]
            L.append(f"| {k} | {fmt_time(st['ours'])} | {fmt_time(st['peer'])} | {fmt_ratio(rr)} | "
                     f"{verdict(rr, TARGETS['states_vs_peer'])} |")
    problems = res.get("problems") or []
    if problems:
        L.append("\n## Cells not measured\n")
        for p in problems:
            L.append(f"- {p}")
    return "\n".join(L) + "\n"


def _num(x):
    if x is None:
        return "n/a"
    if isinstance(x, int):
        return str(x)
    return f"{x:.3g}"


def _versions(v):
    keys = ("python", "numpy", "pymc", "pytensor", "numba", "nutpie", "arviz", "pymc-extras", "pymc-dlm")
    return ", ".join(f"{k} {v[k]}" for k in keys if k in v)


def collect_problems(res):
    probs = []
    for side in ("ours", "peer"):
        for k, d in res[side].items():
            for phase in ("logp", "sample"):
                cell = d.get(phase)
                if cell is None:
                    continue
                e = err_of(cell, cell.get("logp") if isinstance(cell, dict) else None)
                if e:
                    probs.append(f"{side}, model {k}, {phase}: {e}")
                if phase == "sample" and isinstance(cell, dict):
                    for s, sc in (cell.get("sample") or {}).items():
                        if isinstance(sc, dict) and "error" in sc:
                            probs.append(f"{side}, model {k}, pm.sample[{s}]: {sc['error']}")
                    stt = cell.get("states")
                    if isinstance(stt, dict) and "error" in stt:
                        probs.append(f"{side}, model {k}, states: {stt['error']}")
    if isinstance(res.get("numba"), dict) and "error" in res["numba"]:
        probs.append(f"numba floor: {res['numba']['error']}")
    return probs


# ----------------------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "latest"
    res = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]),
        "machine": harness.cpu_info(),
        "env": {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS",
                                           "PYTENSOR_FLAGS") if k in os.environ},
        "config": {"models": args.models, "smoke": args.smoke, "repeat": args.repeat,
                   "min_time_s": args.min_time, "compile_runs": args.compile_runs,
                   "samplers": [s for s in args.samplers.split(",") if s], "draws": args.draws,
                   "tune": args.tune, "chains": args.chains, "cores": args.cores,
                   "no_sample": args.no_sample, "peer": args.run_peer, "timeout_s": args.timeout},
        "versions": {"ours": harness.package_versions(), "peer": {}},
        "models": args.models, "numba": {}, "ours": {}, "peer": {},
    }
    peer_python = None
    if args.run_peer:
        peer_python, perr = ensure_peer_venv(Path(args.peer_venv))
        res["peer_status"] = perr
        if peer_python is not None:
            res["versions"]["peer"] = peer_versions(peer_python)
        else:
            log(f"peer unavailable: {perr}")
    else:
        res["peer_status"] = "skipped (--no-peer or --smoke)"

    with tempfile.TemporaryDirectory(prefix="dlm-bench-") as tmp:
        data_paths = {}
        for k in args.models:
            data_paths[k] = Path(tmp) / f"model{k}.npz"
            models.save_data(k, data_paths[k])
        if not args.no_numba:
            log("numba floor (models 1, 2)")
            res["numba"] = numba_floor(args.models, data_paths, args)
        sides = [("ours", Path(sys.executable), "bench_ours.py")]
        if peer_python is not None:
            sides.append(("peer", peer_python, "peer_bench.py"))
        for k in args.models:
            for side, python, script in sides:
                d = res[side].setdefault(str(k), {})
                for i in range(args.compile_runs):
                    log(f"{side}: model {k} logp (run {i + 1}/{args.compile_runs})")
                    r = run_worker(python, script, k, data_paths[k], "logp", args)
                    if i == 0:
                        d["logp_first"] = r
                    d["logp"] = r
            if args.no_sample:
                continue
            for side, python, script in sides:
                extra = []
                if side == "peer" and k != 1:
                    extra.append("--no-states")  # the peer's state sampling is measured on model 1
                log(f"{side}: model {k} pm.sample ({args.samplers})")
                res[side][str(k)]["sample"] = run_worker(python, script, k, data_paths[k], "sample",
                                                         args, extra)
    res["finished"] = dt.datetime.now().isoformat(timespec="seconds")
    res["summary"] = summarize(res)
    res["problems"] = collect_problems(res)
    (out_dir / f"{stem}.json").write_text(json.dumps(res, indent=1, default=harness._json_default))
    (out_dir / f"{stem}.md").write_text(markdown(res))
    log(f"wrote {out_dir / (stem + '.md')} and {out_dir / (stem + '.json')}")
    print(markdown(res))
    if args.strict:
        ours_bad = [p for p in res["problems"] if p.startswith("ours")]
        if ours_bad:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
