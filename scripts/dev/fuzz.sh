#!/usr/bin/env bash
# Coverage-guided fuzzing of the readers of outside input (tests/fuzz/fuzz_*.cpp: safetensors files and checkpoint
# indexes, config YAML and overrides, CLIP caption text, images, CSV manifests, WebDataset tars, DICOM slides, LLaVA
# records, LLaMA, CLIP, timm and transformers ViT config.json; conversations through every template). Builds the
# targets with clang's libFuzzer, AddressSanitizer and UndefinedBehaviorSanitizer, then runs each for SECONDS from
# its corpus (tests/fuzz/corpus/<target>/, copied: what fuzzing adds stays in the build folder). A fault stops that
# target, leaves the input that caused it in BUILD/findings/<target>/ and fails the script: once fixed, commit the
# input to the target's corpus, where ctest's fuzz_<target>_corpus replays it on every build. Not part of CI: the
# build takes about 20 minutes on 2 cores.
#
#   scripts/dev/fuzz.sh [SECONDS] [TARGET...]      (default 300 s each, every target; BUILD=build/fuzz)
set -euo pipefail
cd "$(dirname "$0")/../.."
SECONDS_EACH=${1:-300}
shift || true
BUILD=${BUILD:-build/fuzz}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=($(ls tests/fuzz/corpus))
command -v clang++ > /dev/null || { echo "fuzz.sh: clang++ is needed (libFuzzer): apt-get install clang" >&2; exit 1; }

# vptr is left out: libtorch's classes cross shared-library boundaries the check cannot follow.
FLAGS="-O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize=vptr"
FLAGS+=" -fno-sanitize-recover=undefined"
cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=None -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DPATHVLM_FUZZ=ON -DPATHVLM_BUILD_BENCHMARKS=OFF -DCMAKE_CXX_FLAGS="$FLAGS" -DCMAKE_C_FLAGS="$FLAGS" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" \
  > /dev/null
cmake --build "$BUILD" -j "$(nproc)" --target $(printf 'fuzz_%s ' "${TARGETS[@]}")

# libtorch and the system libraries are not instrumented: their containers' annotations and leaks are not ours.
export ASAN_OPTIONS=detect_leaks=0:detect_container_overflow=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export OMP_NUM_THREADS=1
failed=()
for target in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$target" findings="$BUILD/findings/$target"
  mkdir -p "$corpus" "$findings"
  cp -n tests/fuzz/corpus/"$target"/* "$corpus"/
  echo "== fuzz_$target: ${SECONDS_EACH} s from $(ls "$corpus" | wc -l) inputs"
  if "$BUILD/tests/fuzz_$target" "$corpus" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 \
       -rss_limit_mb=4096 -artifact_prefix="$findings/" -print_final_stats=1 > "$BUILD/fuzz_$target.log" 2>&1; then
    grep -E "^stat::(number_of_executed_units|new_units_added)|cov: " "$BUILD/fuzz_$target.log" | tail -3
  else
    failed+=("$target")
    grep -E -A30 "ERROR:|fuzz invariant|terminate called|==[0-9]+==" "$BUILD/fuzz_$target.log" | head -60
    echo "fuzz_$target: a fault; the input is in $findings/ (log: $BUILD/fuzz_$target.log)"
  fi
done
[ ${#failed[@]} -eq 0 ] && echo "fuzz.sh: no faults in ${TARGETS[*]}" || { echo "fuzz.sh: faults in ${failed[*]}" >&2; exit 1; }
