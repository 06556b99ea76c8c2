#!/usr/bin/env bash
# Issue #7's experiment (README "Interpretability"): train MONET-VD, MONET-HD, SMoE and PEER on
# the bundled toy4 corpus (configs/interp_*.json, 2000 steps of 16 × 128 tokens each, about
# 8-11 minutes each on 2 cores), keeping snapshots at 500 and 1000 steps (--stop-at, then
# --resume: the run continues bit for bit), then for every kind: the expert report, domain
# masking of every domain with a random control, and the toy comment purge.
#
#   scripts/interp_experiment.sh            # the four kinds (about an hour on 2 cores)
#   scripts/interp_experiment.sh steps      # masking on the 500- and 1000-step snapshots (~25 min)
#   scripts/interp_experiment.sh sqrt_n     # MONET-VD with √N = 16, 32 (m = 32, 16: √N·m = 4d; ~25 min)
#
# Outputs go to runs/interp_<kind>/{experts,mask_all,purge}/ and runs/interp_<kind>_s<steps>/.
# Run from the repository root after ./setup.sh (or set MONET=path/to/monet).
set -euo pipefail
MONET=${MONET:-build/monet}
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-2}
KINDS=${KINDS:-"monet_vd monet_hd smoe peer"}

snapshot() {  # snapshot RUN STEPS: a copy of RUN's checkpoint as RUN_s<STEPS>/checkpoint
  rm -rf "$1_s$2" && mkdir -p "$1_s$2" && cp -r "$1/checkpoint" "$1_s$2/checkpoint"
}

analyse() {  # analyse RUN: the three commands on one checkpoint
  "$MONET" experts --ckpt "$1"
  "$MONET" mask --ckpt "$1" --domain all --control
  "$MONET" purge --ckpt "$1" --text third_party/corpora/toy4/python.val.txt \
    --score docs/purge/python_comments.score
}

case "${1:-kinds}" in
  kinds)
    for kind in $KINDS; do
      run=runs/interp_$kind
      "$MONET" train --config "configs/interp_$kind.json" --out "$run" --stop-at 500
      snapshot "$run" 500
      "$MONET" train --resume "$run" --stop-at 1000
      snapshot "$run" 1000
      "$MONET" train --resume "$run"
      analyse "$run"
    done
    ;;
  steps)
    for kind in $KINDS; do
      for s in 500 1000; do "$MONET" mask --ckpt "runs/interp_${kind}_s$s" --domain all --control; done
    done
    ;;
  sqrt_n)
    for s in 16 32; do
      run=runs/interp_monet_vd_sqrtn$s
      "$MONET" train --config configs/interp_monet_vd.json --out "$run" \
        --set model.ffn.sqrt_n=$s --set model.ffn.dim=$((512 / s))
      "$MONET" mask --ckpt "$run" --domain all --control
    done
    ;;
  *)
    echo "usage: $0 [kinds|steps|sqrt_n]" >&2
    exit 1
    ;;
esac
