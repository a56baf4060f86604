# shellcheck shell=bash
# Sourced by scripts/gpu/check.sh: unpacks the components of build/gpu-deps (scripts/gpu/prepare.sh) that this
# machine lacks into a private prefix and points the build at them.
#
#   source scripts/gpu/unpack_deps.sh DEPS_DIR PREFIX
#
# Sets DEPS_CMAKE_ARGS (an array for cmake) and DEPS_REPORT (one line); exports PATH, PKG_CONFIG_PATH and
# LD_LIBRARY_PATH additions. A component is unpacked only when its probe fails (PATHVLM_DEPS_FORCE=1: always, to
# test this script on a machine that has everything); inside it, a runtime library the machine already has (by
# soname, ldconfig) is not unpacked, and development symlinks to it are pointed at the machine's copy.

deps_probe() {
  case $1 in
    pkgconfig) command -v pkg-config >/dev/null ;;
    mpi) pkg-config --exists ompi-c || pkg-config --exists mpich || pkg-config --exists mpi ;;
    hdf5) pkg-config --exists hdf5 || pkg-config --exists hdf5-serial ;;
    yaml-cpp) pkg-config --exists yaml-cpp ;;
    gtest) pkg-config --exists gtest && pkg-config --exists gmock ;;
    json) pkg-config --exists nlohmann_json ;;
    jpeg) pkg-config --exists libjpeg ;;
    png) pkg-config --exists libpng && pkg-config --exists zlib ;;
    sentencepiece) pkg-config --exists sentencepiece ;;
    *) return 1 ;;
  esac
}

# The soname of a versioned library file name: libfoo.so.1.2.3 -> libfoo.so.1
deps_soname() { sed -E 's/(\.so\.[0-9]+).*/\1/' <<<"$1"; }

deps_system_has() { ldconfig -p 2>/dev/null | grep -q " $1 "; }

deps_unpack_deb() {
  local deb=$1 prefix=$2 lib
  # A runtime package whose libraries this machine has already: keep the machine's (newer) copies.
  local libs
  libs=$(dpkg-deb -c "$deb" | awk '{print $6}' | grep -E '/lib[^/]*\.so\.[0-9]+$' | xargs -r -n1 basename | sort -u)
  if [ -n "$libs" ] && ! dpkg-deb -c "$deb" | awk '{print $6}' | grep -qE '\.(h|hpp|pc|cmake)$'; then
    local missing=0
    for lib in $libs; do deps_system_has "$(deps_soname "$lib")" || missing=1; done
    [ $missing = 1 ] || return 0
  fi
  dpkg-deb -x "$deb" "$prefix"
}

# Development symlinks (libfoo.so -> libfoo.so.1.2.3) whose target was not unpacked: to the machine's library.
deps_fix_links() {
  local prefix=$1 link target soname system
  while IFS= read -r link; do
    target=$(basename "$(readlink "$link")")
    soname=$(deps_soname "$target")
    system=$(ldconfig -p 2>/dev/null | awk -v s="$soname" '$1 == s {print $NF; exit}')
    [ -n "$system" ] && ln -sfn "$system" "$link"
  done < <(find "$prefix/usr/lib" -xtype l 2>/dev/null)
}

# Absolute /usr paths in pkg-config files and the HDF5 compiler wrapper: into the prefix.
deps_relocate() {
  local prefix=$1 file
  while IFS= read -r file; do
    sed -i -E "s#^prefix=(\"?)/usr(\"?)\$#prefix=\\1$prefix/usr\\2#; s#(^|[=[:space:]'\"]|-I|-L)/usr/(include|lib)#\\1$prefix/usr/\\2#g" "$file"
  done < <(find "$prefix/usr" \( -name '*.pc' -o -name 'h5cc' \) -type f 2>/dev/null)
  # Debian keeps some headers in the multiarch folder (libjpeg's jconfig.h), which its compilers search by themselves
  # under /usr/include but no compiler searches under the prefix.
  while IFS= read -r file; do
    grep -q "^Cflags:.*$prefix/usr/include/x86_64-linux-gnu" "$file" ||
      sed -i -E "s#^(Cflags:.*)\$#\1 -I$prefix/usr/include/x86_64-linux-gnu#" "$file"
  done < <(find "$prefix/usr" -name '*.pc' -type f 2>/dev/null)
  # libhdf5.so names its own dependencies; the wrapper's extra -lcurl -lcrypto (for static links) would need
  # development files the machine may not have.
  [ -f "$prefix/usr/bin/h5cc" ] && sed -i -E 's#^H5BLD_LIBS=.*#H5BLD_LIBS=""#' "$prefix/usr/bin/h5cc"
  return 0
}

deps_unpack() {
  local deps=$1 prefix=$2 component unpacked=() present=() absent=()
  DEPS_CMAKE_ARGS=()
  mkdir -p "$prefix"
  for dir in "$deps"/pkgconfig "$deps"/*; do  # pkg-config first: the other probes use it
    [ -d "$dir" ] || continue
    component=$(basename "$dir")
    [[ " ${unpacked[*]} ${present[*]} " == *" $component "* ]] && continue
    if [ "${PATHVLM_DEPS_FORCE:-0}" != 1 ] && deps_probe "$component"; then
      present+=("$component")
      continue
    fi
    for deb in "$dir"/*.deb; do deps_unpack_deb "$deb" "$prefix"; done
    unpacked+=("$component")
    if [ "$component" = pkgconfig ]; then export PATH="$prefix/usr/bin:$PATH"; fi
  done
  [ -d "$deps" ] || absent=("no $deps: run scripts/gpu/prepare.sh first")
  deps_fix_links "$prefix"
  deps_relocate "$prefix"
  local lib="$prefix/usr/lib/x86_64-linux-gnu"
  export PKG_CONFIG_PATH="$lib/pkgconfig:$prefix/usr/share/pkgconfig:$lib/openmpi/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  export LD_LIBRARY_PATH="$lib:$lib/hdf5/serial:$lib/openmpi/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  DEPS_CMAKE_ARGS+=("-DCMAKE_PREFIX_PATH=$prefix/usr")
  if [[ " ${unpacked[*]} " == *" mpi "* ]]; then
    # Open MPI's compiler wrappers have their paths compiled in: name the library and headers instead.
    DEPS_CMAKE_ARGS+=(-DMPI_SKIP_COMPILER_WRAPPER=ON -DMPI_C_COMPILER=MPI_C_COMPILER-NOTFOUND
      "-DMPI_C_HEADER_DIR=$lib/openmpi/include" "-DMPI_C_ADDITIONAL_INCLUDE_DIRS=$lib/openmpi/include/openmpi"
      -DMPI_C_LIB_NAMES=mpi "-DMPI_mpi_LIBRARY=$lib/openmpi/lib/libmpi.so")
    export OPAL_PREFIX="$prefix/usr"
    command -v mpirun >/dev/null || export PATH="$PATH:$prefix/usr/bin"
  fi
  if [[ " ${unpacked[*]} " == *" hdf5 "* ]]; then
    DEPS_CMAKE_ARGS+=("-DHDF5_C_COMPILER_EXECUTABLE=$prefix/usr/bin/h5cc")
  fi
  DEPS_REPORT="present: ${present[*]:-none}; unpacked: ${unpacked[*]:-none}${absent:+; ${absent[*]}}"
}

deps_unpack "$1" "$2"
