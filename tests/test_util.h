// Helpers every test group shares (tests/ is on each test program's include path).
#pragma once
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

#include "core/error.h"

namespace pathvlm::testing {

// The message of the pathvlm::Error `f` throws ("" and a test failure when it does not throw).
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const pathvlm::Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected a pathvlm::Error";
  return "";
}

// Runs a shell command: its exit status (-1 when a signal ended it) and, in `output`, its stdout and stderr.
inline int run_command(const std::string& command, std::string& output) {
  output.clear();
  FILE* pipe = ::popen((command + " 2>&1").c_str(), "r");
  if (!pipe) return -1;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) output.append(buffer, n);
  const int status = ::pclose(pipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// A slide of the shared test data (../shared/data/slides); tests that need one skip with a message when it is absent.
inline std::string shared_slide(const std::string& name) {
  return std::string(PATHVLM_SHARED_DATA) + "/slides/" + name;
}

// The seed of a randomised input test (fuzzing, random damage): `fixed`, or PATHVLM_TEST_SEED when set, to try others.
inline uint64_t test_seed(uint64_t fixed) {
  const char* env = std::getenv("PATHVLM_TEST_SEED");
  return env && *env ? std::stoull(env) : fixed;
}

// Whether `f` moves torch's default CPU generator on: loading a model must not (a seeded run's data order, dropout
// and initialisation stay the same whether or not it loads weights).
template <class F>
bool moves_random_stream(F&& f) {
  torch::manual_seed(77);
  const auto undisturbed = torch::rand({4});
  torch::manual_seed(77);
  f();
  return !torch::equal(torch::rand({4}), undisturbed);
}

// A fresh directory <tmp>/pathvlm_<name>_<pid>, removed with the object.
struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& name)
      : path(std::filesystem::temp_directory_path() / ("pathvlm_" + name + "_" + std::to_string(::getpid()))) {
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string operator/(const std::string& child) const { return (path / child).string(); }
  // Writes `text` to `rel` (folders created); returns its path.
  std::string write(const std::string& rel, const std::string& text) const {
    const auto p = path / rel;
    std::filesystem::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
};

// The last record of a run's metrics.jsonl that holds `key` (null when none does).
inline nlohmann::json last_record_with(const std::filesystem::path& metrics, const std::string& key) {
  std::ifstream in(metrics);
  nlohmann::json found;
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!j.is_discarded() && j.contains(key)) found = j;
  }
  return found;
}

}  // namespace pathvlm::testing
