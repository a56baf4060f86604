#!/usr/bin/env bash
# The README's test command: install what is missing, build what ctest runs (not the benchmarks), run the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/release}
scripts/setup.sh "$BUILD_DIR" all_tests
# The real libraries some tests compare with (tests/CMakeLists.txt: PATHVLM_TEST_PEERS); those tests skip without them.
scripts/test_peers.sh "$BUILD_DIR/../test-peers" ||
  echo "warning: scripts/test_peers.sh could not install the test peers (npm unreachable?); the tests comparing" \
       "with the real Hugging Face tokenizers library will be skipped" >&2
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
