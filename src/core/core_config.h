// Config sections owned by core: the run (name, directory, seed, task) and logging/metrics.
#pragma once
#include <string>
#include <vector>

#include "core/config.h"

namespace pathvlm {

struct RunConfig {
  std::string name = "";
  std::string runs_dir = "runs";
  int64_t seed = 0;
  std::string task = "clip";
  std::vector<std::string> known_tasks;  // not a key: what run.task may name, filled by the job that runs tasks
  template <class V>
  void visit(V& v) {
    v.field("name", name, "run name: the run directory is <runs_dir>/<name> (empty: <task>-<timestamp>)");
    v.field("runs_dir", runs_dir, "directory that holds the run directories");
    v.field("seed", seed, "global random seed (data order, initialisation, augmentation)", cfg::Min(0));
    v.field("task", task, "what to train", known_tasks.empty() ? cfg::Constraint{} : cfg::OneOf(known_tasks));
  }
  // A set name must be a directory name that every later save can use (see run_name_problem, core/run_dir.h).
  void validate(const std::string& where) const;
};

struct LogConfig {
  int every = 10;
  bool tensorboard = true;
  double flush_secs = 30.0;
  std::string level = "info";
  bool all_ranks = false;
  double peak_tflops = 0.0;
  template <class V>
  void visit(V& v) {
    v.field("every", every, "steps between log lines and metrics records", cfg::Min(1));
    v.field("tensorboard", tensorboard, "also write metrics to a TensorBoard event file in the run directory");
    v.field("flush_secs", flush_secs, "seconds between flushes of metrics.jsonl and the event file", cfg::Min(0.0));
    v.field("level", level, "least severe messages printed", cfg::OneOf{"debug", "info", "warn", "error"});
    v.field("all_ranks", all_ranks, "every rank prints info messages, prefixed [rank N] (debugging)");
    v.field("peak_tflops", peak_tflops,
            "peak dense TFLOP/s of one device at the training precision (H100 / H200 SXM bf16: 989; 0: the GPU's "
            "bf16 figure from a table when training in bf16); the live line shows MFU = model FLOPs of the step / "
            "(step time x peak): the task's FLOPs per sample (clip), else 6 x trainable parameters per token",
            cfg::Min(0.0));
  }
};

}  // namespace pathvlm
