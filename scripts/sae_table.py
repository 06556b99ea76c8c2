#!/usr/bin/env python3
"""The tables of scripts/sae_experiment.sh, from the files it leaves in OUT (default runs/sae).

    python3 scripts/sae_table.py runs/sae > runs/sae/table.md

OUT/sae/L<l>_F<F>_k<k>/sae.json (each SAE), OUT/eval/<name>.json (`eval --json`),
OUT/mask/<name>/mask.json and OUT/purge/<name>/purge.json. Δ bpb is after − before on the val
split; a mask row's "before" is the model as spliced (the reconstruction in place, or with the
error term added back for the *_error settings, which is the plain dense model).
"""
import json
import re
import statistics
import sys
from pathlib import Path


def load(path):
    return json.loads(path.read_text()) if path.exists() else None


def label(name):
    """A setting's name as the tables show it."""
    fixed = {"dense": "dense", "monet_vd": "MONET-VD", "peer": "PEER"}
    if name in fixed:
        return fixed[name]
    m = re.fullmatch(r"L(\d+)_F(\d+)_k(\d+)(_error)?", name)
    if m:
        err = ", error term" if m.group(4) else ""
        return f"dense + SAE layer {m.group(1)}, F {m.group(2)}, k {m.group(3)}{err}"
    m = re.fullmatch(r"all_F(\d+)_k(\d+)(_error)?", name)
    if m:
        err = ", error term" if m.group(3) else ""
        return f"dense + SAEs on all 4 layers, F {m.group(1)}, k {m.group(2)}{err}"
    return name


def order(name):
    """MONET-VD, PEER, then the SAE settings by layer scope, size, k."""
    head = {"dense": 0, "monet_vd": 1, "peer": 2}
    if name in head:
        return (head[name], 0, 0, name)
    nums = [int(x) for x in re.findall(r"\d+", name)]
    return (3 if name.startswith("L") else 4, nums[-2] if len(nums) >= 2 else 0, nums[-1], name)


def sae_table(out):
    """NMSE and L0 on sae train's val windows; the features that never fire from `experts` over
    the whole val split when its report is there (else sae train's count on its windows)."""
    rows = []
    for p in sorted((out / "sae").glob("*/sae.json"), key=lambda p: order(p.parent.name)):
        j = json.loads(p.read_text())
        ex = load(out / "experts" / p.parent.name / "experts.json")
        if ex:
            site = ex["sites"][0]
            dead, tokens = site["unused"], sum(site["tokens"])
        else:
            dead, tokens = j["val"]["dead"], j["val"]["tokens"]
        rows.append(
            f"| {j['layer']} | {j['features']} | {j['k']} | {j['train_tokens'] / 1e6:.2f}M | "
            f"{j['val']['nmse']:.4f} | {j['val']['l0']:.1f} | {dead} "
            f"({100 * dead / j['features']:.1f}%) of {tokens:,} | {j['seconds']:.0f} s |")
    return ("| layer | F | k | train tokens | val NMSE | val L0 | never fire, on val tokens | "
            "time |\n|---|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n")


def eval_table(out):
    evals = {p.stem: load(p) for p in (out / "eval").glob("*.json")}
    base = evals.get("dense")
    if not base:
        return "(no eval/dense.json)\n"
    ref = base["results"][-1]["bpb"]
    rows = []
    for name in sorted(evals, key=order):
        r = evals[name]["results"][-1]
        rows.append(f"| {label(name)} | {r['loss']:.4f} | {r['bpb']:.4f} | {r['bpb'] - ref:+.4f} |")
    return ("| model | val loss (nats) | val bpb | Δ bpb vs dense |\n|---|---|---|---|\n" +
            "\n".join(rows) + "\n")


def mask_summary(j):
    """Per masked domain: experts removed (all sites), Δ bpb on it, mean Δ on the others, Δ on it
    under the random control."""
    before = {e["domain"]: e["bpb"] for e in j["before"]}
    domains = j["domains"]
    rows = {r["masked"]: r for r in j["rows"]}
    out = []
    for d in domains:
        r, c = rows[d], rows.get(f"random (as {d})")
        delta = {e["domain"]: e["bpb"] - before[e["domain"]] for e in r["after"]}
        others = statistics.mean(delta[o] for o in domains if o != d)
        ctrl = None
        if c:
            ctrl = next(e["bpb"] for e in c["after"] if e["domain"] == d) - before[d]
        out.append((sum(r["removed"]), delta[d], others, ctrl))
    return out


def mask_table(out):
    lines = []
    for p in sorted((out / "mask").glob("*/mask.json"), key=lambda p: order(p.parent.name)):
        j = json.loads(p.read_text())
        s = mask_summary(j)
        total = sum(site["experts"] for site in j["sites"])
        m = statistics.mean(x[1] for x in s)
        o = statistics.mean(x[2] for x in s)
        c = statistics.mean(x[3] for x in s) if all(x[3] is not None for x in s) else float("nan")
        lines.append(
            f"| {label(p.parent.name)} | {' / '.join(str(x[0]) for x in s)} of {total} | "
            f"{'/'.join(f'{x[1]:+.3f}' for x in s)} | {'/'.join(f'{x[2]:+.3f}' for x in s)} | "
            f"{'/'.join(f'{x[3]:+.3f}' for x in s)} | {m:+.3f} | {o:+.3f} | {c:+.3f} |")
    return ("| model | experts removed (cpp / english / java / python) | Δ bpb, masked domain | "
            "Δ bpb, other domains (mean) | Δ bpb, masked domain, random control | mean masked | "
            "mean others | mean control |\n|---|---|---|---|---|---|---|---|\n" +
            "\n".join(lines) + "\n")


def purge_table(out, thresholds=(0.1, 0.05)):
    lines = []
    for p in sorted((out / "purge").glob("*/purge.json"), key=lambda p: order(p.parent.name)):
        j = json.loads(p.read_text())
        total = sum(site["experts"] for site in j["sites"])
        tb = j["text_before"]
        cells = []
        for t in thresholds:
            r = next((r for r in j["rows"] if abs(r["threshold"] - t) < 1e-12), None)
            if r is None:
                cells.append("–")
                continue
            cells.append(f"{sum(r['removed'])} ({100 * r['fraction']:.1f}%): "
                         f"{r['text']['high'] - tb['high']:+.3f} vs {r['text']['low'] - tb['low']:+.3f}")
        lines.append(f"| {label(p.parent.name)} | {total} | " + " | ".join(cells) + " |")
    head = " | ".join(f"R = {t}: removed, Δ loss comment vs other bytes" for t in thresholds)
    return (f"| model | experts | {head} |\n|---|---|" + "---|" * len(thresholds) + "\n" +
            "\n".join(lines) + "\n")


def main():
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/sae")
    print("#### The SAEs (TopK, on the MLP output; val scores)\n")
    print(sae_table(out))
    print("#### LM loss (64 val windows per domain, all domains)\n")
    print(eval_table(out))
    print("#### Domain masking (ratio:2, `--control`)\n")
    print(mask_table(out))
    print("#### Purging (Python comments)\n")
    print(purge_table(out))


if __name__ == "__main__":
    main()
