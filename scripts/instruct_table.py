#!/usr/bin/env python3
"""The tables of scripts/instruct_experiment.sh, from the instruct_eval.json files it leaves.

    python3 scripts/instruct_table.py runs/instruct > runs/instruct/table.md

OUT/<kind>/pretrained/instruct_eval.json, OUT/<kind>/{direct,mixture,mixture+direct}_s<seed>/
instruct_eval/instruct_eval.json, and the ablation runs OUT/<kind>/{freeze_*,noaux}_s0/. Accuracies are exact-match fractions;
"a ± b" is the mean and the sample standard deviation over the seeds present.
"""
import json
import statistics
import sys
from pathlib import Path

TARGET = "language"  # the family of the direct fine-tuning


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def metrics(j):
    fam = {f["name"]: f for f in j["families"]}
    return {
        "target": fam[TARGET]["accuracy"],
        "held_in": j["held_in"]["accuracy"],
        "held_out": j["held_out"]["accuracy"],
        "held_in_loss": j["held_in"]["response_loss"],
        "held_out_loss": j["held_out"]["response_loss"],
    }


def runs(kind_dir, prefix, of=metrics):
    out = []
    for d in sorted(kind_dir.glob(prefix + "_s*")):
        j = load(d / "instruct_eval" / "instruct_eval.json")
        if j:
            out.append(of(j))
    return out


def by_family(j):
    return {f["name"]: f["accuracy"] for f in j["families"]}


def fmt(values, digits=3):
    if not values:
        return "–"
    m = statistics.mean(values)
    if len(values) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/instruct")
    kinds = [k for k in ("dense", "smoe", "monet_vd", "monet_hd", "peer") if (out / k).is_dir()]
    keys = ["target", "held_in", "held_out", "held_in_loss", "held_out_loss"]
    print(f"### Exact match and response loss ({TARGET} = the direct fine-tuning's family)\n")
    print("| kind | condition | seeds | " + " | ".join([
        f"{TARGET} acc", "held-in acc", "held-out acc", "held-in loss", "held-out loss"]) + " |")
    print("|---|---|---:|" + "---:|" * len(keys))
    table = {}
    for kind in kinds:
        pre = load(out / kind / "pretrained" / "instruct_eval.json")
        conds = [("pretrained (zero-shot)", [metrics(pre)] if pre else []),
                 (f"direct ({TARGET} only)", runs(out / kind, "direct")),
                 ("instruction-tuned (mixture)", runs(out / kind, "mixture")),
                 (f"instruction-tuned, then {TARGET}", runs(out / kind, "mixture+direct"))]
        for key, (name, rs) in zip(["pretrained", "direct", "mixture", "mixture+direct"], conds):
            table[(kind, key)] = rs
            print(f"| {kind} | {name} | {len(rs)} | " +
                  " | ".join(fmt([r[k] for r in rs]) for k in keys) + " |")
    print("\n### Gain from instruction tuning (per seed, then mean ± sd)\n")
    print("Accuracy: the mixture minus direct fine-tuning, seed by seed. Loss: the mixture minus the "
          f"pretrained model. Last column: instruction-tuned then {TARGET}, minus direct, on "
          f"{TARGET} (FLAN-MoE's setting iii against i).\n")
    print(f"| kind | Δ held-in acc | Δ held-out acc | Δ held-in loss | Δ held-out loss "
          f"| Δ {TARGET} acc, IT then {TARGET} |")
    print("|---|---:|---:|---:|---:|---:|")
    for kind in kinds:
        p, d, m, md = (table.get((kind, c), [])
                       for c in ("pretrained", "direct", "mixture", "mixture+direct"))
        n, n3 = min(len(d), len(m)), min(len(d), len(md))
        cells = [fmt([m[i][k] - d[i][k] for i in range(n)]) for k in ("held_in", "held_out")]
        cells += [fmt([r[k] - p[0][k] for r in m] if p else []) for k in ("held_in_loss", "held_out_loss")]
        cells.append(fmt([md[i]["target"] - d[i]["target"] for i in range(n3)]))
        print(f"| {kind} | " + " | ".join(cells) + " |")
    print("\n### Exact match per family after instruction tuning (mixture, mean over seeds)\n")
    pre = load(out / kinds[0] / "pretrained" / "instruct_eval.json") if kinds else None
    families = [(f["name"], f["cluster"], f["held_out"]) for f in pre["families"]] if pre else []
    print("| family | cluster | " + " | ".join(kinds) + " |")
    print("|---|---|" + "---:|" * len(kinds))
    per_kind = {kind: runs(out / kind, "mixture", by_family) for kind in kinds}
    for name, cluster, held_out in families:
        print(f"| {name} | {cluster}{' (held out)' if held_out else ''} | " +
              " | ".join(fmt([r[name] for r in per_kind[kind]], 2) for kind in kinds) + " |")
    print("\n### Ablations on the mixture (seed 0; the mixture row is seed 0 of the table above)\n")
    print("| kind | run | held-in acc | held-out acc | held-in loss | held-out loss |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in kinds:
        names = ["mixture_s0"] + sorted(p.name for p in (out / kind).glob("freeze_*_s0")) + ["noaux_s0"]
        for name in names:
            j = load(out / kind / name / "instruct_eval" / "instruct_eval.json")
            if not j or (kind == "dense" and name != "mixture_s0"):
                continue
            r = metrics(j)
            label = {"mixture_s0": "full fine-tuning", "noaux_s0": "no aux loss"}.get(
                name, "freeze " + name[len("freeze_"):-3].replace("+", ","))
            print(f"| {kind} | {label} | " + " | ".join(f"{r[k]:.3f}" for k in keys[1:]) + " |")


if __name__ == "__main__":
    main()
