// What every fuzz target shares. A target is one `LLVMFuzzerTestOneInput` over one reader of outside input: built
// with libFuzzer by scripts/dev/fuzz.sh (clang, ASan + UBSan, coverage-guided), and in every other build with
// replay_main.cpp, whose ctest replays the target's corpus in tests/fuzz/corpus/<target>/ (seed inputs and every
// input a fuzzing run found a fault with). The contract each target checks: the reader returns a result that keeps
// its invariants or throws pathvlm::Error. Anything else (another exception, a signal, a sanitizer report, a broken
// invariant) aborts, which libFuzzer reports and saves.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "core/error.h"

namespace pathvlm::fuzz {

// Aborts with `what` unless `ok`: a broken invariant is a finding, like a crash.
inline void require(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "fuzz invariant broken: %s\n", what);
    std::abort();
  }
}

// The round trip every config reader owes: `written`, what pathvlm writes for a config it read, reads back with
// `read_back` to a config that `write` writes as the same text again.
template <class ReadBack, class Write>
void require_reads_back(const std::string& written, ReadBack read_back, Write write) {
  try {
    require(write(read_back(written)) == written, "what pathvlm wrote for a config read back to another config");
  } catch (const pathvlm::Error& e) {
    std::fprintf(stderr, "%s\n--- written:\n%s\n", e.what(), written.c_str());
    require(false, "what pathvlm wrote for a config it read does not read back");
  }
}

// A per-process scratch directory (removed at exit) for readers that take a path.
inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("pathvlm_fuzz_" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    std::atexit([] { std::filesystem::remove_all(scratch_dir()); });
    return d;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir()/name and returns the path.
inline std::string scratch_file(const std::string& name, const uint8_t* data, size_t size) {
  const std::string path = (scratch_dir() / name).string();
  std::ofstream(path, std::ios::binary | std::ios::trunc)
      .write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  return path;
}

}  // namespace pathvlm::fuzz
