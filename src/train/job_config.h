// The root config of a `pathvlm train` job: the engine's sections, then one section per registered task
// (src/train/registry.h), named after it. See src/core/config.h for the convention.
//
// An engine component adds its section here: an #include of its light `<thing>_config.h`, a member and one
// `v.section(...)` line, in the order `config show` and `config docs` should read. A task adds nothing here:
// its registration line (src/train/tasks.cpp) brings its section.
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "core/core_config.h"
#include "dist/dist_config.h"
#include "train/registry.h"
#include "train/train_config.h"

namespace pathvlm {

struct JobConfig {
  RunConfig run;
  LogConfig log;
  dist::DistConfig dist;
  train::TrainConfig train;
  train::OptimConfig optim;
  train::CheckpointConfig checkpoint;
  train::EvalConfig eval;
  train::TaskSections tasks;

  JobConfig() { run.known_tasks = train::task_names(); }

  // The section of the task whose config struct is C (e.g. job.task_config<train::ClipTaskConfig>()).
  template <class C>
  C& task_config() { return tasks.get<C>(); }
  template <class C>
  const C& task_config() const { return tasks.get<C>(); }

  template <class V>
  void visit(V& v) {
    v.section("run", run, "the run: name, directory, seed, task");
    v.section("log", log, "console log, metrics.jsonl and TensorBoard");
    v.section("dist", dist, "processes: collective backend, timeouts, gradient buckets, optimizer sharding");
    v.section("train", train, "the training loop: steps, batch, precision, freezing");
    v.section("optim", optim, "AdamW, gradient clipping and the learning-rate schedule");
    v.section("checkpoint", checkpoint, "saving, retention and resume");
    v.section("eval", eval, "periodic evaluation");
    tasks.visit(v);
  }
};

// Reads a job config file (following `base:`), applies `a.b.c=value` overrides, checks every key.
inline JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return cfg::load<JobConfig>(path, overrides);
}

}  // namespace pathvlm
