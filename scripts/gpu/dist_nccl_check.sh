#!/usr/bin/env bash
# GPU checks owed by the dist component (run on the GPU machine from the repository root):
#   1. the build finds NCCL (PATHVLM_HAVE_NCCL) against libtorch 2.x + CUDA;
#   2. NcclComm.* on one GPU: collectives, stream ordering, the Reducer on CUDA, and the watchdog ending a
#      collective stuck behind a busy stream with "allreduce #1 ... timed out";
#   3. the MPI tests still pass there (MpiComm.*, MpiReducer.*, the killed/stuck rank tests);
#   4. bench_allreduce: NCCL on the GPU, and MPI on 2 CPU ranks, written to $OUT (or build/gpu/).
# One GPU only: multi-rank NCCL bus bandwidth needs a multi-GPU node (mpirun -np 8 ... --backend nccl).
set -euo pipefail
BUILD=${BUILD:-build/gpu}
RESULTS=${OUT:-$BUILD}
mkdir -p "$RESULTS"
PREFIX=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$PREFIX" | tee "$RESULTS/dist_cmake.txt"
grep -q "nccl=ON" "$RESULTS/dist_cmake.txt" || { echo "NCCL not found by CMake" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" --target test_dist bench_allreduce
MPIRUN="mpirun --oversubscribe --allow-run-as-root"
"$BUILD/tests/test_dist" --gtest_filter='NcclComm.*:DistEnv.*:AssignBuckets.*:Reducer.*:CommTimeout.*' \
  2>&1 | tee "$RESULTS/dist_tests_gpu.txt"
$MPIRUN -np 2 "$BUILD/tests/test_dist" --gtest_filter='MpiComm.*:MpiReducer.*' 2>&1 | tail -5
$MPIRUN -np 3 "$BUILD/tests/test_dist" --gtest_filter='MpiComm.*:MpiReducer.*' 2>&1 | tail -5
"$BUILD/benchmarks/bench_allreduce" --backend nccl --max-mb 256 2>&1 | tee "$RESULTS/bench_allreduce_nccl_1gpu.md"
$MPIRUN -np 2 -x OMP_NUM_THREADS=4 "$BUILD/benchmarks/bench_allreduce" --backend mpi 2>&1 \
  | tee "$RESULTS/bench_allreduce_mpi_2ranks.md"
