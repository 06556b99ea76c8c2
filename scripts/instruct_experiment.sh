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
#   mixture+direct  the mixture run, then fine-tuned on language as `direct` was (FLAN-MoE's
#                third setting: instruction tuning, then the task), seeds 0 1 2
#   ablations    (sparse kinds, seed 0) mixture with --freeze routers | experts | non-experts |
#                routers,experts, and with --no-aux
# then instruct-eval on each, and scripts/instruct_table.py writes runs/instruct/table.md.
# A run whose instruct_eval.json exists is kept, so an interrupted experiment continues where it
# stopped (delete runs/instruct to start over).
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

finetune() {  # finetune FROM NAME ARGS...: fine-tune FROM into OUT/KIND/NAME, then evaluate
  local from=$1 run=$OUT/$kind/$2
  shift 2
  [ -f "$run/instruct_eval/instruct_eval.json" ] && return
  "$MONET" finetune --ckpt "$from" --data "$DATA" --out "$run" --steps "$STEPS" --force "$@" \
    > /dev/null
  "$MONET" instruct-eval --ckpt "$run" --data "$DATA" 2> /dev/null | tail -3
}

for kind in $KINDS; do
  [ -f "runs/interp_$kind/checkpoint/model.safetensors" ] ||
    "$MONET" train --config "configs/interp_$kind.json" --out "runs/interp_$kind" > /dev/null
  echo "== $kind: pretrained, zero-shot ($(($(date +%s) - start)) s)"
  [ -f "$OUT/$kind/pretrained/instruct_eval.json" ] ||
    "$MONET" instruct-eval --ckpt "runs/interp_$kind" --data "$DATA" --out "$OUT/$kind/pretrained" \
      2> /dev/null | tail -3
  pre=runs/interp_$kind
  for seed in $SEEDS; do
    echo "== $kind seed $seed: direct, mixture, mixture+direct ($(($(date +%s) - start)) s)"
    finetune "$pre" "direct_s$seed" --families language --seed "$seed"
    finetune "$pre" "mixture_s$seed" --seed "$seed"
    finetune "$OUT/$kind/mixture_s$seed" "mixture+direct_s$seed" --families language --seed "$seed"
  done
  if [ "$kind" != dense ]; then
    for freeze in routers experts non-experts routers,experts; do
      echo "== $kind: mixture, --freeze $freeze ($(($(date +%s) - start)) s)"
      finetune "$pre" "freeze_${freeze/,/+}_s0" --freeze "$freeze" --seed 0
    done
    echo "== $kind: mixture, --no-aux ($(($(date +%s) - start)) s)"
    finetune "$pre" noaux_s0 --no-aux --seed 0
  fi
done
python3 scripts/instruct_table.py "$OUT" > "$OUT/table.md"
cat "$OUT/table.md"
echo "instruct experiment: $(($(date +%s) - start)) s"
