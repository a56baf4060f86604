// Shared by the engine tests: the tiny `lm` job they train (a tiny LLaMA on the built-in text corpus), and
// weights and logs read back.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "synth/synth_text.h"
#include "train/job_config.h"
#include "train/lm/task.h"

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

namespace pathvlm::testing {

using Tensors = std::map<std::string, torch::Tensor>;

// Every tensor of a safetensors file, copied out of the mapping.
inline Tensors load_all(const std::string& path) {
  auto f = safetensors::File::open(path);
  Tensors out;
  for (const auto& info : f.tensors()) out[info.name] = f.get(info.name).clone();
  return out;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// The built-in corpus (synth/synth_text.h: 400 training and 40 evaluation documents) and its 512-token
// tokenizer, written once per test program into a temporary folder removed at exit.
inline const synth::SynthTextReport& tiny_text_corpus() {
  struct Corpus {
    synth::SynthTextOptions options;
    synth::SynthTextReport report;
    Corpus() {
      options.out_dir =
          (std::filesystem::temp_directory_path() / ("pathvlm_text_corpus_" + std::to_string(::getpid()))).string();
      options.train_documents = 400;
      options.eval_documents = 40;
      options.vocab_size = 512;
      report = synth::synth_text(options);
    }
    ~Corpus() { std::filesystem::remove_all(options.out_dir); }
  };
  static const Corpus corpus;
  return corpus.report;
}

// The tiny job the engine tests start from: the `lm` task (LLaMA preset "tiny": width 64, 2 layers) on the
// built-in corpus packed into 32-token sequences, on CPU, 12 sequences per micro-batch, no evaluation, no
// periodic checkpoints, a fresh start, no TensorBoard.
inline JobConfig tiny_lm_job(const std::string& runs_dir, const std::string& name, int64_t seed, int64_t steps) {
  JobConfig job;
  job.run.task = "lm";
  job.run.name = name;
  job.run.runs_dir = runs_dir;
  job.run.seed = seed;
  job.log.tensorboard = false;
  job.train.steps = steps;
  job.train.micro_batch_size = 12;
  job.train.device = "cpu";
  job.optim.lr = 3e-3;
  job.checkpoint.every_steps = 0;
  job.checkpoint.resume = "none";
  auto& lm = job.task_config<train::LmConfig>();
  lm.model = "tiny";
  lm.seq_len = 32;
  lm.tokenizer = tiny_text_corpus().tokenizer;
  lm.data.train = {tiny_text_corpus().train_jsonl};
  lm.data.workers = 1;
  return job;
}

// A byte-level tokenizer.json in `dir` with no merges: one token per byte (GPT-2's printable stand-ins), then
// <|endoftext|> (256, the EOS) and `specials` (257, ...), and no BOS, as Qwen's tokenizer has none. Returns its path.
inline std::string write_byte_level_tokenizer(const std::string& dir, const std::vector<std::string>& specials = {}) {
  nlohmann::json vocab = nlohmann::json::object();
  int shifted = 0;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
    const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + static_cast<uint32_t>(shifted++);
    const std::string utf8 = cp < 0x80 ? std::string(1, static_cast<char>(cp))
                                       : std::string{static_cast<char>(0xC0 | (cp >> 6)),
                                                     static_cast<char>(0x80 | (cp & 0x3F))};
    vocab[utf8] = b;
  }
  nlohmann::json added = nlohmann::json::array();
  std::vector<std::string> contents = {"<|endoftext|>"};
  contents.insert(contents.end(), specials.begin(), specials.end());
  for (size_t i = 0; i < contents.size(); ++i) {
    added.push_back({{"id", 256 + i}, {"content", contents[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  const nlohmann::json byte_level = {
      {"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  const nlohmann::json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", byte_level},
      {"post_processor", nullptr},
      {"decoder", byte_level},
      {"model",
       {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
        {"vocab", vocab}, {"merges", nlohmann::json::array()}}}};
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/tokenizer.json") << tokenizer.dump();
  return dir + "/tokenizer.json";
}

// The job's model as the task initialises it (same seed), before any training.
inline models::LlamaForCausalLM initial_lm(const JobConfig& job) {
  const auto& cfg = job.task_config<train::LmConfig>();
  const auto tokenizer = train::make_lm_tokenizer(cfg);
  torch::manual_seed(static_cast<uint64_t>(job.run.seed));
  return models::LlamaForCausalLM(train::lm_model_config(cfg, *tokenizer, ""));
}

// The lm task with a non-finite (NaN) loss on chosen 1-based steps, for the skip and divergence tests.
class NanLmTask : public train::LmTask {
 public:
  explicit NanLmTask(std::set<int> nan_steps = {}) : nan_steps_(std::move(nan_steps)) {}
  train::StepOutput forward_backward(const std::vector<train::Batch>& micro, train::StepContext& ctx) override {
    auto out = LmTask::forward_backward(micro, ctx);
    if (nan_steps_.count(ctx.step)) out.loss = out.loss * std::numeric_limits<float>::quiet_NaN();
    return out;
  }

 private:
  std::set<int> nan_steps_;
};

// ---- subprocess runs: real `pathvlm train` under mpirun -----------------------------------------------

// An empty temporary folder for one test.
inline std::string fresh_dir(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("pathvlm_test_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

// Largest relative L2 error over tensors.
inline double max_relative_error(const Tensors& a, const Tensors& b) {
  EXPECT_EQ(a.size(), b.size());
  double worst = 0;
  for (const auto& [name, t] : a) {
    auto it = b.find(name);
    if (it == b.end()) {
      ADD_FAILURE() << "tensor " << name << " missing";
      continue;
    }
    const double denom = std::max(1e-12, it->second.norm().item<double>());
    worst = std::max(worst, (t - it->second).norm().item<double>() / denom);
  }
  return worst;
}

inline bool tools_available(std::string* why) {
  if (!std::filesystem::exists(PATHVLM_BINARY))
    return *why = std::string("the pathvlm program is not built: ") + PATHVLM_BINARY, false;
  if (std::string(PATHVLM_MPIRUN).empty() || !std::filesystem::exists(PATHVLM_MPIRUN))
    return *why = "mpirun not found", false;
  return true;
}

// Runs `pathvlm train` on `ranks` processes with overrides; returns the exit status (or 128+signal).
inline int launch(int ranks, const std::string& config, const std::vector<std::string>& overrides,
                  const std::string& log) {
  std::string cmd = std::string(PATHVLM_MPIRUN) + " -np " + std::to_string(ranks) +
                    " --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 " + PATHVLM_BINARY + " train " + config;
  for (const auto& o : overrides) cmd += " '" + o + "'";
  cmd += " > " + log + " 2>&1";
  const int status = std::system(cmd.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The job as a YAML file, for the subprocess runs.
inline std::string write_config(const std::string& dir, const JobConfig& job) {
  const std::string path = dir + "/job.yaml";
  std::ofstream(path) << cfg::to_yaml(job);
  return path;
}

// step -> the train/loss text of its last record in metrics.jsonl (a resumed run re-logs some steps).
inline std::map<int64_t, std::string> logged_losses(const std::string& metrics) {
  std::map<int64_t, std::string> out;
  std::ifstream in(metrics);
  std::string line;
  while (std::getline(in, line)) {
    auto j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.contains("train/loss")) continue;
    out[j["step"].get<int64_t>()] = j["train/loss"].dump();
  }
  return out;
}

// The same global batch of 12 as one rank (the reference, "ref"), 2 x 6, 3 x 4 and 2 ranks x 3 x 2 accumulation steps.
struct WorldVariant {
  std::string name;
  int ranks, micro, accum;
};
inline const std::vector<WorldVariant>& world_variants() {
  static const std::vector<WorldVariant> variants = {{"ref", 1, 12, 1}, {"w2", 2, 6, 1}, {"w3", 3, 4, 1},
                                                     {"w2_accum", 2, 3, 2}};
  return variants;
}

// Runs `config` once per world variant as run `<dir>/<name>`; asserts each succeeds.
inline void launch_world_variants(const std::string& dir, const std::string& config) {
  for (const auto& v : world_variants()) {
    const int rc = launch(v.ranks, config,
                          {"run.name=" + v.name, "train.micro_batch_size=" + std::to_string(v.micro),
                           "train.grad_accum=" + std::to_string(v.accum)},
                          dir + "/" + v.name + ".out");
    ASSERT_EQ(rc, 0) << v.name << ":\n" << read_text(dir + "/" + v.name + ".out");
  }
}

// A run interrupted after `fault_step` by `signal` on the last rank (expected_status < 0: any failure status), then
// resumed from its checkpoint of `resumed_from` with `resume: auto`.
struct Interruption {
  int ranks = 2;
  std::string signal = "KILL";
  int expected_status = -1;
  int64_t fault_step = 10, resumed_from = 8, steps = 20;
};

// Runs `config` (checkpoint.resume auto, periodic checkpoints) straight through and interrupted-then-resumed as
// `how` says, with `overrides`, under `dir`; expects the exported model.safetensors and every logged loss bitwise
// equal.
inline void expect_bitwise_resume(const std::string& dir, const std::string& config, const Interruption& how,
                                  const std::vector<std::string>& overrides = {}) {
  auto with = [&](std::vector<std::string> own) {
    own.insert(own.end(), overrides.begin(), overrides.end());
    return own;
  };
  ASSERT_EQ(launch(how.ranks, config, with({"run.name=straight"}), dir + "/straight.out"), 0)
      << read_text(dir + "/straight.out");
  const std::vector<std::string> fault = {"run.name=interrupted", "train.fault.step=" + std::to_string(how.fault_step),
                                          "train.fault.rank=" + std::to_string(how.ranks - 1),
                                          "train.fault.signal=" + how.signal};
  const int rc = launch(how.ranks, config, with(fault), dir + "/first.out");
  if (how.expected_status >= 0) ASSERT_EQ(rc, how.expected_status) << read_text(dir + "/first.out");
  else ASSERT_NE(rc, 0) << read_text(dir + "/first.out");
  ASSERT_FALSE(std::filesystem::exists(dir + "/interrupted/export")) << "the interrupted run reached the end";
  ASSERT_EQ(launch(how.ranks, config, with({"run.name=interrupted"}), dir + "/second.out"), 0)
      << read_text(dir + "/second.out");
  const auto second = read_text(dir + "/second.out");
  EXPECT_HAS(second, "at step " + std::to_string(how.resumed_from));

  auto a = load_all(dir + "/straight/export/model.safetensors");
  auto b = load_all(dir + "/interrupted/export/model.safetensors");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  auto la = logged_losses(dir + "/straight/metrics.jsonl"), lb = logged_losses(dir + "/interrupted/metrics.jsonl");
  ASSERT_EQ(static_cast<int64_t>(la.size()), how.steps);
  EXPECT_EQ(la, lb);
}

}  // namespace pathvlm::testing
