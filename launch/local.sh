#!/usr/bin/env bash
# Local multi-process launcher: N ranks of `pathvlm train` on this machine, restarted after a preemption.
#
#   launch/local.sh N CONFIG [key=value ...]
#
# Exit status 42 from the job means "checkpointed after SIGUSR1/SIGTERM, requeue me": the launcher starts it
# again (resume: auto continues from the checkpoint) unless PATHVLM_NO_REQUEUE=1. Send SIGUSR1 to this
# script's mpirun (or to the ranks) to checkpoint and stop cleanly. PATHVLM=path overrides the program.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: launch/local.sh N CONFIG [key=value ...]" >&2
  exit 1
fi
RANKS=$1
shift
PATHVLM=${PATHVLM:-build/release/pathvlm}
MPI_FLAGS=(-np "$RANKS" --oversubscribe -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}")
[ "$(id -u)" -eq 0 ] && MPI_FLAGS+=(--allow-run-as-root)
while true; do
  mpirun "${MPI_FLAGS[@]}" "$PATHVLM" train "$@"
  rc=$?
  if [ "$rc" -eq 42 ] && [ "${PATHVLM_NO_REQUEUE:-0}" != 1 ]; then
    echo "launch/local.sh: job checkpointed after a preemption signal (status 42); restarting" >&2
    continue
  fi
  exit "$rc"
done
