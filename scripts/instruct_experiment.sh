#!/usr/bin/env bash
# Issue #17's experiment (README "Instruction tuning"): FLAN-MoE's question at toy scale — do
# sparse models gain more from instruction tuning than dense ones?
#
# For dense, SMoE and MONET-VD of the same active width (configs/interp_{dense,smoe,monet_vd}.json,
# 2000 pretraining steps; trained here first when runs/interp_<kind> holds no run), on the
# instruction mixture data/toy4_instruct (12 held-in families in 3 clusters, 4 held-out families):
#   pretrained   the pretrained model, prompted zero-shot
#   direct       fine-tuned on one family (language) only, STEPS steps, seeds 0 1 2
#   mixture      instruction-tuned on the 12 held-in families, STEPS steps, seeds 0 1 2
#   ablations    (sparse kinds, seed 0) mixture with --freeze routers | experts | non-experts |
#                routers,experts, and with --no-aux
# then instruct-eval on each, and scripts/instruct_table.py writes runs/instruct/table.md.
#
#   scripts/instruct_experiment.sh            # everything (see the README for the wall time)
#   STEPS=100 SEEDS="0" KINDS=dense scripts/instruct_experiment.sh   # a quick look
#
# Run from the repository root after ./setup.sh (or set MONET=path/to/monet).
set -euo pipefail
MONET=${MONET:-build/monet}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
KINDS=${KINDS:-"dense smoe monet_vd"}
SEEDS=${SEEDS:-"0 1 2"}
STEPS=${STEPS:-300}
DATA=${DATA:-data/toy4_instruct}
OUT=${OUT:-runs/instruct}
start=$(date +%s)

finetune() {  # finetune KIND NAME ARGS...: fine-tune runs/interp_KIND into OUT/KIND/NAME, evaluate
  local kind=$1 name=$2 run=$OUT/$1/$2
  shift 2
  "$MONET" finetune --ckpt "runs/interp_$kind" --data "$DATA" --out "$run" --steps "$STEPS" \
    --force "$@" > /dev/null
  "$MONET" instruct-eval --ckpt "$run" --data "$DATA" 2> /dev/null | tail -4
}

for kind in $KINDS; do
  [ -f "runs/interp_$kind/checkpoint/model.safetensors" ] ||
    "$MONET" train --config "configs/interp_$kind.json" --out "runs/interp_$kind" > /dev/null
  echo "== $kind: pretrained, zero-shot ($(($(date +%s) - start)) s)"
  "$MONET" instruct-eval --ckpt "runs/interp_$kind" --data "$DATA" --out "$OUT/$kind/pretrained" \
    2> /dev/null | tail -4
  for seed in $SEEDS; do
    echo "== $kind seed $seed: direct (language only), then mixture ($(($(date +%s) - start)) s)"
    finetune "$kind" "direct_s$seed" --families language --seed "$seed"
    finetune "$kind" "mixture_s$seed" --seed "$seed"
  done
  if [ "$kind" != dense ]; then
    for freeze in routers experts non-experts routers,experts; do
      echo "== $kind: mixture, --freeze $freeze ($(($(date +%s) - start)) s)"
      finetune "$kind" "freeze_${freeze/,/+}_s0" --freeze "$freeze" --seed 0
    done
    echo "== $kind: mixture, --no-aux ($(($(date +%s) - start)) s)"
    finetune "$kind" noaux_s0 --no-aux --seed 0
  fi
done
python3 scripts/instruct_table.py "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
echo "instruct experiment: $(($(date +%s) - start)) s"
