#!/usr/bin/env bash
# A rank that fails brings the whole job down with its rank and message, never a hang: runs
# `comm_check fail` under the launcher given as arguments (ctest's TIMEOUT catches a hang) and
# expects a non-zero status and rank 1's error line.
set -uo pipefail
out=$("$@" fail 2>&1)
status=$?
echo "$out"
[ "$status" -ne 0 ] || { echo "failing_rank: the job exited 0"; exit 1; }
grep -q "comm_check: rank 1: error: rank 1 fails on purpose" <<< "$out" ||
  { echo "failing_rank: no error line from rank 1"; exit 1; }
echo "failing_rank: the job ended with status $status"
