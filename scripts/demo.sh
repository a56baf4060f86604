#!/usr/bin/env bash
# The README demo: build pathvlm, then train the toy `lm` task on 2 CPU ranks and watch the loss fall.
# (Until the CLIP demo lands this is the smallest real training the engine can do.)
#   scripts/demo.sh [key=value ...]      e.g. scripts/demo.sh train.steps=100
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh build/release
MPI_FLAGS=(-np 2 --oversubscribe -x OMP_NUM_THREADS=1)
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
exec mpirun "${MPI_FLAGS[@]}" build/release/pathvlm train configs/demo/lm_tiny.yaml run.name=lm_tiny_demo \
  checkpoint.resume=none "$@"
