#!/usr/bin/env bash
# `mpirun -np 2 monet train` end to end:  train_cli.sh MONET SOURCE_DIR LAUNCHER...
# A short run on the committed toy corpus: rank 0 alone prints (one first line, one "done" line),
# the progress and log show the rank count and the bytes sent; a batch that does not split over
# the ranks and a command that runs in one process are refused with one line and status 1.
set -uo pipefail
monet=$1 src=$2
shift 2
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
fail() { echo "train_cli: $*"; exit 1; }
sets=(--set run.steps=6 --set run.batch=4 --set optim.warmup_steps=0 --set model.d=32 --set model.layers=1
      --set model.context=32 --set run.eval_every=0
      --set run.eval_windows=2 --set run.log_every=2 --set run.data="$src/third_party/corpora/toy4")

out=$("$@" "$monet" train --config "$src/configs/tiny.json" --out "$dir/run" "${sets[@]}" 2>&1)
status=$?
echo "$out"
[ "$status" -eq 0 ] || fail "mpirun monet train exited $status"
grep -q "MPI, 2 ranks" <<< "$out" || fail "no line naming the 2 ranks"
grep -q "data parallel, 2 of each batch's 4 windows per rank" <<< "$out" || fail "no share line"
grep -q "| 2 ranks" <<< "$out" || fail "the step lines lack the rank count"
[ "$(grep -c '^done: 6 steps' <<< "$out")" -eq 1 ] || fail "not exactly one 'done' line"
[ "$(grep -c '^model:' <<< "$out")" -eq 1 ] || fail "not exactly one 'model' line"
[ "$(grep -c '"ranks":2' "$dir/run/log.jsonl")" -eq 6 ] || fail "log.jsonl lacks ranks: 2"
grep -q '"all_reduce_bytes":[1-9]' "$dir/run/log.jsonl" || fail "log.jsonl lacks the bytes reduced"
[ -f "$dir/run/checkpoint/model.safetensors" ] || fail "no checkpoint"
grep -q "warning" <<< "$out" && fail "a warning with one thread per rank"

# As many threads per rank as the machine has cores: the ranks would spin against each other.
cores=$(getconf _NPROCESSORS_ONLN)  # not nproc, which reads OMP_NUM_THREADS
out=$(OMP_NUM_THREADS=$cores "$@" "$monet" train --config "$src/configs/tiny.json" \
  --out "$dir/many" "${sets[@]}" --set run.steps=1 2>&1)
echo "$out"
grep -q "monet: warning: 2 ranks on this machine × $cores threads each > $cores cores" \
  <<< "$out" || fail "no warning about the threads"

# Expert parallel: the SMoE's 8 experts, 4 per rank.
out=$("$@" "$monet" train --config "$src/configs/tiny_smoe.json" --out "$dir/ep" "${sets[@]}" \
  --set run.expert_parallel=true 2>&1)
status=$?
echo "$out"
[ "$status" -eq 0 ] || fail "mpirun monet train (expert parallel) exited $status"
grep -q "expert parallel, 4 of 8 experts per rank in 1 SMoE layers" <<< "$out" ||
  fail "no line naming the expert shards"
[ -f "$dir/ep/checkpoint/model.safetensors" ] || fail "no expert parallel checkpoint"
grep -q '"all_to_all_bytes":[1-9]' "$dir/ep/log.jsonl" || fail "log.jsonl lacks the tokens sent"

out=$("$@" "$monet" train --config "$src/configs/tiny.json" --out "$dir/odd" "${sets[@]}" \
  --set run.batch=3 2>&1)
status=$?
echo "$out"
[ "$status" -eq 1 ] || fail "batch 3 on 2 ranks exited $status, expected 1"
grep -q "config key 'run.batch' = 3: data parallel training splits each batch evenly" <<< "$out" ||
  fail "no line naming run.batch"

out=$("$@" "$monet" eval --ckpt "$dir/run" 2>&1)
status=$?
echo "$out"
[ "$status" -eq 1 ] || fail "eval under mpirun exited $status, expected 1"
grep -q "eval: runs in one process; under mpirun (2 ranks) only train and finetune do" <<< "$out" ||
  fail "no line refusing eval"
echo "train_cli: mpirun monet train on 2 ranks works and refuses bad input"
