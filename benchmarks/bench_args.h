// Command-line options of the benchmark programs: `--name value` pairs and bare `--flag`s, looked up by name.
#pragma once
#include <cstring>
#include <string>

namespace pathvlm::bench {

// The value after `name` in argv, else `fallback`.
inline std::string arg(int argc, char** argv, const char* name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return fallback;
}

// Whether the bare flag `name` is on the command line.
inline bool has_flag(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], name)) return true;
  return false;
}

}  // namespace pathvlm::bench
