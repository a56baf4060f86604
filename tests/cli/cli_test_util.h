// Running the real pathvlm program from a test, shared by the CLI tests.
#pragma once
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace pathvlm::testing {

// A whole file as a string ("" when it cannot be read: the assertions on it then fail with the content).
inline std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CliResult {
  int status;
  std::string out, err;
};

// Runs the pathvlm program with `args` (a shell fragment); stdout and stderr apart, kept in `scratch`.
inline CliResult run_cli(const std::string& args, const std::filesystem::path& scratch) {
  const auto out = scratch / "stdout.txt", err = scratch / "stderr.txt";
  const std::string command = std::string(PATHVLM_BINARY) + " " + args + " > " + out.string() + " 2> " + err.string();
  const int raw = std::system(command.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(out), read_text(err)};
}

}  // namespace pathvlm::testing
