#!/usr/bin/env bash
# Run here, on the CPU machine (it has the network), before a device run: downloads the .deb packages the GPU
# machine's build may lack into build/gpu-deps/<component>/ (git-ignored; pass it to the device with
# carry: ["build/gpu-deps"]). scripts/gpu/check.sh unpacks a component only when the device lacks it.
#
#   scripts/gpu/prepare.sh [DEST]          # DEST defaults to build/gpu-deps; about 12 MiB
#
# Why Debian 12 binaries on Ubuntu 24.04: the device has no network and no apt mirror, and this machine reaches
# only Debian's. Binaries built against an older glibc (2.36) and libstdc++ (GCC 12) run on newer ones (2.39,
# GCC 13/14: symbol versioning keeps old symbols), the C++ libraries (yaml-cpp, gtest, sentencepiece) use the same
# _GLIBCXX_USE_CXX11_ABI=1 as torch 2.x wheels, and Ubuntu's 64-bit-time renames (libfoo1t64) keep the sonames on
# amd64. The packages are only what compiling, linking and running one-process pathvlm needs (MPI's library and
# headers, not its Fortran and RDMA stack): check.sh skips any runtime library the device already has, so the
# device's newer copies win. Building from source was the alternative: HDF5 and Open MPI take far longer than the
# device's 8-minute budget allows, and header-only pieces (nlohmann-json) are in the list anyway.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DEST=${1:-$ROOT/build/gpu-deps}

# component -> packages (development files first, then the runtime libraries they link to)
declare -A PACKAGES=(
  [pkgconfig]="pkgconf pkgconf-bin libpkgconf3"
  [mpi]="libopenmpi-dev libopenmpi3 openmpi-common openmpi-bin libhwloc15 libevent-core-2.1-7 libevent-pthreads-2.1-7 libpmix2 libltdl7 libnuma1"
  [hdf5]="libhdf5-dev libhdf5-103-1 libhdf5-hl-100 hdf5-helpers libsz2 libaec0 libcurl3-gnutls"
  [yaml-cpp]="libyaml-cpp-dev libyaml-cpp0.7"
  [gtest]="libgtest-dev libgmock-dev"
  [json]="nlohmann-json3-dev"
  [jpeg]="libjpeg62-turbo-dev libjpeg62-turbo"
  [png]="libpng-dev libpng16-16 zlib1g-dev"
  [sentencepiece]="libsentencepiece-dev libsentencepiece0"
)

total=0
for component in "${!PACKAGES[@]}"; do
  mkdir -p "$DEST/$component"
  (cd "$DEST/$component" && apt-get -o APT::Sandbox::User=root download ${PACKAGES[$component]} >/dev/null)
  size=$(du -sk "$DEST/$component" | cut -f1)
  total=$((total + size))
  echo "$component: $(ls "$DEST/$component" | wc -l) packages, ${size} KiB"
done
echo "$total KiB in $DEST (limit of what travels with the working tree: 64 MiB)"
[ "$total" -lt 60000 ] || { echo "prepare.sh: $DEST is too large to travel" >&2; exit 1; }
