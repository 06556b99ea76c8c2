#!/usr/bin/env bash
# The experiment pipeline end to end in its quick form (CTest's Experiment.QuickPipeline): every
# declared experiment runs (a few steps, one seed) into a scratch results folder, and every
# results block of README.md and docs/ is rendered from it into a scratch copy of the documents.
#   quick_pipeline.sh MONET SOURCE_DIR SCRATCH [HAVE_MPI]
# HAVE_MPI 0 (a build without MPI, such as the sanitizer build) skips the MPI experiment.
set -euo pipefail
monet=$1 src=$2 scratch=$3 have_mpi=${4:-1}
rm -rf "$scratch" && mkdir -p "$scratch"
cd "$src"
skip=()
if [[ $have_mpi == 0 ]] || ! command -v mpirun >/dev/null; then
  skip+=(mpi)
  echo "quick pipeline: monet built without MPI, or no mpirun: the mpi experiment is skipped" >&2
fi
for f in experiments/*.json; do
  [[ " ${skip[*]} " == *" $(basename "$f" .json) "* ]] && continue
  python3 scripts/experiment.py run "$(basename "$f" .json)" --quick --monet "$monet" \
    --results "$scratch/results"
done
python3 scripts/experiment.py render --results "$scratch/results" --out "$scratch/docs"
for f in experiments/*.json; do
  name=$(basename "$f" .json)
  [[ " ${skip[*]} " == *" $name "* ]] && continue
  grep -rq "results/$name/results.json" "$scratch/docs" ||
    { echo "no block of '$name' was rendered from the quick results" >&2; exit 1; }
done
echo "quick pipeline: $(ls experiments/*.json | wc -l) experiment(s) run and rendered"
