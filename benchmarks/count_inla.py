"""pymc-extras' INLA beside the Laplace likelihood, the Gaussian DLM and ``LatentStates``.

The van-drivers model of ``count_speed.py`` and ``count_ess.py`` (``VanKilled ~ law + level +
seasonal(12)``, Poisson, log link, T = 192, 13 states, ``sigma ~ HalfNormal(0.1)`` the only
hyperparameter), measured in one run on five routes:

* ``laplace``: ``DLM(..., family="poisson")`` (``pymc_dlm.laplace``), diffuse start (the
  components' default), as in ``count_speed.py``/``count_ess.py``;
* ``laplace, vague``: the same with the proper prior INLA needs, ``m0 = 0``, ``C0 = kappa I``
  (``--kappa``, default 1e4) on all three components: the like-for-like pair of INLA;
* ``gaussian``: the Gaussian DLM of the same size (``count_speed.build("gaussian")``), per call;
* ``latent``: ``LatentStates`` with ``pm.Poisson`` (``count_ess.fit("latent")``), NUTS;
* ``INLA``: pymc-extras 0.15.1, ``pymc_extras.inference.INLA.inla.fit_INLA`` (marginalisation
  by ``pymc_extras.model.marginal.marginalize(model, laplace_approx={x: Q})``: Laplace
  approximation at the mode found by ``pytensor.optimize.minimize``, default L-BFGS-B with
  ``tol=1e-8``, started from ones at every call; NUTS on ``sigma``).

How the model is written for INLA
---------------------------------
INLA marginalises a latent Gaussian field with a proper prior. The field is the signal
``eta_t = F_t theta_t`` (T = 192), not the stacked states (T x 13 = 2496: a dense 2496 x 2496
Hessian per call): ``theta_t = G theta_{t-1} + w_t``, ``theta_0 ~ N(0, kappa I)``, so
``eta ~ N(0, Sigma)`` with ``Sigma = kappa A A' + sigma^2 M``, ``A_t = F_t G^t`` (T x 13: level,
the 11 noiseless seasonal states and the static ``law`` coefficient all sit in it) and
``M_ts = min(t, s)`` (the level's random walk). Its precision follows from Woodbury with
``P = M^-1`` (tridiagonal): ``Q = (P - P A (sigma^2/kappa I + A'PA)^-1 A'P) / sigma^2``, built
in pytensor from ``sigma`` (no 192 x 192 inverse of the ill-conditioned ``Sigma``). ``A``, ``G``
and ``F`` are written here in numpy (the INLA environment has no pymc_dlm); the check table
shows that this model's marginal log-density equals pymc_dlm's ``laplace, vague`` one.

Two ways of writing the prior of ``eta``, both measured per call:

* ``INLA (dense Q)``: ``pm.MvNormal("eta", 0, tau=Q)``, the direct way. pytensor's
  ``minimize`` takes every x-independent subexpression of the objective as an argument, here the
  192 x 192 matrix ``Q``, so the implicit gradient of the mode solves a 192 x 192 system with
  36,864 right-hand sides at every call (a few hundred ms). Not sampled (the report
  estimates how long it would take).
* ``INLA (Woodbury)``: ``pm.CustomDist("eta", sigma, Q, logp=...)`` whose log-density is the
  same Gaussian written through the 13 x 13 matrix ``sigma^2/kappa I + A'PA`` (``Q`` is passed
  only so that ``fit_INLA`` finds it in the graph). Same value, small minimiser arguments: the
  route that is sampled.

INLA has no exact diffuse start: it needs the vague proper prior (``kappa``). pymc_dlm is
timed both ways; with ``kappa`` = 1e4 the two log-densities differ by the constant
``13/2 log kappa`` (up to O(1/kappa)), with the same gradient, so the posterior of ``sigma`` is
the same.

What is measured
----------------
1. log-density + gradient per call, as NUTS calls it (``harness.nuts_function``; for INLA on the
   marginal model that ``fit_INLA`` samples, compiled in the INLA environment by the same
   function), at ``count_speed.py``'s cycle of 50 jittered points: ``--repeat`` rounds, each
   timing a block of ``--block-time`` seconds of every side in turn (the INLA sides in their
   process while this one waits); the median seconds per call and medians of per-round ratios.
2. the check: log-density and gradient of each route at five values of ``sigma``.
3. NUTS: PyMC's NUTS, 2 chains one after the other (``cores=1``), ``--draws`` draws after as
   many tuning steps, ``random_seed=1`` (as ``count_ess.py``): sampling time (``sampling_time``
   of the result, compilation excluded), the leapfrog steps of the kept draws (sum of
   ``n_steps``; tuning not included), the bulk ESS of ``sigma``, ESS/s, divergences, and the
   posterior mean and sd of ``sigma``.

The INLA side runs in its own virtual environment (pymc-extras 0.15.1 pins ``pymc<6.4``), in a
subprocess of this script driven line by line (``--inla-python``, default
``benchmarks/.peer-venv/bin/python`` as made by ``run.py``); when it is absent, the INLA rows say
why. Make one with ``python -m venv /tmp/inla_venv && /tmp/inla_venv/bin/pip install
"pymc==6.3.*" pymc-extras==0.15.1``. BLAS threads are set to ``--blas-threads`` (default 1) on
both sides: on a loaded 2-core machine, OpenBLAS with 2 threads made INLA's dense algebra 2-5x
slower and erratic.

Usage: ``python benchmarks/count_inla.py [--draws 500] [--repeat 9] [--block-time 0.5]
[--kappa 1e4] [--inla-python PATH] [--no-dense] [--no-nuts] [--out DIR]``. Writes
``DIR/<date>_count_inla_<commit>.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

PREFIX = "INLA_JSON:"
SIGMAS = (0.005, 0.01, 0.02, 0.05, 0.1)
VARIANTS = {"woodbury": "INLA (Woodbury)", "dense": "INLA (dense Q)"}
INLA_PACKAGES = ("numpy", "scipy", "pymc", "pytensor", "numba", "arviz", "pymc-extras")
BLAS_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


# ----------------------------------------------------------------------- the model for INLA
def signal_design(law):
    """``A`` (T, 13): ``A_t = F_t G^t``, states (level, seasonal_1..11, law coefficient)."""
    import numpy as np

    n = 13
    G = np.zeros((n, n))
    G[0, 0] = 1.0
    G[1:12, 1:12] = np.eye(11, k=-1)
    G[1, 1:12] = -1.0
    G[12, 12] = 1.0
    A = np.zeros((len(law), n))
    power = np.eye(n)
    for t in range(len(law)):
        power = G @ power
        F = np.zeros(n)
        F[[0, 1]] = 1.0
        F[12] = law[t]
        A[t] = F @ power
    return A


def inla_model(variant, kappa):
    """(model, eta, Q): the van-drivers Poisson model with the latent signal ``eta``."""
    import numpy as np
    import pymc as pm
    import pytensor.tensor as pt
    from count_speed import _data

    y, law = _data()
    T = len(y)
    A = signal_design(law)
    n = A.shape[1]
    P = 2.0 * np.eye(T) - np.eye(T, k=1) - np.eye(T, k=-1)  # inverse of min(t, s)
    P[-1, -1] = 1.0
    PA = P @ A
    APA = A.T @ PA

    def precision(s2):
        inner = pt.linalg.solve(s2 / kappa * np.eye(n) + APA, PA.T, assume_a="pos")
        Q = (P - PA @ inner) / s2
        return 0.5 * (Q + Q.T)

    def woodbury_logp(value, sigma, _Q):
        s2 = sigma**2
        chol = pt.linalg.cholesky(s2 / kappa * np.eye(n) + APA, lower=True)
        z = pt.linalg.solve_triangular(chol, pt.dot(PA.T, value), lower=True)
        quad = (pt.dot(value, pt.dot(P, value)) - pt.sum(z**2)) / s2
        logdet_q = -(T - n) * pt.log(s2) - n * np.log(kappa) - 2.0 * pt.sum(pt.log(pt.diag(chol)))
        return -0.5 * T * np.log(2.0 * np.pi) + 0.5 * logdet_q - 0.5 * quad

    with pm.Model() as model:
        sigma = pm.HalfNormal("sigma", 0.1)
        Q = precision(sigma**2)
        if variant == "dense":
            eta = pm.MvNormal("eta", mu=np.zeros(T), tau=Q)
        else:
            eta = pm.CustomDist("eta", sigma, Q, logp=woodbury_logp, signature="(),(n,n)->(n)")
        pm.Poisson("van", mu=pt.exp(eta), observed=y)
    return model, eta, Q


MINIMIZER = {"method": "L-BFGS-B", "optimizer_kwargs": {"tol": 1e-8}}  # fit_INLA's default


# ------------------------------------------------------------------ the worker (INLA's venv)
def _worker_build(state, variant, kappa):
    import harness
    import numpy as np
    from count_speed import _points
    from pymc_extras.model.marginal.marginalize import marginalize

    t0 = time.perf_counter()
    model, eta, Q = inla_model(variant, kappa)
    marginal = marginalize(model, laplace_approx={eta: Q}, minimizer_kwargs=MINIMIZER)
    call, q = harness.nuts_function(marginal)
    pts = _points(q)
    for p in pts[:5]:
        call(p)
    state[variant] = (call, pts)
    names = [v.name for v in marginal.continuous_value_vars]
    return {"seconds": time.perf_counter() - t0, "q": np.asarray(q).tolist(), "vars": names}


def _worker_sample(variant, kappa, draws):
    from pymc_extras.inference.INLA.inla import fit_INLA

    model, eta, Q = inla_model(variant, kappa)
    t0 = time.perf_counter()
    idata = fit_INLA(eta, Q, model=model, minimizer_kwargs=MINIMIZER, draws=draws, tune=draws,
                     chains=2, cores=1, random_seed=1, nuts_sampler="pymc",
                     progressbar=False)  # fmt: skip
    return {**_summary(idata), "wall": time.perf_counter() - t0}


def worker(kappa):
    """Answer one JSON command per line on stdin with one ``PREFIX`` line on stdout."""
    import harness
    import numpy as np
    from count_speed import _block

    harness.quiet()
    state = {}
    for line in sys.stdin:
        cmd = json.loads(line)
        try:
            op = cmd["op"]
            if op == "versions":
                out = harness.package_versions(INLA_PACKAGES)
            elif op == "build":
                out = _worker_build(state, cmd["variant"], kappa)
            elif op == "block":
                call, pts = state[cmd["variant"]]
                out = {"per_call": _block(call, pts, cmd["seconds"])}
            elif op == "eval":
                call = state[cmd["variant"]][0]
                vals = [call(np.array([np.log(s)])) for s in cmd["sigmas"]]
                out = {"logp": [float(v[0]) for v in vals], "grad": [float(v[1][0]) for v in vals]}
            elif op == "sample":
                out = _worker_sample(cmd["variant"], kappa, cmd["draws"])
            elif op == "quit":
                break
            else:
                raise ValueError(f"unknown command {op!r}")
        except Exception as exc:  # noqa: BLE001
            out = {"error": f"{type(exc).__name__}: {exc}"[:600],
                   "traceback": traceback.format_exc()[-3000:]}  # fmt: skip
        print(PREFIX + json.dumps(out), flush=True)


class Remote:
    """The INLA worker: a subprocess in the INLA environment, one command at a time."""

    def __init__(self, python, kappa, env):
        self.proc = subprocess.Popen(
            [python, str(Path(__file__).resolve()), "--inla-worker", "--kappa", repr(kappa)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=HERE.parent,
        )  # fmt: skip

    def ask(self, **cmd):
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        for line in self.proc.stdout:
            if line.startswith(PREFIX):
                return json.loads(line[len(PREFIX) :])
            sys.stderr.write(line)
        return {"error": f"the INLA worker ended (exit status {self.proc.wait()})"}

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)


# ------------------------------------------------------------------------- pymc_dlm's side
def _sampling_time(idata):
    for group in ("sample_stats", "posterior"):
        try:
            return float(idata[group].attrs["sampling_time"])
        except (KeyError, TypeError, AttributeError):
            continue
    return float("nan")


def laplace_model(C0):
    """pymc_dlm's Laplace model with the initial prior ``C0`` ("diffuse" or a variance)."""
    import pymc as pm
    from count_speed import _data

    import pymc_dlm as dlm

    y, law = _data()
    with pm.Model() as model:
        sigma = pm.HalfNormal("sigma", 0.1)
        components = (
            dlm.LocalLevel(sigma, C0=C0)
            + dlm.Seasonal(12, 0.0, C0=C0)
            + dlm.Regression(law[:, None], sigma=0.0, C0=C0)
        )
        dlm.DLM("van", components, family="poisson", observed=y)
    return model


def _summary(idata):
    import arviz as az
    import numpy as np

    post = idata.posterior["sigma"]
    return {
        "seconds": _sampling_time(idata),
        "ess": float(az.ess(post)),
        "div": int(idata.sample_stats["diverging"].sum()),
        "steps": int(np.asarray(idata.sample_stats["n_steps"]).sum()),
        "mean": float(post.mean()),
        "sd": float(post.std()),
    }


def _fit_laplace_vague(kappa, draws):
    import pymc as pm

    with laplace_model(kappa):
        return pm.sample(draws, tune=draws, chains=2, cores=1, random_seed=1,
                         nuts_sampler="pymc", progressbar=False)  # fmt: skip


# --------------------------------------------------------------------------------- the run
def _median(xs):
    import statistics

    return statistics.median(xs) if xs else float("nan")


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--block-time", type=float, default=0.5)
    parser.add_argument("--kappa", type=float, default=1e4)
    parser.add_argument("--inla-python", default=str(HERE / ".peer-venv/bin/python"))
    parser.add_argument("--blas-threads", type=int, default=1, help="0: leave as it is")
    parser.add_argument("--no-dense", action="store_true", help="skip INLA's dense-Q variant")
    parser.add_argument("--no-nuts", action="store_true", help="per-call figures only")
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--inla-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.blas_threads > 0:
        for var in BLAS_VARS:
            os.environ[var] = str(args.blas_threads)
    if args.inla_worker:
        return worker(args.kappa)

    import harness
    import numpy as np
    from count_ess import fit as count_ess_fit
    from count_speed import _block, _points, build, finish, stamp

    kappa = args.kappa
    notes = []
    # ---- the sides, compiled
    local = {}
    for name, make in (
        ("laplace", lambda: build("poisson")),
        ("laplace, vague", lambda: laplace_model(kappa)),
        ("gaussian", lambda: build("gaussian")),
    ):
        t0 = time.perf_counter()
        call, q = harness.nuts_function(make())
        pts = _points(q)
        for p in pts[:5]:
            call(p)
        local[name] = (call, pts, time.perf_counter() - t0, q)
    remote, built, inla_versions = None, {}, {}
    variants = ["woodbury"] + ([] if args.no_dense else ["dense"])
    if not Path(args.inla_python).exists():
        notes.append(f"INLA skipped: no interpreter at `{args.inla_python}` (see the docstring).")
    else:
        remote = Remote(args.inla_python, kappa, dict(os.environ))
        inla_versions = remote.ask(op="versions")
        for v in variants:
            got = remote.ask(op="build", variant=v)
            if "error" in got:
                notes.append(f"{VARIANTS[v]} failed to build: `{got['error']}`")
                sys.stderr.write(got.get("traceback", "") + "\n")
            else:
                built[v] = got
                if not np.allclose(got["q"], local["laplace, vague"][3]):
                    notes.append(f"{VARIANTS[v]} starts at {got['q']}, not at the same point")
    # ---- the check: same log-density?
    check = {}
    for name in ("laplace", "laplace, vague"):
        vals = [local[name][0](np.array([np.log(s)])) for s in SIGMAS]
        check[name] = ([float(v[0]) for v in vals], [float(v[1][0]) for v in vals])
    for v in built:
        got = remote.ask(op="eval", variant=v, sigmas=list(SIGMAS))
        if "error" in got:
            notes.append(f"{VARIANTS[v]}: evaluation failed: `{got['error']}`")
        else:
            check[VARIANTS[v]] = (got["logp"], got["grad"])
    # ---- per call, interleaved rounds
    sides = list(local) + [VARIANTS[v] for v in built]
    times = {k: [] for k in sides}
    ratio_gauss = {k: [] for k in sides}
    ratio_vague = {k: [] for k in sides}
    for r in range(args.repeat):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        got = {}
        for k in order:
            if k in local:
                got[k] = _block(local[k][0], local[k][1], args.block_time)
            else:
                v = next(v for v in built if VARIANTS[v] == k)
                reply = remote.ask(op="block", variant=v, seconds=args.block_time)
                got[k] = reply.get("per_call", float("nan"))
        for k, s in got.items():
            times[k].append(s)
            ratio_gauss[k].append(s / got["gaussian"])
            ratio_vague[k].append(s / got["laplace, vague"])
    # ---- NUTS
    nuts = {}
    if not args.no_nuts:
        nuts["laplace"] = _summary(count_ess_fit("laplace", args.draws))
        nuts["laplace, vague"] = _summary(_fit_laplace_vague(kappa, args.draws))
        nuts["latent"] = _summary(count_ess_fit("latent", args.draws))
        if "woodbury" in built:
            got = remote.ask(op="sample", variant="woodbury", draws=args.draws)
            if "error" in got:
                notes.append(f"INLA (Woodbury) NUTS failed: `{got['error']}`")
                sys.stderr.write(got.get("traceback", "") + "\n")
            else:
                nuts[VARIANTS["woodbury"]] = got
    if remote is not None:
        remote.close()
    # ---- the report
    commit, now = stamp()
    ours = harness.package_versions(("pymc", "pytensor", "numpy", "scipy", "arviz", "pymc-dlm"))
    lines = [
        f"# pymc-extras' INLA beside the Laplace likelihood, van drivers (T = 192, 13 states)\n\n"
        f"{now:%Y-%m-%d %H:%M} UTC, commit {commit}, `python benchmarks/count_inla.py --draws "
        f"{args.draws} --repeat {args.repeat} --block-time {args.block_time} --kappa {kappa:g}"
        f"`; BLAS threads: {args.blas_threads or 'default'}\n",
        f"Working tree: {_dirty()}\n",
        f"pymc_dlm's environment: {ours}  ",
        f"INLA's environment (`{args.inla_python}`): {inla_versions or 'n/a'}\n",
        f"`vague`: m0 = 0, C0 = {kappa:g} I on every component; INLA has only that form. "
        "`laplace` and `gaussian` are diffuse (the components' default).\n",
        "## log-density + gradient per call (as NUTS calls it)\n",
        "| side | median per call | / gaussian (median of rounds) | / laplace, vague | "
        "build + compile + first calls |",
        "|---|---|---|---|---|",
    ]
    for k in sides:
        build_s = local[k][2] if k in local else built[_key(k)]["seconds"]
        lines.append(
            f"| {k} | {_median(times[k]) * 1e3:.3f} ms | {_median(ratio_gauss[k]):.1f}x | "
            f"{_median(ratio_vague[k]):.1f}x | {build_s:.1f} s |"
        )
    lines += [
        "\n## Check: the same log-density (log sigma coordinates, prior and Jacobian included)\n",
        "| sigma | " + " | ".join(f"{k}: logp, grad" for k in check) + " |",
        "|---|" + "---|" * len(check),
    ]
    for i, s in enumerate(SIGMAS):
        cells = [f"{c[0][i]:.4f}, {c[1][i]:.5f}" for c in check.values()]
        lines.append(f"| {s} | " + " | ".join(cells) + " |")
    base = check["laplace, vague"]
    for k, (lp, gr) in check.items():
        if k != "laplace, vague":
            dlp = [a - b for a, b in zip(lp, base[0])]
            dgr = max(abs(a - b) for a, b in zip(gr, base[1]))
            lines.append(
                f"\n{k} minus laplace, vague: logp {min(dlp):+.5f} .. {max(dlp):+.5f}, "
                f"largest |gradient difference| {dgr:.1e}"
            )
    lines.append(f"\n(13/2 log kappa = {6.5 * np.log(kappa):.5f})")
    if nuts:
        lines += [
            f"\n## NUTS (PyMC's), 2 chains one after the other, {args.draws} tuning + "
            f"{args.draws} draws each, random_seed=1\n",
            "| route | sampling time | leapfrog steps (draws) | bulk ESS of sigma | ESS/s | "
            "divergences | sigma: mean | sigma: sd |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for k, d in nuts.items():
            lines.append(
                f"| {k} | {d['seconds']:.1f} s | {d['steps']} | {d['ess']:.0f} | "
                f"{d['ess'] / d['seconds']:.2f} | {d['div']} | {d['mean']:.4f} | {d['sd']:.4f} |"
            )
        if "wall" in nuts.get(VARIANTS["woodbury"], {}):
            lines.append(
                f"\nINLA wall time of `fit_INLA` (marginalisation, compilation, sampling): "
                f"{nuts[VARIANTS['woodbury']]['wall']:.1f} s"
            )
            if "dense" in built:
                k, w = VARIANTS["dense"], VARIANTS["woodbury"]
                guess = nuts[w]["seconds"] * _median(times[k]) / _median(times[w])
                lines.append(
                    f"\n{k} not sampled: at its per-call cost, about {guess / 60:.0f} min "
                    f"(the Woodbury sampling time x the per-call ratio)"
                )
    lines.append("\n## Summary (ratios from this run)\n")
    lines.append(
        f"* Laplace / Gaussian per call (diffuse, the issue's target <= 10x): "
        f"**{_median(ratio_gauss['laplace']):.1f}x**"
    )
    if nuts:
        r = nuts["laplace"]["ess"] / nuts["laplace"]["seconds"]
        r /= nuts["latent"]["ess"] / nuts["latent"]["seconds"]
        lines.append(f"* ESS/s laplace / latent (the issue's target >= 10x): **{r:.1f}x**")
    for v in built:
        k = VARIANTS[v]
        lines.append(
            f"* {k} / laplace, vague per call: **{_median(ratio_vague[k]):.1f}x** "
            f"(the same log-density)"
        )
    if VARIANTS["woodbury"] in nuts:
        d, ref = nuts[VARIANTS["woodbury"]], nuts["laplace, vague"]
        lines.append(
            f"* ESS/s laplace, vague / INLA (Woodbury): "
            f"**{(ref['ess'] / ref['seconds']) / (d['ess'] / d['seconds']):.1f}x**"
        )
    if notes:
        lines.append("\n## Notes\n")
        lines += [f"* {n}" for n in notes]
    finish(lines, args.out, f"{now:%Y-%m-%d}_count_inla_{commit}.md")
    return None


def _dirty():
    """The checkout's uncommitted changes to tracked files, as ``git status`` lists them."""
    cmd = ["git", "status", "--porcelain", "--untracked-files=no"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=HERE.parent).stdout
    files = [line[3:] for line in out.splitlines() if line.strip()]
    return "clean" if not files else f"{len(files)} modified files: " + ", ".join(files)


def _key(label):
    return next(v for v, k in VARIANTS.items() if k == label)


if __name__ == "__main__":
    main()
