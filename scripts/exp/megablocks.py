"""The MegaBlocks experiment (experiments/megablocks.json): dropless SMoE routing against capacity
factors, per seed from <run>/log.jsonl.

Numbers per job:
  loss        the final validation loss (mixed domains, nats): equal tokens for every routing
  tokens_per_second, seconds   the run's throughput and training time (no evaluation inside)
  dropped     the routed (token, expert) pairs dropped, mean over steps and layers
  curve       (seconds, train loss) at every step: t(s) = s · B · T / the run's tokens/s so far
The claims, per capacity factor, as paired differences per seed (the same seed gives the same
initialisation and data order to every routing):
  tokens  loss(cf) − loss(dropless) at equal tokens > 0: dropping tokens costs quality
  time    the same at equal training time: each routing's train loss (mean of the 20 steps before
          the moment) when the fastest routing of that seed finished
"""
import json
import statistics

from exp.stats import Summary, paired

WINDOW = 20


def _name(cf):
    return "dropless" if float(cf) == 0 else f"capacity factor {float(cf):g}"


def collect(job):
    steps, dropped, loss = [], [], None
    cfg = json.loads((job.run / "config.json").read_text())
    tokens_per_step = cfg["run"]["batch"] * cfg["model"]["context"] * cfg["run"].get("accumulate", 1)
    for line in open(job.run / "log.jsonl"):
        j = json.loads(line)
        if "eval" in j:
            loss = j["eval"]["all"]["loss"]
        elif "loss" in j and j.get("tokens_per_second", 0) > 0:
            steps.append((j["step"] * tokens_per_step / j["tokens_per_second"], j["loss"]))
            if "dropped_fraction" in j:
                dropped.append(j["dropped_fraction"])
    return {"loss": loss, "seconds": steps[-1][0], "steps": len(steps),
            "tokens_per_second": len(steps) * tokens_per_step / steps[-1][0],
            "dropped": statistics.fmean(dropped) if dropped else 0.0, "curve": steps}


def _loss_at(curve, t):
    before = [loss for (s, loss) in curve if s <= t][-WINDOW:]
    return statistics.fmean(before) if before else float("nan")


def _arms(results):
    """{cf: {"tokens": {seed: loss}, "time": {seed: loss at the seed's equal time}, ...}}"""
    by_seed = {}
    for j in results["jobs"]:
        by_seed.setdefault(j["seed"], {})[j["capacity_factor"]] = j["numbers"]
    arms = {}
    for seed, runs in by_seed.items():
        t_equal = min(n["seconds"] for n in runs.values())
        for cf, n in runs.items():
            a = arms.setdefault(cf, {"tokens": {}, "time": {}, "tps": {}, "dropped": {}})
            a["tokens"][seed] = n["loss"]
            a["time"][seed] = _loss_at(n["curve"], t_equal)
            a["tps"][seed] = n["tokens_per_second"]
            a["dropped"][seed] = n["dropped"]
    return arms


def claims(results):
    arms, rows = _arms(results), []
    base = arms.get(0) or arms.get(0.0)
    for cf in results["order"]:
        if float(cf) == 0 or cf not in arms or base is None:
            continue
        for key, what in (("tokens", "equal tokens"), ("time", "equal training time")):
            s = Summary(paired(arms[cf][key], base[key]))
            rows.append((f"MegaBlocks: dropless SMoE reaches a lower loss than {_name(cf)} at "
                         f"{what} (Δ loss, nats: {_name(cf)} − dropless)", s.fmt(), s.n,
                         s.verdict(+1)))
    return rows


def blocks(results):
    arms = _arms(results)
    base = arms.get(0) or arms.get(0.0)
    table = ["| routing | dropped pairs | tokens/s | val loss at equal tokens | − dropless [95%] | "
             "train loss at equal time | − dropless [95%] |", "|---|---:|---:|---|---|---|---|"]
    for cf in results["order"]:
        if cf not in arms:
            continue
        a = arms[cf]
        row = [_name(cf), f"{100 * statistics.fmean(a['dropped'].values()):.1f}%",
               f"{statistics.fmean(a['tps'].values()):,.0f}",
               Summary(a["tokens"].values()).fmt(4, signed=False)]
        row.append("–" if float(cf) == 0 else Summary(paired(a["tokens"], base["tokens"])).fmt(4))
        row.append(Summary(a["time"].values()).fmt(4, signed=False))
        row.append("–" if float(cf) == 0 else Summary(paired(a["time"], base["time"])).fmt(4))
        table.append("| " + " | ".join(row) + " |")
    md = ["| claim | seeds | mean [95% interval] | verdict |", "|---|---:|---|---|"]
    for claim, measured, n, verdict in claims(results):
        md.append(f"| {claim} | {n} | {measured} | {verdict} |")
    return {"claims": "\n".join(md), "table": "\n".join(table)}
