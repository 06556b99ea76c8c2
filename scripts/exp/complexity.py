"""The complexity experiment (experiments/complexity.json): `monet table` per seed, from
<run>/table.json.

Numbers per job: every fitted log-log slope against N (kind, quantity, measured, the paper's
exponent) and every row's per-token forward+backward time and parameters.
The claims, per kind with a Table 1 exponent: the measured exponent of the expert parameters and
of the retrieval FLOPs equals the paper's within ±0.1 (MONET Table 1: SMoE N and N, PEER √N and
N, MONET √N and √N). Parameter and FLOP counts do not depend on the seed; the time slopes do.
"""
import json
import statistics

from exp.stats import Summary

TOLERANCE = 0.1
LABEL = {"monet_vd": "MONET-VD", "monet_hd": "MONET-HD", "smoe": "SMoE", "peer": "PEER",
         "dense": "dense"}


def collect(job):
    t = json.loads((job.run / "table.json").read_text())
    return {"slopes": [{k: s[k] for k in ("kind", "quantity", "measured", "paper", "r2", "points")
                        if k in s} for s in t["slopes"]],
            "rows": [{"kind": r["kind"], "n": r["n"], "measured": r["measured"],
                      "step_us": r.get("step_us_per_token"), "params": r["params"],
                      "expert_params": r["expert_params"]} for r in t["rows"]],
            "threads": t.get("threads")}


def _slopes(results):
    """{(kind, quantity): ([measured per seed], paper)}"""
    out = {}
    for job in results["jobs"]:
        for s in job["numbers"]["slopes"]:
            m, _ = out.setdefault((s["kind"], s["quantity"]), ([], s.get("paper")))
            m.append(s["measured"])
    return out


def claims(results):
    rows = []
    for (kind, quantity), (measured, paper) in _slopes(results).items():
        if paper is None or paper < 0 or quantity not in ("expert params", "retrieval FLOPs"):
            continue
        s = Summary(m - paper for m in measured)
        rows.append((f"Complexity: {LABEL.get(kind, kind)} {quantity} grow as N^{paper:g} "
                     f"(measured exponent − paper's, within ±{TOLERANCE})", s.fmt(), s.n,
                     s.within(TOLERANCE)))
    return rows


def blocks(results):
    md = ["| kind | quantity | paper | measured exponent [95%] | verdict |",
          "|---|---|---:|---|---|"]
    for (kind, quantity), (measured, paper) in _slopes(results).items():
        s = Summary(measured)
        has_paper = paper is not None and paper >= 0
        verdict = Summary(m - paper for m in measured).within(TOLERANCE) if has_paper else "–"
        md.append(f"| {LABEL.get(kind, kind)} | {quantity} | {paper if has_paper else '–'} | "
                  f"{s.fmt(signed=False)} | {verdict} |")
    times = {}
    for job in results["jobs"]:
        for r in job["numbers"]["rows"]:
            if r["measured"] and r["step_us"] is not None:
                times.setdefault((r["kind"], r["n"]), []).append(r["step_us"])
    tt = ["| kind | N | fwd+bwd µs per token [95%] |", "|---|---:|---|"]
    for (kind, n), v in sorted(times.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        tt.append(f"| {LABEL.get(kind, kind)} | {n:,} | {Summary(v).fmt(2, signed=False)} |")
    return {"slopes": "\n".join(md), "time": "\n".join(tt)}
