"""PyBATS as a witness and a peer for discounted DLMs with a learned observation variance.

PyBATS (0.0.5, pure numpy, West & Harrison's practice) needs other packages than ours, so it
runs in its own virtual environment, in a worker process of this script (``--side pybats``,
started with ``--pybats-python``) that stays alive for the whole run: the runner (the
project's interpreter) sends it commands on stdin, so its timings and ours are taken in
alternating blocks of one run. Nothing of PyBATS is patched.

The model: a local linear trend (2 states) plus a period-12 seasonal in Fourier form with
harmonics 1..6, component discounts ``deltrend``, ``delseas``, and a learned observation
variance with variance discount ``delVar``, on benchmark model 2's series (T = 1000; the data
are written to an ``.npz`` read by both sides). Ours: ``LocalLinearTrend(discount=...)`` +
``Fourier(12, 6, discount=...)`` with ``obs_var=LearnedVariance(n0, S0, discount=...)``.

PyBATS's conventions, read from its source (``dglm.py``, ``update.py``, ``forecast.py``,
``seasonal.py``, ``define_models.py``), and how they are matched here:

1. Prior time. PyBATS's ``a0, R0`` are the moments of theta_1 given no data (already evolved
   and discounted); ours (m0, C0) are at time 0, before the evolution to time 1. Matched: m0 =
   G^-1 a0 and, block by block, C0_b = delta_b G_b^-1 R0_b G_b^-T (R0 block diagonal), so that
   G C0 G' with the discount gives R0 exactly.
2. Degrees of freedom. PyBATS stores ``n`` already discounted: it starts at ``n0`` and after
   each observation sets n <- delVar (n + 1); its one-step forecast uses ``df = n``. Ours
   (W&H Table 4.3): n_t = delVar n_{t-1} + 1 and the forecast has delVar n_{t-1} degrees of
   freedom. Matched: our n0 = PyBATS's n0 / delVar (PyBATS's stored n after step t is our
   delVar n_t). ``s`` is PyBATS's S_t: s0 = our S0, updated by s <- s (n + e^2/q)/(n + 1),
   the same recursion as ours.
3. Discount of W. Both: W_t = (1/delta - 1) P_t on each component's block, zero between
   blocks, P_t = G C_{t-1} G' symmetrised (PyBATS ``get_W``: ``R / Discount - R`` with the
   discount matrix holding delta on the block and 1 elsewhere). Difference: a *vector* of
   discounts in PyBATS fills the diagonal only, so off-diagonal entries of such a block are not
   discounted; here one delta per block, as ours.
4. Seasonal states. PyBATS's harmonic j = s/2 (omega = pi) keeps two states, G =
   [[cos pi, sin pi], [-sin pi, cos pi]], F = (1, 0): 12 seasonal states, 14 in all; ours has
   the one-state Nyquist harmonic (11 seasonal, 13 in all). The extra state is never observed
   and is coupled to the others only through sin(pi) = 1.2e-16 in G; the 13 states compared
   are the same. Its prior is given separately (no correlation with the others).
5. Scaling. Both carry covariances at the current estimate of V (R_t and Q_t at S_{t-1}, C_t
   at S_t, C_t = (S_t/S_{t-1})(R_t - A A' Q_t)); PyBATS's R0 is in the data's units at
   V = s0, as our C0 is at V = S0.
6. Missing values. PyBATS on a NaN sets m = a, C = R and evolves, but does *not* add the
   discount W to the next prior R (it computes ``mod.W`` and drops it) and does not discount
   ``n``; ours discounts R (R = P / delta) and gives n_t = delVar n_{t-1}, d_t = delVar d_{t-1}.
   The run below shows the two agree up to the first missing value and differ after it.
7. ``rho`` is not used by the normal DLM (``dlm.get_mean_and_var`` overrides the base class's
   division by ``rho``): the variance discount is ``delVar``.
8. Defaults: ``dlm(...)`` has ``adapt_discount=False``, but the helpers ``define_dglm`` and
   ``analysis`` default to ``adapt_discount='info'`` (discounts changed state by state from the
   signal-to-noise of each coefficient) and to a prior (a0, R0, n0, s0) fitted by least
   squares to the first ``prior_length`` = 20 observations, which ``analysis`` then does not
   filter. This witness builds ``dlm`` directly with ``adapt_discount=False``.
9. One-step log density: ``forecast_marginal(k=1, y=y_t)`` returns scipy's Student-t log
   density with ``df = n``, location F'a, scale sqrt(F'RF + s), the same as our term. PyBATS
   has no gradient: its filter runs at fixed discounts and prior; ours is timed with the
   gradient that NUTS needs (and without it).

Usage (from the repository root, with the project's interpreter)::

    python benchmarks/pybats_witness.py --pybats-python /tmp/pybats_venv/bin/python

Options: ``--repeat`` (timing rounds), ``--block-time`` (seconds per block), ``--out``.
Writes ``DIR/<date>_pybats_witness_<commit>.md`` and ``.json`` (default
``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

#: The fixed parameters, in PyBATS's terms (ours follow by the matching above).
PARAMS = {
    "deltrend": 0.95,
    "delseas": 0.98,
    "delVar": 0.99,
    "n0": 5.0,  # PyBATS's n0: degrees of freedom of the first one-step forecast
    "s0": 4.0,  # prior point estimate of V (the simulated observation variance)
    "R0_trend": [100.0, 1.0],  # variances of theta_1 (level, slope) at V = s0
    "R0_seas": 10.0,  # variance of every seasonal state of theta_1
}
HARMONICS = [1, 2, 3, 4, 5, 6]
PERIOD = 12
MISSING = [300, 301, 650]  # positions set to NaN in the missing-value run


# ------------------------------------------------------------------------------- shared maths
def trend_G():
    """Local linear trend transition (PyBATS's and ours)."""
    return np.array([[1.0, 1.0], [0.0, 1.0]])


def rotation(j):
    """PyBATS's harmonic-j block [[c, s], [-s, c]], omega = 2 pi j / period."""
    w = 2 * np.pi * j / PERIOD
    c, s = np.cos(w), np.sin(w)
    return np.array([[c, s], [-s, c]])


def pybats_prior(y):
    """PyBATS's a0 (14,) and R0 (14, 14): the prior of theta_1."""
    n = 2 + 2 * len(HARMONICS)
    a0 = np.zeros(n)
    a0[0] = y[0]
    R0 = np.diag(PARAMS["R0_trend"] + [PARAMS["R0_seas"]] * (n - 2))
    return a0, R0


def our_prior(y):
    """Our m0, C0 (time 0) for the trend and the seasonal, reproducing PyBATS's (a0, R0)."""
    a0, R0 = pybats_prior(y)
    Gt = trend_G()
    Gs = np.zeros((11, 11))
    for j in HARMONICS[:-1]:
        Gs[2 * j - 2 : 2 * j, 2 * j - 2 : 2 * j] = rotation(j)
    Gs[10, 10] = -1.0  # the one-state Nyquist harmonic
    out = {}
    for name, G, idx, delta in (
        ("trend", Gt, slice(0, 2), PARAMS["deltrend"]),
        ("seas", Gs, slice(2, 13), PARAMS["delseas"]),
    ):
        Gi = np.linalg.inv(G)
        C0 = delta * Gi @ R0[idx, idx] @ Gi.T
        out[name] = (Gi @ a0[idx], (C0 + C0.T) / 2)
    return out


def our_learned():
    """(n0, S0, delta_V) of our LearnedVariance matching PyBATS's (n0, s0, delVar)."""
    return PARAMS["n0"] / PARAMS["delVar"], PARAMS["s0"], PARAMS["delVar"]


# ---------------------------------------------------------------------------- PyBATS's side
def pybats_model(y):
    """A fresh PyBATS ``dlm`` at the fixed parameters."""
    from pybats.dglm import dlm

    a0, R0 = pybats_prior(y)
    return dlm(
        a0=a0,
        R0=R0,
        ntrend=2,
        seasPeriods=[PERIOD],
        seasHarmComponents=[HARMONICS],
        deltrend=PARAMS["deltrend"],
        delseas=PARAMS["delseas"],
        n0=PARAMS["n0"],
        s0=PARAMS["s0"],
        delVar=PARAMS["delVar"],
        adapt_discount=False,
    )


def pybats_pass(y, loglik):
    """One filter pass (``update`` per step), with the one-step log densities or not."""
    mod = pybats_model(y)
    total = 0.0
    for yt in y:
        if loglik and not np.isnan(yt):
            total += float(np.ravel(mod.forecast_marginal(k=1, y=yt))[0])
        mod.update(y=yt)
    return total


def pybats_record(y):
    """Every one-step forecast and filtered moment of one pass (numpy arrays)."""
    mod = pybats_model(y)
    T, n = len(y), mod.a.shape[0]
    rec = {k: np.full(T, np.nan) for k in ("f", "q", "dof", "loglik_t", "n_after", "s_after")}
    rec["m"], rec["C"] = np.zeros((T, n)), np.zeros((T, n, n))
    for t, yt in enumerate(y):
        f, q = mod.forecast_marginal(k=1, state_mean_var=True)
        rec["f"][t], rec["q"][t], rec["dof"][t] = (np.ravel(x)[0] for x in (f, q, mod.n))
        if not np.isnan(yt):
            rec["loglik_t"][t] = np.ravel(mod.forecast_marginal(k=1, y=yt))[0]
        mod.update(y=yt)
        rec["m"][t], rec["C"][t] = np.ravel(mod.m), mod.C
        rec["n_after"][t], rec["s_after"][t] = np.ravel(mod.n)[0], np.ravel(mod.s)[0]
    return rec


def pybats_worker(data_path, out_path):
    """The worker: record both series, then time passes on command (one line each)."""
    from importlib import metadata

    with np.load(data_path) as f:
        y, y_missing = f["y"], f["y_missing"]
    recs = {"complete": pybats_record(y), "missing": pybats_record(y_missing)}
    np.savez(out_path, **{f"{k}_{name}": v for k, r in recs.items() for name, v in r.items()})
    print(
        json.dumps({"ready": True, "pybats": metadata.version("pybats"), "numpy": np.__version__}),
        flush=True,
    )
    for line in sys.stdin:
        cmd = line.split()
        if not cmd or cmd[0] == "quit":
            break
        what, k = cmd[0], int(cmd[1])
        t0 = time.perf_counter()
        for _ in range(k):
            pybats_pass(y, loglik=what == "loglik")
        print(json.dumps({"per_pass_s": (time.perf_counter() - t0) / k}), flush=True)


class Worker:
    """The PyBATS worker process, driven through its stdin."""

    def __init__(self, python, data_path, out_path):
        cmd = [
            python,
            str(Path(__file__).resolve()),
            "--side",
            "pybats",
            "--data",
            str(data_path),
            "--pybats-out",
            str(out_path),
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE
        )
        self.info = self._read()

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyBATS worker ended (exit {self.proc.wait()})")
        return json.loads(line)

    def time(self, what, k):
        """Seconds per pass of ``k`` passes, timed in the worker."""
        self.proc.stdin.write(f"{what} {k}\n")
        self.proc.stdin.flush()
        return self._read()["per_pass_s"]

    def close(self):
        self.proc.stdin.write("quit\n")
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ------------------------------------------------------------------------------- our side
def our_components(y):
    """Our trend + Fourier(12, 6), discounted, with the matched (m0, C0)."""
    import pymc_dlm as dlm

    pr = our_prior(y)
    trend = dlm.LocalLinearTrend(discount=PARAMS["deltrend"], m0=pr["trend"][0], C0=pr["trend"][1])
    season = dlm.Fourier(
        PERIOD, len(HARMONICS), discount=PARAMS["delseas"], m0=pr["seas"][0], C0=pr["seas"][1]
    )
    return trend + season


def our_record(y):
    """``kalman_filter`` with the matched LearnedVariance, as numpy arrays."""
    import pymc_dlm as dlm

    n0, S0, dV = our_learned()
    ds = dlm.kalman_filter(our_components(y), y, obs_var=dlm.LearnedVariance(n0, S0, dV))
    get = {k: np.asarray(ds[k].values) for k in ds.data_vars}
    return {
        "f": get["forecast_mean"].reshape(len(y)),
        "q": get["forecast_cov"].reshape(len(y)),
        "dof": get["forecast_dof"].reshape(len(y)),
        "n": get["dof"].reshape(len(y)),
        "s": get["scale"].reshape(len(y)),
        "m": get["filtered_mean"],
        "C": get["filtered_cov"],
        "loglik": float(get["loglik"]),
    }


def our_pymc_model(y):
    """The same model with the five parameters free (Task 1's priors), initial point = PARAMS."""
    import pymc as pm
    from discount_speed import DISCOUNT_PRIORS as P

    import pymc_dlm as dlm

    n0, S0, dV = our_learned()
    pr = our_prior(y)
    with pm.Model() as model:
        d_trend = pm.Beta("d_trend", *P["d_trend"], initval=PARAMS["deltrend"])
        d_seas = pm.Beta("d_seas", *P["d_seas"], initval=PARAMS["delseas"])
        d_var = pm.Beta("d_var", *P["d_var"], initval=dV)
        n0_rv = pm.Gamma("n0", *P["n0"], initval=n0)
        S0_rv = pm.Gamma("S0", *P["S0"], initval=S0)
        trend = dlm.LocalLinearTrend(discount=d_trend, m0=pr["trend"][0], C0=pr["trend"][1])
        season = dlm.Fourier(
            PERIOD, len(HARMONICS), discount=d_seas, m0=pr["seas"][0], C0=pr["seas"][1]
        )
        dlm.DLM("y", trend + season, obs_var=dlm.LearnedVariance(n0_rv, S0_rv, d_var), observed=y)
    return model


def our_functions(y):
    """Compiled logp + gradient (as NUTS calls it) and logp alone; the observed term's value."""
    import harness

    model = our_pymc_model(y)
    t0 = time.perf_counter()
    grad_call, q = harness.nuts_function(model)
    grad_call(q)
    t1 = time.perf_counter()
    logp_fn = model.compile_logp()
    point = model.initial_point()
    logp_fn(point)
    t2 = time.perf_counter()
    obs_fn = model.compile_logp(vars=model.observed_RVs, jacobian=False)
    return {
        "logp + gradient": (lambda: grad_call(q)),
        "logp": (lambda: logp_fn(point)),
    }, {
        "compile_and_first_call_grad_s": t1 - t0,
        "compile_and_first_call_logp_s": t2 - t1,
        "observed_loglik_pymc": float(obs_fn(point)),
        "initial_point": {k: float(v) for k, v in point.items()},
    }


# ------------------------------------------------------------------------------ comparison
def compare(ours, theirs, upto=None):
    """Largest differences, ours vs PyBATS, over t < ``upto`` (every t by default)."""
    sl = slice(0, upto)
    obs = ~np.isnan(theirs["loglik_t"][sl])

    def mx(a, b):
        return float(np.max(np.abs(a[sl] - b[sl])))

    def rel(a, b):
        return float(np.max(np.abs(a[sl] - b[sl]) / np.abs(b[sl])))

    return {
        "forecast_mean_max_abs": mx(ours["f"], theirs["f"]),
        "forecast_var_max_abs": mx(ours["q"], theirs["q"]),
        "forecast_var_max_rel": rel(ours["q"], theirs["q"]),
        "forecast_dof_max_abs": mx(ours["dof"], theirs["dof"]),
        "dof_after_max_abs (our delVar n_t vs PyBATS n)": mx(
            PARAMS["delVar"] * ours["n"], theirs["n_after"]
        ),
        "scale_S_t_max_rel": rel(ours["s"], theirs["s_after"]),
        "filtered_mean_max_abs (13 states)": mx(ours["m"], theirs["m"][:, :13]),
        "filtered_cov_max_rel_to_diag (13 states)": float(
            np.max(
                np.abs(ours["C"][sl] - theirs["C"][sl, :13, :13])
                / np.sqrt(
                    np.einsum("tii->ti", theirs["C"][sl, :13, :13])[:, :, None]
                    * np.einsum("tii->ti", theirs["C"][sl, :13, :13])[:, None, :]
                )
            )
        ),
        "loglik_pybats_sum": float(np.sum(theirs["loglik_t"][sl][obs])),
        "observed_steps": int(obs.sum()),
    }


def interleaved(ours, worker, repeat, block_time):
    """Rounds of one block per function, ours in this process, PyBATS's in the worker."""

    def our_block(call, k):
        t0 = time.perf_counter()
        for _ in range(k):
            call()
        return (time.perf_counter() - t0) / k

    est = {}
    for name, call in ours.items():  # warm-up, not timed
        est[name] = min(our_block(call, 1) for _ in range(5))
    for what in ("update", "loglik"):
        est[f"PyBATS {what}"] = worker.time(what, 2)
    number = {name: max(1, round(block_time / e)) for name, e in est.items()}
    names = list(number)
    per = {name: [] for name in names}
    for r in range(repeat):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if name.startswith("PyBATS"):
                per[name].append(worker.time(name.split()[1], number[name]))
            else:
                per[name].append(our_block(ours[name], number[name]))
    return per, number


def fmt(s):
    """Seconds as a readable string."""
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def main(argv=None):
    """Run the witness and the timing; print and write the results."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--pybats-python", default="/tmp/pybats_venv/bin/python")
    p.add_argument("--repeat", type=int, default=11)
    p.add_argument("--block-time", type=float, default=0.8)
    p.add_argument("--out", default=str(HERE / "results"))
    p.add_argument("--side", choices=("runner", "pybats"), default="runner")
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--pybats-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side == "pybats":
        pybats_worker(args.data, args.pybats_out)
        return
    sys.path.insert(1, str(HERE.parent))  # the checkout's pymc_dlm
    import harness
    import models

    harness.quiet()
    import pymc  # noqa: F401

    import pymc_dlm  # noqa: F401

    started = datetime.datetime.now().isoformat(timespec="seconds")
    machine = harness.cpu_info()
    y = models.simulate(2)["y"]
    y_missing = y.copy()
    y_missing[MISSING] = np.nan
    tmp = Path(tempfile.mkdtemp(prefix="pybats_witness_"))
    np.savez(tmp / "data.npz", y=y, y_missing=y_missing)
    worker = Worker(args.pybats_python, tmp / "data.npz", tmp / "pybats.npz")
    try:
        with np.load(tmp / "pybats.npz") as f:
            theirs = {
                k: {name[len(k) + 1 :]: f[name] for name in f.files if name.startswith(k + "_")}
                for k in ("complete", "missing")
            }
        ours = {"complete": our_record(y), "missing": our_record(y_missing)}
        agree = compare(ours["complete"], theirs["complete"])
        agree["loglik_ours_kalman_filter"] = ours["complete"]["loglik"]
        before = compare(ours["missing"], theirs["missing"], upto=MISSING[0])
        after = compare(ours["missing"], theirs["missing"])
        for key in ("f", "q"):
            gap = np.abs(ours["missing"][key] - theirs["missing"][key])
            after[f"first t where {key} differs (> 1e-9)"] = int(np.argmax(gap > 1e-9))
        calls, setup = our_functions(y)
        load_before = harness.cpu_info()["load_avg_1min"]
        per, number = interleaved(calls, worker, args.repeat, args.block_time)
        load_after = harness.cpu_info()["load_avg_1min"]
    finally:
        worker.close()
    med = {name: statistics.median(v) for name, v in per.items()}
    ratios = {
        f"ours {a} / PyBATS {b}": med[a] / med[f"PyBATS {b}"]
        for a in ("logp + gradient", "logp")
        for b in ("update", "loglik")
    }
    paired = {
        key: statistics.median(
            x / z for x, z in zip(per[key.split(" / ")[0][5:]], per["PyBATS " + key[-6:]])
        )
        for key in ratios
    }
    head, dirty = _commit()
    cmd = "python benchmarks/pybats_witness.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    result = {
        "started": started,
        "command": cmd.strip(),
        "commit": head,
        "work_tree_changes": dirty,
        "machine": machine,
        "load_avg_1min_timing_start_end": [load_before, load_after],
        "versions_ours": harness.package_versions(),
        "versions_pybats_worker": worker.info,
        "params_pybats": PARAMS,
        "params_ours": dict(zip(("n0", "S0", "discount_var"), our_learned())),
        "missing_positions": MISSING,
        "agreement_complete": agree,
        "agreement_missing_up_to_first_nan": before,
        "agreement_missing_all": after,
        "ours_setup": setup,
        "per_pass_median_s": med,
        "per_pass_min_s": {k: min(v) for k, v in per.items()},
        "per_pass_rounds_s": per,
        "calls_per_block": number,
        "ratios_of_medians": ratios,
        "ratios_median_of_rounds": paired,
    }
    text = report(result)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = f"{started[:10]}_pybats_witness_{head}"
    (out / f"{stem}.md").write_text(text + "\n")
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"written to {out / stem}.md and .json")


def _commit():
    def git(*a):
        return subprocess.run(
            ["git", *a], cwd=HERE, capture_output=True, text=True, check=False
        ).stdout

    head = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    return head, [line[3:] for line in git("status", "--porcelain").splitlines() if line.strip()]


def report(r):
    """The markdown text of one run."""
    m = r["machine"]
    a, b, c = (
        r["agreement_complete"],
        r["agreement_missing_up_to_first_nan"],
        r["agreement_missing_all"],
    )
    keys = [k for k in a if not k.startswith("loglik")]  # the first-t entries: text below
    rows = [f"| {k} | {a[k]:.3g} | {b[k]:.3g} | {c[k]:.3g} |" for k in keys]
    timing = [
        f"| {name} | {fmt(v)} | {fmt(r['per_pass_min_s'][name])} | {r['calls_per_block'][name]} |"
        for name, v in r["per_pass_median_s"].items()
    ]
    ratio_rows = [
        f"| {k} | {v:.3f} | {r['ratios_median_of_rounds'][k]:.3f} |"
        for k, v in r["ratios_of_medians"].items()
    ]
    po = r["params_ours"]
    return "\n".join(
        [
            "# PyBATS witness: discounted trend + Fourier(12, 6), learned variance\n",
            f"{r['started']}. Command: `{r['command']}`. Code: {r['commit']}"
            + (
                f" (work tree differs in: {', '.join(r['work_tree_changes'])})"
                if r["work_tree_changes"]
                else ""
            )
            + ".\n",
            f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores, load average "
            f"{m['load_avg_1min']} at the start, {r['load_avg_1min_timing_start_end']} at the "
            f"start / end of the timing. Ours: "
            + ", ".join(f"{k} {v}" for k, v in r["versions_ours"].items())
            + f". PyBATS worker: pybats {r['versions_pybats_worker'].get('pybats')}, numpy "
            f"{r['versions_pybats_worker'].get('numpy')}.\n",
            f"PyBATS: `dlm(a0, R0, ntrend=2, seasPeriods=[12], seasHarmComponents=[[1..6]], "
            f"deltrend={PARAMS['deltrend']}, delseas={PARAMS['delseas']}, "
            f"delVar={PARAMS['delVar']}, n0={PARAMS['n0']}, s0={PARAMS['s0']}, "
            "adapt_discount=False)`, R0 = diag(100, 1, 10 x 12), a0 = (y_1, 0, ...). Ours: "
            "`LocalLinearTrend(discount) + Fourier(12, 6, discount)` with m0 = G^-1 a0, C0 = "
            f"delta G^-1 R0 G^-T per block, `LearnedVariance(n0={po['n0']:.6g}, "
            f"S0={po['S0']:.6g}, discount={po['discount_var']})`. Data: benchmark model 2's "
            f"series, T = 1000; the missing-value run sets y at {r['missing_positions']} "
            "(0-based) to NaN.\n",
            "## Agreement (ours - PyBATS, largest over t)\n",
            "| quantity | complete series | with NaN: t before the first NaN | with NaN: all t |",
            "|---|---|---|---|",
            *rows,
            "",
            "With NaN, the one-step forecast variances (squared scales) first differ at t = "
            f"{c['first t where q differs (> 1e-9)']} (0-based), the step after the first NaN, "
            f"the means at t = {c['first t where f differs (> 1e-9)']}, the step after the "
            "first update that follows the gap: PyBATS adds no discount W after a missing "
            "value and does not discount n (see the module's notes).\n",
            f"Sum of log one-step densities, complete series: PyBATS "
            f"{a['loglik_pybats_sum']:.10f}, ours (`kalman_filter` loglik) "
            f"{a['loglik_ours_kalman_filter']:.10f}, ours (the PyMC model's observed term at "
            f"the same values) {r['ours_setup']['observed_loglik_pymc']:.10f}.\n",
            "## Time per pass over T = 1000 (interleaved rounds, one run)\n",
            "PyBATS has no gradient. `PyBATS update`: a fresh `dlm` and `update` at every "
            "step; `PyBATS loglik`: the same plus `forecast_marginal(k=1, y=y_t)` (the log "
            "density) at every step. Ours: `model.logp_dlogp_function` as NUTS calls it "
            "(`logp + gradient`) and `model.compile_logp()` (`logp`), 5 free parameters at "
            "the values above.\n",
            "| function | median per pass | min | calls per block |",
            "|---|---|---|---|",
            *timing,
            "",
            "| ratio | of medians | median of per-round ratios |",
            "|---|---|---|",
            *ratio_rows,
            "",
            f"Ours, compile + first call (in this process, after the witness runs): logp + "
            f"gradient {fmt(r['ours_setup']['compile_and_first_call_grad_s'])}, logp "
            f"{fmt(r['ours_setup']['compile_and_first_call_logp_s'])}.\n",
        ]
    )


if __name__ == "__main__":
    main()
