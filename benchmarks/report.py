"""Tables and ratios for the benchmark results (used by ``run.py``).

``summarize`` flattens the raw worker results into per-model rows with the ratios ours/peer and
ours/numba; ``markdown`` renders them with the targets; ``collect_problems`` lists every cell
that was not measured and why.
"""

from __future__ import annotations

import models

# models the peer can only express differently (not like for like): no target verdict there
NOT_LIKE_FOR_LIKE = {5}
TARGETS = {
    "logp_vs_peer": 0.1,  # ours/peer per-call logp+grad <= 0.1 on every model the peer expresses
    "logp_vs_numba_m2": 3.0,  # ours/numba <= 3 on model 2
    "nuts_vs_peer_m1": 0.2,  # end-to-end NUTS on model 1 >= 5x faster
    "states_vs_peer": 0.1,  # sample_states >= 10x faster
    "compile_vs_peer": 1.0,  # build + compile no slower
}


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
        d_lp = get(res.get("ours_default", {}).get(key, {}), "logp", "logp")
        row = {
            "title": models.TITLES[k],
            "peer_note": get(peer, "logp", "note"),
            "logp_grad_s": {
                "ours": get(o_lp, "logp_grad_s"),
                "peer": get(p_lp, "logp_grad_s"),
                "numba": get(num, "logp_grad_s"),
                "ours_default_prior": get(d_lp, "logp_grad_s"),
            },
            "build_compile_s": {
                "ours": get(o_lp, "total_s"),
                "peer": get(p_lp, "total_s"),
                "ours_first_run": get(ours, "logp_first", "logp", "total_s"),
                "peer_first_run": get(peer, "logp_first", "logp", "total_s"),
            },
            "sample": {},
            "states_s": {
                "ours": get(ours, "sample", "states", "wall_s"),
                "peer": get(peer, "sample", "states", "wall_s"),
            },
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
            "logp_default_prior_over_peer": ratio(lg["ours_default_prior"], lg["peer"]),
            "build_compile_ours_over_peer": ratio(
                row["build_compile_s"]["ours"], row["build_compile_s"]["peer"]
            ),
            "states_ours_over_peer": ratio(row["states_s"]["ours"], row["states_s"]["peer"]),
        }
        for s, v in row["sample"].items():
            row["ratios"][f"nuts_{s}_wall_ours_over_peer"] = ratio(
                v["ours_wall_s"], v["peer_wall_s"]
            )
            row["ratios"][f"nuts_{s}_ess_per_s_ours_over_peer"] = ratio(
                v["ours_ess_per_s"], v["peer_ess_per_s"]
            )
        rows[key] = row
    return rows


def markdown(res):
    rows = res["summary"]
    m = res["machine"]
    L = []
    L.append(f"# pymc_dlm benchmarks ({'smoke' if res['config']['smoke'] else 'full'} run)\n")
    L.append(f"{res['started']} → {res['finished']}. Command: `{res['command']}`\n")
    L.append(
        f"Machine: {m['cpu_model']}, {m['logical_cores']} logical cores "
        f"({m['usable_cores']} usable), load average at start {m['load_avg_1min']}, "
        f"{m['platform']}.\n"
    )
    L.append(f"Ours: {_versions(res['versions']['ours'])}  ")
    L.append(
        f"Peer: {_versions(res['versions']['peer']) if res['versions']['peer'] else 'not run'}"
        f"{' — ' + res['peer_status'] if res.get('peer_status') else ''}\n"
    )
    L.append(
        "Ratios are ours/peer and ours/numba: below 1 means ours is faster (for ESS/s, above 1 "
        "means ours is better). n/a: not measured, not expressible, or not implemented yet "
        "(see the JSON for the reason).\n"
    )

    L.append("## Log-density + gradient per call (as NUTS calls it)\n")
    L.append(
        "| model | numba floor | ours | pymc-extras | ours/numba | ours/peer "
        "| target ours/peer ≤ 0.1 | ours, default prior | default/peer |"
    )
    L.append("|---|---|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        lg, ra = r["logp_grad_s"], r["ratios"]
        tgt = verdict(ra["logp_ours_over_peer"], TARGETS["logp_vs_peer"])
        if int(k) in NOT_LIKE_FOR_LIKE:
            tgt = "— (peer not like for like)"
        if k == "2":
            v_numba = verdict(ra["logp_ours_over_numba"], TARGETS["logp_vs_numba_m2"])
            tgt += f"; ours/numba ≤ 3: {v_numba}"
        note = f" ({r['peer_note']})" if r.get("peer_note") else ""
        L.append(
            f"| {k}. {r['title']} | {fmt_time(lg['numba'])} | {fmt_time(lg['ours'])} | "
            f"{fmt_time(lg['peer'])}{note} | {fmt_ratio(ra['logp_ours_over_numba'])} | "
            f"{fmt_ratio(ra['logp_ours_over_peer'])} | {tgt} | "
            f"{fmt_time(lg['ours_default_prior'])} | "
            f"{fmt_ratio(ra['logp_default_prior_over_peer'])} |"
        )

    L.append(
        "\n`ours, default prior`: the same model with the components' default initial prior "
        "(the exact diffuse start a user gets without writing `m0`/`C0`), which the peer "
        "cannot express; every other column uses theta_0 ~ N(0, 1e7 I).\n"
    )
    L.append("\n## Build + compile to the first log-density + gradient value\n")
    L.append(
        "Fresh process, imports excluded; the last of `--compile-runs` runs (warm on-disk "
        "caches). `first run` is the first process of this run, cold only if the caches were.\n"
    )
    L.append(
        "| model | ours | pymc-extras | ours/peer | target ≤ 1 | ours first run | peer first run |"
    )
    L.append("|---|---|---|---|---|---|---|")
    for k, r in rows.items():
        b = r["build_compile_s"]
        rr = r["ratios"]["build_compile_ours_over_peer"]
        L.append(
            f"| {k} | {fmt_time(b['ours'])} | {fmt_time(b['peer'])} | {fmt_ratio(rr)} | "
            f"{verdict(rr, TARGETS['compile_vs_peer'])} | {fmt_time(b['ours_first_run'])} | "
            f"{fmt_time(b['peer_first_run'])} |"
        )

    c = res["config"]
    if not c["no_sample"]:
        L.append(
            f"\n## NUTS end to end: `pm.sample` {c['chains']} chains × {c['draws']} draws after "
            f"{c['tune']} tune, cores={c['cores']}\n"
        )
        L.append(
            "Wall time includes compilation and initialisation. ESS: smallest bulk ESS over all "
            "parameters (arviz), per second of wall time.\n"
        )
        L.append(
            "| model | sampler | ours wall | peer wall | ours/peer wall | ours ESS/s | peer ESS/s "
            "| ours/peer ESS/s | divergences ours / peer | target (model 1, pymc NUTS) |"
        )
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for k, r in rows.items():
            for s, v in r["sample"].items():
                rw = r["ratios"][f"nuts_{s}_wall_ours_over_peer"]
                re_ = r["ratios"][f"nuts_{s}_ess_per_s_ours_over_peer"]
                tgt = verdict(rw, TARGETS["nuts_vs_peer_m1"]) if (k == "1" and s == "pymc") else ""
                L.append(
                    f"| {k} | {s} | {fmt_time(v['ours_wall_s'])} | {fmt_time(v['peer_wall_s'])} | "
                    f"{fmt_ratio(rw)} | {_num(v['ours_ess_per_s'])} | "
                    f"{_num(v['peer_ess_per_s'])} | "
                    f"{fmt_ratio(re_)} | {_num(v['ours_divergences'])} / "
                    f"{_num(v['peer_divergences'])} "
                    f"| {tgt} |"
                )
        L.append("\n## Posterior state draws for every posterior draw\n")
        L.append(
            "Ours: `pymc_dlm.sample_states(idata)`. Peer: `sample_conditional_posterior(idata)` "
            "(draws filtered, predicted and smoothed states and their observed versions; model 1 "
            "only by default).\n"
        )
        L.append("| model | ours | pymc-extras | ours/peer | target ≤ 0.1 |")
        L.append("|---|---|---|---|---|")
        for k, r in rows.items():
            st = r["states_s"]
            rr = r["ratios"]["states_ours_over_peer"]
            L.append(
                f"| {k} | {fmt_time(st['ours'])} | {fmt_time(st['peer'])} | {fmt_ratio(rr)} | "
                f"{verdict(rr, TARGETS['states_vs_peer'])} |"
            )
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
    keys = (
        "python",
        "numpy",
        "pymc",
        "pytensor",
        "numba",
        "nutpie",
        "arviz",
        "pymc-extras",
        "pymc-dlm",
    )
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
