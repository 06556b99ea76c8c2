#!/usr/bin/env bash
# A rank that fails brings the whole job down with its rank and message, never a hang:
#   failing_rank.sh "EXPECTED LINE" LAUNCHER... PROGRAM [ARGS...]
# runs the program under the launcher (ctest's TIMEOUT catches a hang) and expects a non-zero
# status and the failing rank's error line.
set -uo pipefail
expected=$1
shift
out=$("$@" 2>&1)
status=$?
echo "$out"
[ "$status" -ne 0 ] || { echo "failing_rank: the job exited 0"; exit 1; }
grep -qF "$expected" <<< "$out" || { echo "failing_rank: no line '$expected'"; exit 1; }
echo "failing_rank: the job ended with status $status"
