#!/usr/bin/env bash
# The device check: builds pathvlm with CUDA + NCCL and verifies everything that needs the GPU machine, in one
# command of at most 8 minutes, everything under $OUT. Each check has its own time limit and one line in the
# summary (pass / fail / skip, a figure), printed last and written to $OUT/summary.md; one failure does not stop
# the others.
#
#   OUT=/path scripts/gpu/check.sh            # on the GPU machine, from the repository root
#   scripts/gpu/check.sh --cpu [--build DIR]  # dry run with the configured CPU build (tiny shapes, python
#                                             # checks skipped with their reason): the ctest gpu_check_dry_run
#
# Before a device run, here: scripts/gpu/prepare.sh (the .deb packages the device may lack, build/gpu-deps/,
# carried with the working tree). Order: deps, configure, build of what the first checks need, the unit tests,
# the CLIP training benchmark of pathvlm and of the python peers (nothing else running), then the rest while the
# remaining targets build. The budget (CHECK_BUDGET_S, 450 s) leaves the device call's margin; a check that would
# run past it is skipped as "out of time".
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1

MODE=gpu
BUILD=
while [ $# -gt 0 ]; do
  case $1 in
    --cpu) MODE=cpu ;;
    --build) BUILD=$2; shift ;;
    *) echo "check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -n "$BUILD" ] || { [ "$MODE" = cpu ] && BUILD=build/release || BUILD=build/gpu; }
export MODE BUILD ROOT
export OUT=${OUT:-$ROOT/build/gpu-check-$MODE}
mkdir -p "$OUT"
export WORK="$OUT/work"
rm -rf "$WORK" && mkdir -p "$WORK"
BUDGET=${CHECK_BUDGET_S:-450}
START=$(date +%s)
export VOCAB="$ROOT/../shared/data/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz"
export PYTHONPATH="$ROOT/scripts/gpu${PYTHONPATH:+:$PYTHONPATH}"
ROWS=()
FAILED=0

# step NAME LIMIT_S FUNCTION: runs FUNCTION in its own bash under `timeout`, output in $OUT/NAME.log. The function
# writes its figure to $FIGURE; exit 0 = pass, 77 = skip (the figure says why), anything else = fail.
step() {
  local name=$1 limit=$2 fn=$3 left status figure
  left=$((BUDGET - ($(date +%s) - START)))
  if [ "$left" -lt 15 ]; then
    ROWS+=("| $name | skip | out of time (budget ${BUDGET} s) | 0 |")
    return
  fi
  [ "$limit" -gt "$left" ] && limit=$left
  export FIGURE="$OUT/$name.figure"
  rm -f "$FIGURE"
  local t0=$(date +%s)
  timeout -k 5 "$limit" bash -c "source '$ROOT/scripts/gpu/check_steps.sh'; $fn" >"$OUT/$name.log" 2>&1
  status=$?
  local seconds=$(($(date +%s) - t0))
  figure=$(cat "$FIGURE" 2>/dev/null | tr '\n|' ' /' | cut -c1-200)
  case $status in
    0) ROWS+=("| $name | pass | $figure | $seconds |") ;;
    77) ROWS+=("| $name | skip | $figure | $seconds |") ;;
    124 | 137) ROWS+=("| $name | FAIL | timed out after $limit s; $(tail -n 1 "$OUT/$name.log" | cut -c1-120) | $seconds |")
      FAILED=$((FAILED + 1)) ;;
    *) ROWS+=("| $name | FAIL | exit $status; ${figure:-$(tail -n 1 "$OUT/$name.log" | tr '|' '/' | cut -c1-160)} | $seconds |")
      FAILED=$((FAILED + 1)) ;;
  esac
  echo "[check] $name: ${ROWS[-1]}"
}

# ---- dependencies (in this shell: they set the environment of everything after) -------------------------------
if [ "$MODE" = gpu ]; then
  source "$ROOT/scripts/gpu/unpack_deps.sh" "$ROOT/build/gpu-deps" "$ROOT/build/gpu-prefix"
  ROWS+=("| deps | pass | $DEPS_REPORT | $(($(date +%s) - START)) |")
  # NCCL: the python wheel (nvidia/nccl/lib/libnccl.so.2, no libnccl.so) on sys.path, else the system's.
  NCCL_SO=$(python3 -c 'import glob, os, sys
hits = [h for p in sys.path if os.path.isdir(p) for h in glob.glob(os.path.join(p, "nvidia", "**", "libnccl.so.2"), recursive=True)]
print(hits[0] if hits else "")' 2>/dev/null)
  [ -n "$NCCL_SO" ] || NCCL_SO=$(ldconfig -p | awk '$1 == "libnccl.so.2" {print $NF; exit}')
  NCCL_HOME=$(dirname "$(dirname "${NCCL_SO:-/nonexistent/lib/x}")")
  export NCCL_HOME NCCL_SO
  export DEPS_CMAKE_ARGS_STR="${DEPS_CMAKE_ARGS[*]}"
else
  ROWS+=("| deps | skip | --cpu: the CPU machine's packages | 0 |")
fi

source "$ROOT/scripts/gpu/check_steps.sh"
step configure 90 step_configure
step build_first 300 step_build_first
step unit_dist 60 step_unit_dist
step clip_bench_pathvlm 90 step_clip_bench_pathvlm
step clip_bench_eager 90 step_clip_bench_eager
step clip_bench_compile 200 step_clip_bench_compile
# The remaining targets build while the checks that measure nothing run.
(cd "$ROOT" && FIGURE="$OUT/build_second.figure" timeout -k 5 240 \
   bash -c "source scripts/gpu/check_steps.sh; build_targets $SECOND_TARGETS" >"$OUT/build_second.log" 2>&1
 echo $? >"$OUT/build_second.status") &
SECOND_BUILD=$!
step clip_parity 120 step_clip_parity
step safetensors_interop 90 step_safetensors_interop
step clip_train_syncs 90 step_clip_train_syncs
wait "$SECOND_BUILD"
if [ "$(cat "$OUT/build_second.status" 2>/dev/null)" = 0 ]; then
  ROWS+=("| build_second | pass | $SECOND_TARGETS | - |")
else
  ROWS+=("| build_second | FAIL | exit $(cat "$OUT/build_second.status" 2>/dev/null); $(tr '|' '/' <"$OUT/build_second.figure" 2>/dev/null) (build_second.log) | - |")
  FAILED=$((FAILED + 1))
fi
step unit_loader 60 step_unit_loader
step unit_mpi 90 step_unit_mpi
step clip_golden 60 step_clip_golden
step tensorboard 60 step_tensorboard
step timm_vit 60 step_timm_vit
step conch 60 step_conch
step titan 60 step_titan
step hf_vit 60 step_hf_vit
step llama_golden 60 step_llama_golden
step llama_export 60 step_llama_export
step llava_export 90 step_llava_export
step trident_h5 90 step_trident_h5
step bench_slide_memory 60 step_bench_slide_memory
step bench_slide_step 60 step_bench_slide_step
step bench_titan 60 step_bench_titan
step bench_instruct_step 90 step_bench_instruct_step
step bench_llama_load 60 step_bench_llama_load
step vit_encode_pathvlm 60 step_vit_encode_pathvlm
step vit_encode_peer 60 step_vit_encode_peer
step bench_tile_loader 60 step_bench_tile_loader
step instruct_chat 10 step_instruct_chat
# What two choices of the CLIP step buy; last, so a short budget drops these rather than a parity check.
step clip_bench_separate_qkv 60 step_clip_bench_separate_qkv
step clip_bench_bf16_weights 60 step_clip_bench_bf16_weights

{
  echo "# scripts/gpu/check.sh ($MODE) — $(date -u +%Y-%m-%dT%H:%MZ), commit $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo '+dirty')"
  echo
  echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null || echo "CPU ($(nproc) cores)")"
  echo
  echo "| check | result | figure | s |"
  echo "|---|---|---|---:|"
  printf '%s\n' "${ROWS[@]}"
  echo
  echo "$FAILED failed, $(($(date +%s) - START)) s in all"
} >"$OUT/summary.md"
cat "$OUT/summary.md"
[ "$FAILED" = 0 ]
