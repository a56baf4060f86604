// Shared by the engine tests: the tiny `lm` job they train (a tiny LLaMA on the built-in text corpus), and
// weights and logs read back.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

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

// The job's model as the task initialises it (same seed), before any training.
inline models::LlamaForCausalLM initial_lm(const JobConfig& job) {
  const auto& cfg = job.task_config<train::LmConfig>();
  const auto tokenizer = train::make_lm_tokenizer(cfg);
  torch::manual_seed(static_cast<uint64_t>(job.run.seed));
  return models::LlamaForCausalLM(train::lm_model_config(cfg, tokenizer, ""));
}

}  // namespace pathvlm::testing
