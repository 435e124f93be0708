"""NUTS on the Laplace likelihood against NUTS on the latent path: ESS per second.

The van-drivers model of ``count_speed.py`` (``LocalLevel(sigma) + Seasonal(12, 0.0) +
Regression(law, sigma=0.0)``, Poisson, T = 192, diffuse start), fitted twice in one process:

* ``laplace``: ``DLM(..., family="poisson")``, NUTS on ``sigma`` alone;
* ``latent``: ``LatentStates`` (non-centred: innovations, a flat coefficient per diffuse
  state) with ``pm.Poisson`` on ``exp(F θ)``, NUTS on ``sigma`` and the path's variables.

The Laplace side also reports its mode searches: their number against the evaluations of
the mode's node (``LaplaceMode.perform``), the passes of the smoother per search, and the
seconds spent searching (``pymc_dlm.laplace.loglik.posterior_mode`` timed around each call).

Both with PyMC's NUTS (``nuts_sampler="pymc"``), 2 chains run one after the other
(``cores=1``), ``--draws`` draws after as many tuning steps, the same seed. Reported: the
sampling time (``sampling_time`` of the result, compilation excluded), the bulk ESS of
``sigma``, ESS per second and their ratio, and divergences.

Usage: ``python benchmarks/count_ess.py [--draws 500] [--out DIR]``; writes
``DIR/<date>_count_ess_<commit>.md`` (default ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

from count_speed import _data, finish, stamp  # noqa: E402


def _components(dlm, sigma, law):
    return dlm.LocalLevel(sigma) + dlm.Seasonal(12, 0.0) + dlm.Regression(law[:, None], sigma=0.0)


def fit(kind, draws):
    """(idata, wall seconds) of one side."""
    import pymc as pm

    import pymc_dlm as dlm

    y, law = _data()
    with pm.Model():
        sigma = pm.HalfNormal("sigma", 0.1)
        if kind == "laplace":
            dlm.DLM("van", _components(dlm, sigma, law), family="poisson", observed=y)
        else:
            theta = dlm.LatentStates("theta", _components(dlm, sigma, law), steps=len(y))
            F = _components(dlm, sigma, law).statespace.F  # (T, 1, n): time-varying
            eta = (F[:, 0, :] * theta).sum(axis=-1)
            pm.Poisson("van", mu=pm.math.exp(eta), observed=y)
        idata = pm.sample(draws, tune=draws, chains=2, cores=1, random_seed=1,
                          nuts_sampler="pymc", progressbar=False)  # fmt: skip
    return idata


class _Searches:
    """Count and time the Laplace node's mode searches (a wrapper of posterior_mode)."""

    def __init__(self):
        from collections import Counter

        self.passes, self.seconds, self.calls = Counter(), 0.0, 0

    def __enter__(self):
        import time

        from pymc_dlm.laplace import loglik

        self._module, self._search = loglik, loglik.posterior_mode
        self._perform = loglik.LaplaceMode.perform

        def counted(op, *args):
            self.calls += 1
            return self._perform(op, *args)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            found = self._search(*args, **kwargs)
            self.seconds += time.perf_counter() - t0
            self.passes[found.iterations] += 1
            return found

        loglik.posterior_mode = timed
        loglik.LaplaceMode.perform = counted
        return self

    def __exit__(self, *exc):
        self._module.posterior_mode = self._search
        self._module.LaplaceMode.perform = self._perform

    def line(self, seconds):
        count = sum(self.passes.values())
        mean = sum(k * v for k, v in self.passes.items()) / max(count, 1)
        spread = ", ".join(f"{k}: {v}" for k, v in sorted(self.passes.items()))
        return (
            f"\nLaplace side: {self.calls} evaluations of the mode node, {count} mode "
            f"searches, {mean:.2f} smoother passes each "
            f"(passes: searches {spread}), {self.seconds:.1f} s timed inside the searches "
            f"(the sampling time, {seconds:.1f} s, is PyMC's own measure; the searches of "
            f"the model's initialisation are counted here too)"
        )


def main(argv=None):
    import arviz as az

    parser = argparse.ArgumentParser()
    parser.add_argument("--draws", type=int, default=500)
    parser.add_argument("--out", default=str(HERE / "results"))
    args = parser.parse_args(argv)
    rows, searches = {}, _Searches()
    for kind in ("laplace", "latent"):
        if kind == "laplace":
            with searches:
                idata = fit(kind, args.draws)
        else:
            idata = fit(kind, args.draws)
        seconds = float(idata.sample_stats.attrs.get("sampling_time", float("nan")))
        ess = float(az.ess(idata.posterior["sigma"]))
        div = int(idata.sample_stats["diverging"].sum())
        rows[kind] = (seconds, ess, ess / seconds, div)
    commit, now = stamp()
    lines = [
        f"# NUTS on the Laplace likelihood against NUTS on the latent path, van drivers\n\n"
        f"{now:%Y-%m-%d %H:%M} UTC, commit {commit}, `python benchmarks/count_ess.py "
        f"--draws {args.draws}` (2 chains, {args.draws} tuning + {args.draws} draws each)\n",
        "| route | sampling time | bulk ESS of sigma | ESS/s | divergences |",
        "|---|---|---|---|---|",
    ]
    for kind, (s, e, r, d) in rows.items():
        lines.append(f"| {kind} | {s:.1f} s | {e:.0f} | {r:.2f} | {d} |")
    ratio = rows["laplace"][2] / rows["latent"][2]
    lines.append(f"\nESS/s laplace / latent: **{ratio:.1f}x**")
    lines.append(searches.line(rows["laplace"][0]))
    finish(lines, args.out, f"{now:%Y-%m-%d}_count_ess_{commit}.md")


if __name__ == "__main__":
    main()
