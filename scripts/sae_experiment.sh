#!/usr/bin/env bash
# Issue #18's experiment (README "MONET against sparse autoencoders"): sparse autoencoders on the
# dense interpretability model's feed-forward outputs, next to MONET-VD's and PEER's experts, on
# toy4 with one masking rule.
#
#   1. SAEs (TopK) on layer $SWEEP_LAYER's MLP output at every size in $SIZES and every k in $KS,
#      and at size $ALL_F on every other layer too, so that all four MLP outputs can be replaced
#      at once (MONET-VD's routing group spans the four layers);
#   2. the LM loss (`eval`, 64 val windows per domain) of the dense model alone, with each SAE
#      spliced in, with all layers' SAEs spliced in (and with their error terms added back), and
#      of MONET-VD and PEER;
#   3. `mask --domain all --control` on MONET-VD, PEER and every SAE setting (the all-layer SAEs
#      also with the error term added back, so that only the removed features change the model);
#   4. the toy comment purge on MONET-VD, PEER, the all-layer SAEs and the $SWEEP_LAYER sweep at
#      the largest k, all with the error term added back (only the purged features change);
#   5. `experts` on every SAE over the whole val split: each feature's top contexts (experts.html)
#      and the features that never fire on any of its 604,545 tokens.
#
# The three models come from configs/interp_{dense,monet_vd,peer}.json (2000 steps; trained here
# when runs/interp_<kind>/checkpoint is missing, about 5 + 8 + 8 minutes on 2 cores). Every step is
# skipped when its output exists, so a stopped run continues where it was. Outputs: $OUT/sae/
# (the SAEs), $OUT/eval/*.json, $OUT/mask/<name>/, $OUT/purge/<name>/; then
# `python3 scripts/sae_table.py $OUT` prints the README tables.
#
#   scripts/sae_experiment.sh                  # about 35 minutes on 2 cores (models present)
#   SIZES="1024 4096" KS=32 scripts/sae_experiment.sh
set -euo pipefail
MONET=${MONET:-build/monet}
OUT=${OUT:-runs/sae}
STEPS=${STEPS:-1000}
SIZES=${SIZES:-"1024 4096 16384"}
KS=${KS:-"8 32"}
SWEEP_LAYER=${SWEEP_LAYER:-2}
ALL_F=${ALL_F:-4096}
LAYERS=${LAYERS:-"0 1 2 3"}
DENSE=runs/interp_dense
TEXT="--text third_party/corpora/toy4/python.val.txt --score docs/purge/python_comments.score"
mkdir -p "$OUT/sae" "$OUT/eval" "$OUT/mask" "$OUT/purge" "$OUT/experts"

for kind in dense monet_vd peer; do
  [ -d "runs/interp_$kind/checkpoint" ] ||
    "$MONET" train --config "configs/interp_$kind.json" --out "runs/interp_$kind"
done

sae_file() { echo "$OUT/sae/L$1_F$2_k$3/sae.safetensors"; }
train_sae() {  # train_sae LAYER F K
  [ -f "$(sae_file "$1" "$2" "$3")" ] ||
    "$MONET" sae train --ckpt "$DENSE" --layer "$1" --features "$2" --k "$3" --steps "$STEPS" \
      --windows 16 --out "$OUT/sae/L$1_F$2_k$3"
}
all_layers() {  # all_layers K: --sae for every layer's SAE of size ALL_F
  local args=""
  for l in $LAYERS; do args="$args --sae $(sae_file "$l" "$ALL_F" "$1")"; done
  echo "$args"
}
run_eval() {  # run_eval NAME CKPT [OPTIONS...]
  local name=$1 ckpt=$2
  shift 2
  [ -f "$OUT/eval/$name.json" ] ||
    "$MONET" eval --json --ckpt "$ckpt" --windows 64 "$@" > "$OUT/eval/$name.json"
}
run_mask() {  # run_mask NAME CKPT [OPTIONS...]
  local name=$1 ckpt=$2
  shift 2
  [ -f "$OUT/mask/$name/mask.json" ] ||
    "$MONET" mask --ckpt "$ckpt" --domain all --control --out "$OUT/mask/$name" "$@" > /dev/null
}
run_purge() {  # run_purge NAME CKPT [OPTIONS...]
  local name=$1 ckpt=$2
  shift 2
  # shellcheck disable=SC2086
  [ -f "$OUT/purge/$name/purge.json" ] ||
    "$MONET" purge --ckpt "$ckpt" $TEXT --out "$OUT/purge/$name" "$@" > /dev/null
}

# 1. the SAEs
for f in $SIZES; do for k in $KS; do train_sae "$SWEEP_LAYER" "$f" "$k"; done; done
for l in $LAYERS; do for k in $KS; do train_sae "$l" "$ALL_F" "$k"; done; done

each_setting() {  # each_setting FN: FN NAME CKPT [OPTIONS...] for MONET-VD, PEER and every SAE setting
  "$1" monet_vd runs/interp_monet_vd
  "$1" peer runs/interp_peer
  for f in $SIZES; do for k in $KS; do
    "$1" "L${SWEEP_LAYER}_F${f}_k$k" "$DENSE" --sae "$(sae_file "$SWEEP_LAYER" "$f" "$k")"
  done; done
  for k in $KS; do
    # shellcheck disable=SC2046
    "$1" "all_F${ALL_F}_k$k" "$DENSE" $(all_layers "$k")
    # shellcheck disable=SC2046
    "$1" "all_F${ALL_F}_k${k}_error" "$DENSE" $(all_layers "$k") --sae-error
  done
}

# 2. LM loss, 3. domain masking
run_eval dense "$DENSE"
each_setting run_eval
each_setting run_mask

# 4. purging
kmax=$(echo "$KS" | tr ' ' '\n' | sort -n | tail -1)
run_purge monet_vd runs/interp_monet_vd
run_purge peer runs/interp_peer
for f in $SIZES; do
  run_purge "L${SWEEP_LAYER}_F${f}_k${kmax}_error" "$DENSE" \
    --sae "$(sae_file "$SWEEP_LAYER" "$f" "$kmax")" --sae-error
done
for k in $KS; do
  # shellcheck disable=SC2046
  run_purge "all_F${ALL_F}_k${k}_error" "$DENSE" $(all_layers "$k") --sae-error
done
# 5. the features of every SAE
for dir in "$OUT"/sae/L*_F*_k*; do
  name=$(basename "$dir")
  [ -f "$OUT/experts/$name/experts.json" ] ||
    "$MONET" experts --ckpt "$DENSE" --sae "$dir/sae.safetensors" --out "$OUT/experts/$name" > /dev/null
done
echo "sae_experiment: done in $SECONDS s" >&2
