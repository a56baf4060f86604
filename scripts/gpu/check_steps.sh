# shellcheck shell=bash
# The checks of scripts/gpu/check.sh, one function each (sourced; each runs in its own bash under a time limit).
# Environment: MODE (gpu | cpu), BUILD, ROOT, OUT, WORK, FIGURE, VOCAB. A check writes one line to $FIGURE and
# returns 0 (pass), 77 (skip: $FIGURE says why) or anything else (fail).

FIRST_TARGETS="pathvlm test_dist bench_clip_step"
SECOND_TARGETS="test_core test_models test_data bench_slide_memory bench_slide_step bench_instruct_step bench_llama_load bench_tile_loader bench_vit_encode bench_titan"
DEVICE=cuda
[ "$MODE" = cpu ] && DEVICE=cpu

figure() { echo "$*" >"$FIGURE"; }
skip() { figure "$*"; exit 77; }
need_python() { [ "$MODE" = gpu ] || skip "--cpu: python checks need the GPU machine's transformers; $*"; }
# python_check LOG SCRIPT [ARGS...]: scripts/gpu/SCRIPT, its output in $WORK/LOG.txt, its last line the figure.
python_check() {
  local log=$1 script=$2
  shift 2
  python3 "$ROOT/scripts/gpu/$script" "$@" | tee "$WORK/$log.txt"
  local rc=${PIPESTATUS[0]}
  figure "$(tail -n 1 "$WORK/$log.txt")"
  return "$rc"
}

step_configure() {
  if [ "$MODE" = cpu ]; then
    [ -f "$BUILD/CMakeCache.txt" ] || { figure "no configured CPU build in $BUILD"; return 1; }
    skip "--cpu: uses the configured tree $BUILD"
  fi
  local torch_prefix
  torch_prefix=$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)') || return 1
  command -v nvcc >/dev/null || export PATH="/usr/local/cuda/bin:$PATH"
  command -v nvcc >/dev/null || { figure "no nvcc (CUDA toolkit) in PATH or /usr/local/cuda/bin"; return 1; }
  [ -f "${NCCL_SO:-}" ] || { figure "no libnccl.so.2 (python nvidia-nccl wheel or system)"; return 1; }
  export TORCH_CUDA_ARCH_LIST=9.0
  # sm_90 only; benchmarks are built target by target, so none is built unasked.
  # shellcheck disable=SC2086
  cmake -G Ninja -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=$torch_prefix;$ROOT/build/gpu-prefix/usr" \
    -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 -DPATHVLM_REQUIRE_NCCL=ON "-DNCCL_LIBRARY=$NCCL_SO" \
    $(echo "$DEPS_CMAKE_ARGS_STR" | tr ' ' '\n' | grep -v '^-DCMAKE_PREFIX_PATH=') | tee "$WORK/cmake.txt"
  local rc=${PIPESTATUS[0]}
  figure "$(grep -o 'pathvlm: torch.*' "$WORK/cmake.txt" | head -1)"
  return "$rc"
}

# Builds the targets given; on the GPU with every core, ninja going on past a failed file (-k 0) so that one device
# run shows every compile error. A failure's figure is its first error line.
build_targets() {
  local options=(-j2)
  [ "$MODE" = gpu ] && options=(-j"$(nproc)" -- -k 0)
  cmake --build "$BUILD" --target "$@" "${options[@]}" 2>&1 | tee "$WORK/build_$1.log"
  local rc=${PIPESTATUS[0]}
  [ "$rc" = 0 ] || figure "$({ grep -m1 'error:' "$WORK/build_$1.log" || grep -m1 -E 'Error|FAILED|\*\*\*' \
    "$WORK/build_$1.log"; } | cut -c1-180)"
  return "$rc"
}
step_build_first() {
  # shellcheck disable=SC2086
  build_targets $FIRST_TARGETS || return 1
  if ldd "$BUILD/pathvlm" | grep 'not found'; then figure "pathvlm misses libraries: see the log"; return 1; fi
  figure "$FIRST_TARGETS; $("$BUILD/pathvlm" version | tr -s ' \n' ' ' | cut -c1-150)"
}

step_unit_dist() {
  local filter='ChooseBackend.*:AbortJob.*:MakeComm.*:DistEnv.*'
  if [ "$MODE" = gpu ]; then
    "$BUILD/pathvlm" version | grep -Eq 'nccl +yes' || { figure "pathvlm version: no NCCL in this build"; return 1; }
    filter="NcclComm.*:$filter"
  fi
  "$BUILD/tests/test_dist" --gtest_filter="$filter" | tee "$WORK/unit_dist.txt"
  local rc=${PIPESTATUS[0]}
  figure "$(grep -E '^\[  PASSED  \]|FAILED TEST' "$WORK/unit_dist.txt" | tr -d '\n') ($filter)"
  return "$rc"
}

# The loader on the device: uint8 batches normalised after the upload, the next batch uploaded on a side stream.
step_unit_loader() {
  local filter='TileLoaderCuda.*:TileLoader.*:Loader.*'
  "$BUILD/tests/test_data" --gtest_filter="$filter" | tee "$WORK/unit_loader.txt"
  local rc=${PIPESTATUS[0]}
  figure "$(grep -E '^\[  PASSED  \]|FAILED TEST' "$WORK/unit_loader.txt" | tr -d '\n')$(grep -q '^\[  SKIPPED \] TileLoaderCuda' \
    "$WORK/unit_loader.txt" && echo '; TileLoaderCuda skipped: no CUDA device') ($filter)"
  # On the GPU machine the side-stream test must have run.
  if [ "$MODE" = gpu ] && grep -q '^\[  SKIPPED \]' "$WORK/unit_loader.txt"; then return 1; fi
  return "$rc"
}

step_unit_mpi() {
  command -v mpirun >/dev/null || skip "no mpirun on this machine"
  local n rc=0
  for n in 2 3; do
    mpirun -np $n --oversubscribe --allow-run-as-root "$BUILD/tests/test_dist" \
      --gtest_filter='MpiComm.*:MpiReducer.*' >"$WORK/unit_mpi_$n.txt" 2>&1 || rc=1
  done
  # The timeout tests take ~30 s; the CPU suite runs them anyway.
  if [ "$MODE" = gpu ]; then
    "$BUILD/tests/test_dist" --gtest_filter='CommTimeout.*' >"$WORK/unit_mpi_timeout.txt" 2>&1 || rc=1
  fi
  figure "MpiComm/MpiReducer on 2 and 3 ranks$([ "$MODE" = gpu ] && echo ', CommTimeout'):" \
    "$(grep -l 'PASSED' "$WORK"/unit_mpi_*.txt | wc -l) of $(ls "$WORK"/unit_mpi_*.txt | wc -l) runs passed"
  cat "$WORK"/unit_mpi_*.txt
  return "$rc"
}

# pathvlm's CLIP step at PRECISION (default: the GPU's bf16-mixed); the python peers reuse its FLOPs count and peak
# so the MFUs compare.
clip_bench_args() {
  if [ "$MODE" = gpu ]; then echo "--preset ViT-B-16 --batch 256 --steps 20 --warmup 5 --device cuda --precision ${1:-bf16-mixed}"
  else echo "--preset tiny --batch 8 --steps 2 --warmup 1 --device cpu --precision ${1:-fp32} --peak-tflops 1"; fi
}
bench_figure() {
  python3 - "$1" <<'EOF'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"{r['samples_per_s']:.1f} samples/s, MFU {100 * r['mfu']:.1f}%, peak mem {r['peak_mem_gib']:.2f} GiB, "
      f"batch {r['batch']} {r['precision']}")
EOF
}
# One field of a benchmark's JSON line (the last line of FILE).
bench_field() {
  python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])[sys.argv[2]])' "$1" "$2"
}
# samples/s of benchmark A over benchmark B.
bench_ratio() {
  python3 -c 'import sys; print(f"{float(sys.argv[1]) / float(sys.argv[2]):.3f}")' \
    "$(bench_field "$1" samples_per_s)" "$(bench_field "$2" samples_per_s)"
}
step_clip_bench_pathvlm() {
  # shellcheck disable=SC2046
  "$BUILD/benchmarks/bench_clip_step" $(clip_bench_args) | tee "$OUT/clip_bench_pathvlm.json" || return 1
  local reads
  reads=$(bench_field "$OUT/clip_bench_pathvlm.json" host_reads_per_step)
  figure "$(bench_figure "$OUT/clip_bench_pathvlm.json"), host reads per step $reads"
  [ "$reads" = 0 ]  # a read inside the step stalls the GPU
}
# clip_bench_variant NAME LABEL ARGS...: the CLIP step with ARGS, its figure and its samples/s over the step above's
# (LABEL names the ratio).
clip_bench_variant() {
  local name=$1 label=$2
  shift 2
  [ -s "$OUT/clip_bench_pathvlm.json" ] || skip "no figure of the step above to compare with"
  "$BUILD/benchmarks/bench_clip_step" "$@" | tee "$OUT/clip_bench_$name.json" || return 1
  figure "$(bench_figure "$OUT/clip_bench_$name.json"); $label = $(bench_ratio \
    "$OUT/clip_bench_$name.json" "$OUT/clip_bench_pathvlm.json")x"
}
# q, k and v as three GEMMs: what the fused projection buys.
# shellcheck disable=SC2046
step_clip_bench_separate_qkv() { clip_bench_variant separate_qkv "separate / fused" $(clip_bench_args) --separate-qkv; }
# The trainer's train.precision bf16 (bf16 weights and residual stream, fp32 masters in AdamW) against autocast.
# shellcheck disable=SC2046
step_clip_bench_bf16_weights() { clip_bench_variant bf16_weights "bf16 weights / autocast" $(clip_bench_args bf16); }
clip_peer() {
  need_python "transformers CLIPModel $1"
  [ -s "$OUT/clip_bench_pathvlm.json" ] || skip "no pathvlm figure to compare with"
  local flops peak
  flops=$(bench_field "$OUT/clip_bench_pathvlm.json" flops_per_sample)
  peak=$(bench_field "$OUT/clip_bench_pathvlm.json" peak_tflops)
  python3 "$ROOT/scripts/gpu/bench_clip_peer.py" --mode "$1" --batch 256 --steps 20 --warmup 5 \
    --flops-per-sample "$flops" --peak-tflops "$peak" | tee "$OUT/clip_bench_$1.json" || return 1
  figure "$(bench_figure "$OUT/clip_bench_$1.json"); pathvlm / $1 = $(bench_ratio \
    "$OUT/clip_bench_pathvlm.json" "$OUT/clip_bench_$1.json")x"
}
# The Trainer's real loop on the GPU: the demo CLIP on synthetic tiles for 60 steps (6 with --cpu), with every host
# read inside a step traced (core/host_reads.h); passes when there is none.
step_clip_train_syncs() {
  local demo="$WORK/clip_demo" runs="$WORK/clip_runs" steps=60
  [ "$MODE" = cpu ] && steps=6
  "$BUILD/pathvlm" synth tiles --out "$demo/tiles" --size 64 --train-per-class 40 --val-per-class 5 \
    --zeroshot-per-class 5 --seed 0 >/dev/null || return 1
  local split
  for split in train val zeroshot; do
    "$BUILD/pathvlm" shards build "$demo/tiles/$split.csv" --out "$demo/shards/$split" >/dev/null || return 1
  done
  PATHVLM_TRACE_HOST_READS=1 "$BUILD/pathvlm" train "$ROOT/configs/clip/demo_tiny.yaml" run.name=syncs \
    "run.runs_dir=$runs" "train.device=$DEVICE" "train.steps=$steps" "optim.warmup_steps=$((steps / 6))" eval.every=0 log.every=20 checkpoint.every_steps=0 \
    "clip.vocab=$VOCAB" "clip.data.train=$demo/shards/train" "clip.data.val=$demo/shards/val" \
    "clip.data.zeroshot=$demo/shards/zeroshot" "clip.eval.classes=$demo/tiles/zeroshot.yaml" \
    >"$WORK/clip_train_syncs.txt" 2>&1 || { tail -20 "$WORK/clip_train_syncs.txt"; return 1; }
  local reads
  reads=$(grep -o 'host reads inside steps: [0-9]* in [0-9]* steps' "$WORK/clip_train_syncs.txt")
  figure "$reads; $(grep -o "step $steps/$steps | [^|]* | loss [0-9.]*" "$WORK/clip_train_syncs.txt" | head -1)"
  grep -q 'host reads inside steps: 0 ' "$WORK/clip_train_syncs.txt"
}

step_clip_bench_eager() { clip_peer eager; }
step_clip_bench_compile() { clip_peer compile; }

step_clip_parity() {
  need_python "clip_parity.py (fp32 parity with transformers, HF export loaded by from_pretrained, golden file)"
  python3 "$ROOT/scripts/gpu/clip_parity.py" --pathvlm "$BUILD/pathvlm" --vocab "$VOCAB" --device cuda --write-golden \
    | tee "$WORK/clip_parity.txt"
  local rc=${PIPESTATUS[0]}
  cp -r "$ROOT/tests/data/clip_golden" "$OUT/" 2>/dev/null
  figure "$(grep -c '^PASS' "$WORK/clip_parity.txt") pass, $(grep -c '^FAIL' "$WORK/clip_parity.txt") fail; golden written to tests/data/clip_golden (copy in \$OUT)"
  return "$rc"
}

step_safetensors_interop() {
  need_python "check_safetensors_interop.py"
  python_check safetensors check_safetensors_interop.py --pathvlm "$BUILD/pathvlm"
}

step_clip_golden() {
  [ -x "$BUILD/tests/test_models" ] || { figure "test_models was not built"; return 1; }
  "$BUILD/tests/test_models" --gtest_filter='ClipGolden.*:LlamaGolden.*' | tee "$WORK/golden.txt"
  local rc=${PIPESTATUS[0]}
  figure "$(grep -E '^\[  (PASSED|SKIPPED|FAILED)  \] [0-9]' "$WORK/golden.txt" | tr -s ' \n' ' ')(skipped: no golden file yet)"
  return "$rc"
}

step_tensorboard() {
  need_python "check_tensorboard.py (the C++ writer's test ran in the unit tests)"
  python_check tensorboard check_tensorboard.py --test-binary "$BUILD/tests/test_core" "$WORK/tensorboard"
}

step_conch() {
  need_python "check_conch.py (the numpy CONCH reference of the unit tests against torch's resampling and attention)"
  python_check conch check_conch.py
}

step_titan() {
  need_python "check_titan.py (the numpy TITAN reference against torch's SDPA and MultiheadAttention; encode, probe)"
  python_check titan check_titan.py "$BUILD/pathvlm" "$DEVICE"
}

step_timm_vit() {
  need_python "check_timm_vit.py (pathvlm's timm ViT against the numpy reference ran in the unit tests)"
  python_check timm_vit check_timm_vit.py
}

step_hf_vit() {
  need_python "check_hf_vit.py (pathvlm's transformers ViT against the numpy reference ran in the unit tests)"
  python_check hf_vit check_hf_vit.py
}

step_llama_golden() {
  need_python "llama_golden.py"
  python3 "$ROOT/scripts/gpu/llama_golden.py" "$ROOT/tests/models/llama/golden" || return 1
  cp -r "$ROOT/tests/models/llama/golden" "$OUT/llama_golden"
  "$BUILD/tests/test_models" --gtest_filter='LlamaGolden.*' | tee "$WORK/llama_golden.txt"
  local rc=${PIPESTATUS[0]}
  figure "golden written to tests/models/llama/golden (copy in \$OUT); $(grep -E '^\[  (PASSED|FAILED)' "$WORK/llama_golden.txt" | head -1)"
  return "$rc"
}

export_check() {  # export_check GTEST_FILTER ENV_VAR SCRIPT
  PATHVLM_LLAMA_EXPORT_CHECK_DIR="$WORK/$3" PATHVLM_LLAVA_EXPORT_CHECK_DIR="$WORK/$3" \
    "$BUILD/tests/test_models" --gtest_filter="$1" || { figure "$1 failed"; return 1; }
  need_python "$2 (the C++ side wrote $WORK/$3)"
  python_check "$3" "$2" "$WORK/$3"
}
step_llama_export() { export_check LlamaWeights.ExportForTransformersCheck check_llama_export.py llama_export; }
step_llava_export() {
  export_check LlavaWeights.ExportForTransformersCheck check_llava_export.py llava_export || return 1
  # ... and what transformers saved of each export, read back (the python script wrote <form>/resaved).
  PATHVLM_LLAVA_EXPORT_CHECK_DIR="$WORK/llava_export" "$BUILD/tests/test_models" \
    --gtest_filter=LlavaWeights.ReadsWhatTransformersSavedInTheExportCheck | tee "$WORK/llava_resaved.txt"
  [ "${PIPESTATUS[0]}" = 0 ] && grep -q '\[  PASSED  \] 1 test' "$WORK/llava_resaved.txt" ||
    { figure "transformers-saved LLaVA read back: FAIL (llava_resaved.txt)"; return 1; }
  figure "$(tail -n 1 "$WORK/llava_export.txt"); its transformers re-saves read back"
}

step_trident_h5() {
  "$BUILD/pathvlm" version | grep -Eq '(openslide|libtiff) +yes' || skip "no slide reader in this build (OpenSlide / libtiff)"
  local s="$WORK/slides" t="$WORK/tiles" e="$WORK/embed"
  "$BUILD/pathvlm" synth slides --out "$s" --count 2 || return 1
  "$BUILD/pathvlm" tile --slides "$s" --out "$t" --patch-size 128 tissue.preset=bwh_biopsy tissue.a_t=0.5 || return 1
  "$BUILD/pathvlm" embed --coords "$t" --encoder tiny --out "$e" --tokens --reports "$s/reports.csv" \
    --device "$DEVICE" || return 1
  need_python "check_trident_h5.py (pathvlm wrote $(ls "$t"/patches | wc -l) coords files and their features)"
  python_check trident check_trident_h5.py "$t" "$e"
}

bench() {  # bench NAME GPU_ARGS CPU_ARGS
  local args=$2
  [ "$MODE" = cpu ] && args=$3
  [ -x "$BUILD/benchmarks/$1" ] || { figure "$1 was not built"; return 1; }
  # shellcheck disable=SC2086
  "$BUILD/benchmarks/$1" $args | tee "$OUT/$1.md"
  local rc=${PIPESTATUS[0]}
  figure "$(grep -v '^\s*$' "$OUT/$1.md" | tail -n 1 | cut -c1-180)"
  return "$rc"
}
step_bench_slide_memory() {
  bench bench_slide_memory "--device cuda" "--device cpu --kinds abmil --sizes 1000 --transformer-sizes 1000"
}
step_bench_titan() { bench bench_titan "--device cuda --tiles 4000,16000,50000 --steps 2" "--device cpu --tiles 200 --steps 1"; }
step_bench_slide_step() { bench bench_slide_step "--device cuda" "--device cpu --steps 1 --warmup 1 --batch 2 --tiles 64"; }
step_bench_instruct_step() {
  bench bench_instruct_step "--device cuda --llm tinyllama-1.1b --batch 8" "--device cpu --llm tiny --tower tiny --batch 1 --text 16 --steps 1"
}
# The tile loader's GPU path (JPEG decode + crop to uint8 in the workers) with up to 16 workers on the device machine's
# cores: it passes when its best rate keeps up with the CLIP step measured above.
step_bench_tile_loader() {
  local tiles=4096 workers=16
  [ "$MODE" = cpu ] && { tiles=256; workers=2; }
  bench bench_tile_loader "$tiles $workers" "$tiles $workers" || return 1
  local loader step
  loader=$(grep 'uint8 crops' "$OUT/bench_tile_loader.md" | sed -E 's/.*upload\): ([0-9.]+) images\/s.*/\1/' | sort -g | tail -n 1)
  step=$(bench_field "$OUT/clip_bench_pathvlm.json" samples_per_s 2>/dev/null || echo 0)
  figure "loader (GPU path, up to $workers workers) $loader images/s; the CLIP step consumes $step samples/s"
  [ "$MODE" = cpu ] || python3 -c "import sys; sys.exit(float(sys.argv[1]) < float(sys.argv[2]))" "$loader" "$step"
}
# Loading is host work (safetensors mmap into the target dtype): no device option.
step_bench_llama_load() { bench bench_llama_load "" "--preset tiny --layers 2"; }

# `pathvlm embed`'s encoder with UNI's shapes (ViT-L/16, 224 px, batch 256, bf16 autocast), then the same encoding
# with transformers' Dinov2Model (SDPA), which reuses its FLOPs count and peak so the MFUs compare.
step_vit_encode_pathvlm() {
  local args="--model uni --batch 256 --steps 20 --warmup 5 --device cuda --precision bf16"
  [ "$MODE" = cpu ] && args="--model tiny --batch 4 --steps 2 --warmup 1 --device cpu --precision fp32 --peak-tflops 1"
  [ -x "$BUILD/benchmarks/bench_vit_encode" ] || { figure "bench_vit_encode was not built"; return 1; }
  # shellcheck disable=SC2086
  "$BUILD/benchmarks/bench_vit_encode" $args | tee "$OUT/vit_encode_pathvlm.json" || return 1
  figure "$(bench_figure "$OUT/vit_encode_pathvlm.json") (a sample is a tile)"
}
step_vit_encode_peer() {
  need_python "bench_vit_peer.py"
  [ -s "$OUT/vit_encode_pathvlm.json" ] || skip "no figure of pathvlm's encoder to compare with"
  python3 "$ROOT/scripts/gpu/bench_vit_peer.py" --model uni --batch 256 --steps 20 --warmup 5 \
    --flops-per-sample "$(bench_field "$OUT/vit_encode_pathvlm.json" flops_per_sample)" \
    --peak-tflops "$(bench_field "$OUT/vit_encode_pathvlm.json" peak_tflops)" | tee "$OUT/vit_encode_peer.json" || return 1
  figure "$(bench_figure "$OUT/vit_encode_peer.json"); pathvlm / transformers = $(bench_ratio \
    "$OUT/vit_encode_pathvlm.json" "$OUT/vit_encode_peer.json")x"
}

step_instruct_chat() {
  [ -n "${INSTRUCT_RUN:-}" ] || skip "needs a trained instruct run (INSTRUCT_RUN=runs/instruct_demo_phase2: scripts/demo.sh)"
  need_python "check_instruct_chat.py"
  python3 "$ROOT/scripts/gpu/check_instruct_chat.py" "$INSTRUCT_RUN/export" "$INSTRUCT_RUN/ours.jsonl" "$INSTRUCT_IMAGE"
}
