// Shared by the instruct task tests: the tiny instruct job of each phase on the small synthetic instruction set of
// tests/instruct_data_util.h.
#pragma once
#include <map>
#include <string>

#include "dist/process_group.h"
#include "instruct_data_util.h"
#include "train/instruct/config.h"
#include "train/instruct/task.h"
#include "train/job_config.h"

namespace pathvlm::testing {

// Phase 1 (template plain, the LLM frozen) or phase 2 (vicuna_v1, all but the tower trained): a tiny CLIP tower on
// 32-pixel tiles (4 image rows), the mlp2x_gelu projector and the tiny LLaMA, on CPU, 12 samples per
// micro-batch, logged every step, no evaluation, no periodic checkpoints, a fresh start.
inline JobConfig tiny_instruct_job(const std::string& runs_dir, const std::string& name, int phase, int64_t steps) {
  const auto& data = tiny_instruct_data();
  JobConfig job;
  job.run.task = "instruct";
  job.run.name = name;
  job.run.runs_dir = runs_dir;
  job.run.seed = 5;
  job.log.tensorboard = false;
  job.log.every = 1;
  job.train.steps = steps;
  job.train.micro_batch_size = 12;
  job.train.device = "cpu";
  if (phase == 1) job.train.freeze = {"language_model"};
  job.optim.lr = 3e-3;
  job.optim.warmup_steps = 2;
  job.optim.clip_grad_norm = 1.0;
  job.checkpoint.every_steps = 0;
  job.checkpoint.resume = "none";
  auto& ic = job.task_config<train::InstructConfig>();
  ic.vision_tower = "tiny";
  ic.vision_image_size = 32;
  ic.language_model = "tiny";
  ic.tokenizer = data.tokenizer;
  ic.conversation_template = phase == 1 ? "plain" : "vicuna_v1";
  ic.max_length = 192;
  ic.data.train = {phase == 1 ? data.phase1 : data.phase2};
  ic.data.images = {data.train_shards, data.support_shards, data.eval_shards};
  ic.data.workers = 1;
  return job;
}

// The metrics `pathvlm eval` computes for `job` with `weights` ("" = what the job's sources alone give), on CPU.
inline std::map<std::string, double> evaluate(const JobConfig& job, const std::string& weights) {
  auto comm = dist::make_local_comm();
  train::TaskContext ctx{job, torch::Device(torch::kCPU), *comm, 0, 1, job.train.micro_batch_size, 1,
                         static_cast<uint64_t>(job.run.seed), ""};
  train::InstructTask task;
  task.build_for_eval(ctx, weights);
  task.model().eval();
  return task.evaluate(*comm);
}

}  // namespace pathvlm::testing
