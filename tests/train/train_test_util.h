// Shared by the engine tests: the tiny `lm` job they train, and weights and logs read back.
#pragma once
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdint>
#include <fstream>
#include <iterator>
#include <map>
#include <string>

#include "io/safetensors.h"
#include "train/job_config.h"
#include "train/lm/config.h"

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

// The tiny job the engine tests start from: the `lm` task (width 32, 16 tokens, 2 blocks) on CPU, 12 sequences
// per micro-batch, no periodic checkpoints, a fresh start, no TensorBoard.
inline JobConfig tiny_lm_job(const std::string& runs_dir, const std::string& name, int64_t seed, int64_t steps,
                             int64_t train_sequences = 240) {
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
  lm.dim = 32;
  lm.seq_len = 16;
  lm.train_sequences = train_sequences;
  lm.eval_sequences = 0;
  return job;
}

}  // namespace pathvlm::testing
