#!/usr/bin/env bash
# Runs CI (.ci/run: install, build, the whole test suite) on Debian sid, whose libtorch-dev is 2.x (C++20, a newer
# GCC, HDF5, yaml-cpp and sentencepiece). The CPU machine's libtorch is 1.13 and the GPU machine's is 2.x, so this
# is where the libtorch >= 2 branches of src/core/compat.h first compile and run without spending device time.
# Needs root, debootstrap and network. The chroot is kept between runs (apt then installs only what changed).
# Usage: sudo scripts/dev/libtorch2_check.sh [CHROOT_DIR]     (default /var/tmp/pathvlm-sid)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(realpath -m "${1:-/var/tmp/pathvlm-sid}")
[ "$(id -u)" -eq 0 ] || { echo "libtorch2_check: needs root (debootstrap, chroot, mounts)" >&2; exit 1; }

if [ ! -e "$ROOT/etc/debian_version" ]; then
  command -v debootstrap > /dev/null || { apt-get update -q && apt-get install -y -q debootstrap; }
  debootstrap --variant=minbase sid "$ROOT" http://deb.debian.org/debian
fi
# A sandbox clock ahead of the mirror's Valid-Until would otherwise make apt refuse sid's index.
echo 'Acquire::Check-Valid-Until "false";' > "$ROOT/etc/apt/apt.conf.d/99pathvlm-clock"
cp /etc/resolv.conf "$ROOT/etc/resolv.conf"

MOUNTS=(proc sys dev)   # recursive binds: /sys/fs/cgroup (slurmd needs it) and /dev/pts come along
[ -d ../shared ] && MOUNTS+=(work/shared)   # the real test data the suite reads from ../shared
# CUDA and NCCL headers (the nvidia wheels' /usr/local/cuda): ctest's cuda_compile_check then compiles the CUDA
# branches against libtorch 2.x, as the GPU machine's build does.
[ -d /usr/local/cuda/include ] && MOUNTS+=(usr/local/cuda)
unmount_all() { for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount -R "$ROOT/${MOUNTS[i]}" 2> /dev/null || true; done; }
trap unmount_all EXIT
for m in "${MOUNTS[@]}"; do
  mkdir -p "$ROOT/$m"
  src=/$m
  [ "$m" = work/shared ] && src=$(realpath ../shared)
  mountpoint -q "$ROOT/$m" || mount --rbind "$src" "$ROOT/$m"
done

# The working tree as git sees it (tracked and untracked-but-not-ignored files); the chroot keeps only its build/.
mkdir -p "$ROOT/work/main"
find "$ROOT/work/main" -mindepth 1 -maxdepth 1 ! -name build -exec rm -rf {} +
git ls-files -z --cached --others --exclude-standard | tar --null --ignore-failed-read -T - -cf - | tar -xf - -C "$ROOT/work/main"
chroot "$ROOT" env BUILD_DIR=build/sid bash -c 'cd /work/main && .ci/run'
