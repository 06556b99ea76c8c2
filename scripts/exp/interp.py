"""The interpretability experiment (experiments/interp.json): per kind and seed, domain masking
against matched random sets, and the comment purge against matched random sets.

Numbers per job (from <run>/mask/mask.json and <run>/purge/purge.json):
  own[d]      Δ bpb on domain d when d's experts are removed
  control[d]  the mean Δ bpb on d over the random sets matched to d's selection
  others[d]   the mean Δ bpb on the other domains when d's experts are removed
  purge       at threshold R: removed experts, Δ loss on comment bytes and on the others, and the
              same two for the mean over the matched random sets
The claims, per kind, as effects per seed (mean over the domains):
  selective   own − control: removing a domain's experts hurts it more than removing as much
              routing at random (MONET §5.1)
  specific    own − others: it hurts that domain more than the other domains
  purge       (Δ comment − Δ other)_purged − (Δ comment − Δ other)_random (MONET §5.3)
"""
import json
import statistics

from exp.stats import Summary

PURGE_R = 0.05
LABEL = {"monet_vd": "MONET-VD", "monet_hd": "MONET-HD", "smoe": "SMoE", "peer": "PEER",
         "dense": "dense"}


def collect(job):
    mask = json.loads((job.run / "mask" / "mask.json").read_text())
    purge = json.loads((job.run / "purge" / "purge.json").read_text())
    domains = mask["domains"]
    before = {e["domain"]: e["bpb"] for e in mask["before"]}
    own, control, others, removed, ratios = {}, {}, {}, {}, []
    for row in mask["rows"]:
        after = {e["domain"]: e["bpb"] - before[e["domain"]] for e in row["after"]}
        if "control_of" in row:
            d = row["control_of"]
            control.setdefault(d, []).append(after[d])
            ratios += row["mass_ratio"]
        else:
            d = row["masked"]
            own[d] = after[d]
            others[d] = statistics.fmean(after[o] for o in domains if o != d)
            removed[d] = row["removed"]
    control = {d: statistics.fmean(v) for d, v in control.items()}
    out = {"domains": domains, "own": own, "control": control, "others": others,
           "removed": removed, "mass_ratio": [min(ratios, default=1), max(ratios, default=1)]}
    tb = purge["text_before"]
    for row in purge["rows"]:
        if abs(row["threshold"] - PURGE_R) > 1e-12:
            continue
        ctrl = [(c["high"] - tb["high"]) - (c["low"] - tb["low"]) for c in row["controls"]]
        out["purge"] = {"threshold": PURGE_R, "removed": sum(row["removed"]),
                        "fraction": row["fraction"], "comment": row["text"]["high"] - tb["high"],
                        "other": row["text"]["low"] - tb["low"],
                        "control_gap": statistics.fmean(ctrl) if ctrl else 0.0}
    return out


def _effects(results):
    """{kind: {"selective": {seed: x}, "specific": ..., "purge": ...}}"""
    eff = {}
    for job in results["jobs"]:
        n, k, s = job["numbers"], job["kind"], job["seed"]
        e = eff.setdefault(k, {"selective": {}, "specific": {}, "purge": {}})
        ds = n["domains"]
        e["selective"][s] = statistics.fmean(n["own"][d] - n["control"].get(d, 0.0) for d in ds)
        e["specific"][s] = statistics.fmean(n["own"][d] - n["others"][d] for d in ds)
        p = n.get("purge")
        if p:
            e["purge"][s] = (p["comment"] - p["other"]) - p["control_gap"]
    return eff


CLAIMS = [
    ("selective", "Removing a domain's experts raises its loss more than removing random experts "
     "of equal routing mass (Δ bpb, own domain, masked − matched random)"),
    ("specific", "Removing a domain's experts raises its loss more than the other domains' loss "
     "(Δ bpb, own − others)"),
    ("purge", f"Purging the experts correlated with Python comments (r ≥ {PURGE_R}) raises the "
     "loss on comment bytes more than on other bytes, beyond matched random experts (nats)"),
]


def claims(results):
    rows = []
    eff = _effects(results)
    for key, text in CLAIMS:
        for kind in results["order"]:
            if kind in eff and eff[kind][key]:
                s = Summary(eff[kind][key].values())
                rows.append((f"{LABEL.get(kind, kind)}: {text}", s.fmt(), s.n, s.verdict(+1)))
    return rows


def blocks(results):
    eff = _effects(results)
    md = ["| kind | claim | seeds | mean [95% interval] | verdict |", "|---|---|---:|---|---|"]
    for kind in results["order"]:
        for key, _ in CLAIMS:
            if kind in eff and eff[kind][key]:
                s = Summary(eff[kind][key].values())
                md.append(f"| {LABEL.get(kind, kind)} | {key} | {s.n} | {s.fmt()} | {s.verdict(+1)} |")
    masking = ["| kind | masked domain | experts removed per site (mean) | Δ bpb own [95%] | "
               "matched random [95%] | own − random [95%] | other domains [95%] |",
               "|---|---|---:|---|---|---|---|"]
    purge = ["| kind | experts removed (mean) | Δ comment bytes [95%] | Δ other bytes [95%] | "
             "random: Δ comment − Δ other [95%] |", "|---|---:|---|---|---|"]
    for kind in results["order"]:
        jobs = [j["numbers"] for j in results["jobs"] if j["kind"] == kind]
        if not jobs:
            continue
        for d in jobs[0]["domains"]:
            own = Summary(j["own"][d] for j in jobs)
            ctl = Summary(j["control"].get(d, 0.0) for j in jobs)
            diff = Summary(j["own"][d] - j["control"].get(d, 0.0) for j in jobs)
            oth = Summary(j["others"][d] for j in jobs)
            removed = statistics.fmean(statistics.fmean(j["removed"][d]) for j in jobs)
            masking.append(f"| {LABEL.get(kind, kind)} | {d} | {removed:.0f} | {own.fmt()} | "
                           f"{ctl.fmt()} | {diff.fmt()} | {oth.fmt()} |")
        ps = [j["purge"] for j in jobs if "purge" in j]
        if ps:
            purge.append(f"| {LABEL.get(kind, kind)} | {statistics.fmean(p['removed'] for p in ps):.0f} | "
                         f"{Summary(p['comment'] for p in ps).fmt()} | "
                         f"{Summary(p['other'] for p in ps).fmt()} | "
                         f"{Summary(p['control_gap'] for p in ps).fmt()} |")
    return {"claims": "\n".join(md), "masking": "\n".join(masking), "purge": "\n".join(purge)}
