#!/usr/bin/env bash
# The README's test command: install what is missing, build what ctest runs (not the benchmarks), run the whole
# test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build/release}
scripts/setup.sh "$BUILD_DIR" all_tests
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
