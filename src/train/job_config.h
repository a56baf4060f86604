// The root config of a `pathvlm` job: one section per component (see src/core/config.h for the convention).
//
// Components: add your section here with two one-line edits — an #include of your light
// `<thing>_config.h`, a member, and one `v.section("<name>", member, "<one-line doc>");` line in visit.
// Keep the sections in the order of the lists below so `config show` / `config docs` read top-down.
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "core/core_config.h"
#include "dist/dist_config.h"
#include "train/clip_config.h"
#include "train/lm_config.h"
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
  train::LmConfig lm;
  train::ClipTaskConfig clip;

  template <class V>
  void visit(V& v) {
    v.section("run", run, "the run: name, directory, seed, task");
    v.section("log", log, "console log, metrics.jsonl and TensorBoard");
    v.section("dist", dist, "processes: collective backend, timeouts, gradient buckets, optimizer sharding");
    v.section("train", train, "the training loop: steps, batch, precision, freezing");
    v.section("optim", optim, "AdamW, gradient clipping and the learning-rate schedule");
    v.section("checkpoint", checkpoint, "saving, retention and resume");
    v.section("eval", eval, "periodic evaluation");
    v.section("lm", lm, "the toy `lm` task: tiny causal transformer on synthetic sequences");
    v.section("clip", clip, "the `clip` task: contrastive image-text training on tile shards");
  }
};

// Reads a job config file (following `base:`), applies `a.b.c=value` overrides, checks every key.
inline JobConfig load_job_config(const std::string& path, const std::vector<std::string>& overrides = {}) {
  return cfg::load<JobConfig>(path, overrides);
}

}  // namespace pathvlm
