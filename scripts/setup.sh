#!/usr/bin/env bash
# Installs the Debian packages pathvlm needs (only the missing ones) and builds it in Release.
# Usage: scripts/setup.sh [BUILD_DIR [TARGET...]]   (default: build/release, every target)
#   scripts/setup.sh build/release pathvlm      # the program alone (scripts/demo.sh)
#   scripts/setup.sh build/release all_tests    # the program and the test executables ctest runs (scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")/.."

# libopenblas0-openmp: libtorch's CPU matmuls are ~10x slower on the reference BLAS. libabsl-dev: sentencepiece
# 0.2's header includes Abseil, which libsentencepiece-dev does not pull in (Debian sid). curl, ca-certificates:
# scripts/demo.sh downloads open_clip's CLIP vocabulary when ../shared/data has none. python3-numpy,
# python3-sentencepiece, python3-pil: the python references some tests compare with (timm's ViT, LLaVA's tokenization,
# Pillow's resize).
PACKAGES=(build-essential cmake pkg-config ccache
  libtorch-dev libopenmpi-dev openmpi-bin libhdf5-dev libyaml-cpp-dev nlohmann-json3-dev
  libjpeg-dev libpng-dev libtiff-dev libwebp-dev libopenjp2-7-dev zlib1g-dev
  libopenslide-dev libopencv-core-dev libopencv-imgproc-dev
  libsentencepiece-dev libabsl-dev python3-sentencepiece python3-numpy python3-pil
  libopenblas0-openmp libgtest-dev libbenchmark-dev python3 curl ca-certificates)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR=${1:-build/release}
shift $(( $# > 0 ? 1 : 0 ))
TARGETS=()
for t in "$@"; do TARGETS+=(--target "$t"); done
JOBS=$(nproc)
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release ${PATHVLM_CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j "$JOBS" "${TARGETS[@]}"
