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
from report import collect_problems, get, markdown, summarize  # noqa: E402

PEER_REQUIREMENTS = ["pymc-extras==0.15.1", "nutpie"]


# ------------------------------------------------------------------------------------ arguments
def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--models",
        nargs="+",
        default=None,
        help="subset of 1..5, e.g. '--models 1 2' or '--models 1,2' (default all; 1 with --smoke)",
    )
    p.add_argument(
        "--repeat",
        type=int,
        default=None,
        help="timing batches per per-call measurement, median reported (default 7; 3 smoke)",
    )
    p.add_argument(
        "--min-time",
        type=float,
        default=None,
        help="seconds spent timing calls per cell (default 3; 0.3 with --smoke)",
    )
    p.add_argument(
        "--compile-runs",
        type=int,
        default=None,
        help="fresh processes measuring build+compile; the last (warm cache) is reported "
        "(default 2; 1 with --smoke)",
    )
    p.add_argument("--smoke", action="store_true", help="tiny fast version for CI")
    p.add_argument("--no-peer", action="store_true", help="skip pymc-extras")
    p.add_argument("--peer", action="store_true", help="run the peer even with --smoke")
    p.add_argument("--no-sample", action="store_true", help="skip pm.sample and state sampling")
    p.add_argument("--no-numba", action="store_true", help="skip the numba floor")
    p.add_argument(
        "--no-default-prior",
        action="store_true",
        help="skip ours with the components' default (exact diffuse) initial prior",
    )
    p.add_argument(
        "--samplers",
        default=None,
        help="comma list of pymc,nutpie (default both; pymc with --smoke)",
    )
    p.add_argument("--draws", type=int, default=None, help="default 1000 (20 with --smoke)")
    p.add_argument("--tune", type=int, default=None, help="default 1000 (20 with --smoke)")
    p.add_argument("--chains", type=int, default=2)
    p.add_argument("--cores", type=int, default=2)
    p.add_argument("--out", default=str(HERE / "results"), help="output directory")
    p.add_argument(
        "--peer-venv",
        default=str(HERE / ".peer-venv"),
        help="virtual environment for pymc-extras (created when missing)",
    )
    p.add_argument(
        "--timeout", type=float, default=3600.0, help="seconds allowed per worker process"
    )
    p.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 when any of our cells is n/a or failed (for CI)",
    )
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
    cmd = [
        str(python),
        str(HERE / script),
        "--model",
        str(model),
        "--data",
        str(data_path),
        "--phase",
        phase,
        "--min-time",
        str(args.min_time),
        "--repeat",
        str(args.repeat),
        "--samplers",
        args.samplers,
        "--draws",
        str(args.draws),
        "--tune",
        str(args.tune),
        "--chains",
        str(args.chains),
        "--cores",
        str(args.cores),
        *extra,
    ]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # never leak one environment's packages into the other
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=args.timeout, env=env, cwd=str(HERE)
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timeout after {args.timeout:.0f} s"}
    except OSError as exc:
        return {"error": f"could not start worker: {exc}"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(harness.JSON_PREFIX):
            out = json.loads(line[len(harness.JSON_PREFIX) :])
            out["worker_wall_s"] = time.perf_counter() - t0
            return out
    return {
        "error": f"worker exited {proc.returncode} without a result",
        "stderr_tail": proc.stderr[-2000:],
    }


def ensure_peer_venv(path: Path):
    """Create the peer's environment with pymc-extras when missing; return (python, error)."""
    python = path / "bin" / "python"
    probe = [str(python), "-c", "import pymc_extras.statespace, nutpie"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python, None
    log(
        f"creating peer environment {path} ({' '.join(PEER_REQUIREMENTS)}); "
        "this downloads PyMC et al."
    )
    try:
        if not python.exists():
            subprocess.run(
                [sys.executable, "-m", "venv", str(path)],
                check=True,
                capture_output=True,
                text=True,
            )
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", "--upgrade", "pip"],
            capture_output=True,
            text=True,
        )
        r = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
            capture_output=True,
            text=True,
        )
        if r.returncode != 0:
            return None, f"pip install failed: {r.stderr[-800:]}"
    except (OSError, subprocess.CalledProcessError) as exc:
        return None, f"could not create the peer environment: {exc}"
    if subprocess.run(probe, capture_output=True).returncode != 0:
        return None, "pymc_extras does not import in the peer environment"
    return python, None


def peer_versions(python):
    code = (
        "import json,sys; sys.path.insert(0, %r); import harness; "
        "print(json.dumps(harness.package_versions()))" % str(HERE)
    )
    # run from the venv's own folder, so the checkout's pymc_dlm metadata is not on the path
    r = subprocess.run(
        [str(python), "-c", code], capture_output=True, text=True, cwd=str(python.parent)
    )
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


# ----------------------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = "smoke" if args.smoke else "latest"
    res = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "command": " ".join(
            [Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])]
        ),
        "machine": harness.cpu_info(),
        "env": {
            k: os.environ[k]
            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS", "PYTENSOR_FLAGS")
            if k in os.environ
        },
        "config": {
            "models": args.models,
            "smoke": args.smoke,
            "repeat": args.repeat,
            "min_time_s": args.min_time,
            "compile_runs": args.compile_runs,
            "samplers": [s for s in args.samplers.split(",") if s],
            "draws": args.draws,
            "tune": args.tune,
            "chains": args.chains,
            "cores": args.cores,
            "no_sample": args.no_sample,
            "peer": args.run_peer,
            "timeout_s": args.timeout,
        },
        "versions": {"ours": harness.package_versions(), "peer": {}},
        "models": args.models,
        "numba": {},
        "ours": {},
        "ours_default": {},
        "peer": {},
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
            if not args.no_default_prior:
                # What a user gets without writing an initial prior: the exact diffuse start.
                log(f"ours: model {k} logp with the default (exact diffuse) prior")
                res["ours_default"][str(k)] = {
                    "logp": run_worker(
                        sys.executable,
                        "bench_ours.py",
                        k,
                        data_paths[k],
                        "logp",
                        args,
                        ["--prior", "default"],
                    )
                }
            if args.no_sample:
                continue
            for side, python, script in sides:
                per_call = get(res[side][str(k)], "logp", "logp", "logp_grad_s")
                if per_call is not None:
                    # NUTS needs about 2**depth gradients per iteration; assume ~30 on average
                    est = per_call * (args.draws + args.tune) * 30 * len(res["config"]["samplers"])
                    if est > args.timeout:
                        res[side][str(k)]["sample"] = {
                            "error": f"skipped: estimated {est:.0f} s of sampling "
                            f"(logp+grad {per_call * 1e3:.1f} ms/call) exceeds --timeout"
                        }
                        log(f"{side}: model {k} pm.sample skipped (estimated {est:.0f} s)")
                        continue
                extra = []
                if side == "peer" and k != 1:
                    extra.append("--no-states")  # the peer's state sampling is measured on model 1
                log(f"{side}: model {k} pm.sample ({args.samplers})")
                res[side][str(k)]["sample"] = run_worker(
                    python, script, k, data_paths[k], "sample", args, extra
                )
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
