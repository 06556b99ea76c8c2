#!/usr/bin/env bash
# The MegaBlocks claim (Gale et al. 2022, arXiv 2211.15841; README "Dropless against capacity
# factors"): dropless SMoE routing against capacity factors 1.0, 1.25 and 2.0, at the bench config
# (configs/bench_smoe_d256.json: 8 experts, Switch top-1, d = 256, 4 layers, 16 × 128 tokens).
#
# For each routing: the training step's tokens/s (one `monet bench` run over the four, so the
# ratios come from one run), then a training run of STEPS steps from the same seed (dropped
# fraction of the routed pairs, averaged over the logged steps and layers, and the mixed
# validation loss at the end). Writes runs/megablocks/{configs/,bench.md,<routing>/,table.md}
# and prints the table. About 4 × (STEPS × 0.3 s) + 2 min on 2 cores.
#
#   scripts/megablocks.sh                 # STEPS=300
#   STEPS=1000 scripts/megablocks.sh
#
# Run from the repository root after ./setup.sh (or set MONET=path/to/monet).
set -euo pipefail
MONET=${MONET:-build/monet}
STEPS=${STEPS:-300}
out=runs/megablocks
mkdir -p "$out/configs"
routings=(dropless cf1.0 cf1.25 cf2.0)
python3 - "$out/configs" "$STEPS" <<'EOF'
import json, sys
folder, steps = sys.argv[1], int(sys.argv[2])
base = json.load(open("configs/bench_smoe_d256.json"))
for name, cf in [("dropless", 0), ("cf1.0", 1.0), ("cf1.25", 1.25), ("cf2.0", 2.0)]:
    base["model"]["ffn"]["capacity_factor"] = cf
    base["run"].update(steps=steps, eval_every=0, eval_windows=64, log_every=10)
    json.dump(base, open(f"{folder}/smoe_{name}.json", "w"), indent=2)
EOF
configs=()
for r in "${routings[@]}"; do configs+=(--config "$out/configs/smoe_$r.json"); done
"$MONET" bench "${configs[@]}" --steps 10 --rounds 3 | tee "$out/bench.md"
for r in "${routings[@]}"; do
  "$MONET" train --config "$out/configs/smoe_$r.json" --out "$out/$r" --force
done
python3 - "$out" "${routings[@]}" <<'EOF' | tee "$out/table.md"
import json, re, sys
out, routings = sys.argv[1], sys.argv[2:]
rows = {}
for line in open(f"{out}/bench.md"):
    m = re.match(r"\| smoe_(\S+) \| smoe \|(.*)", line)
    if m:
        cells = [c.strip() for c in m.group(2).split("|")]
        rows[m.group(1)] = float(cells[5])  # C++ tokens/s
print("| routing | capacity factor | tokens/s | vs dropless | dropped pairs (mean over training) "
      "| val loss (mixed) | val bpb (mixed) |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in routings:
    drops, final = [], None
    for line in open(f"{out}/{r}/log.jsonl"):
        j = json.loads(line)
        if "dropped_fraction" in j:
            drops.append(j["dropped_fraction"])
        if "eval" in j:
            final = j["eval"]["all"]
    cf = "0 (dropless)" if r == "dropless" else r[2:]
    tps = rows[r]
    print(f"| {r} | {cf} | {tps:.0f} | {tps / rows['dropless']:.2f}× | "
          f"{100 * sum(drops) / max(1, len(drops)):.1f}% | {final['loss']:.4f} | {final['bpb']:.4f} |")
EOF
