// What a run directory says about its run: progress, losses, evaluation metrics and speed, read from its
// config.yaml, metrics.jsonl and checkpoints/ (src/core/run_dir.h), for `sweep status` and `runs compare`.
//
//   RunSummary r = summarize_run("runs/sweeps/lr/lr=1e-4");
//   r.state;  r.step; r.total_steps;  r.final_metrics["eval/zeroshot_top1"];  r.history["train/loss"]
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::sweep {

struct RunSummary {
  std::string name, path;
  // "done": it reached train.steps and saved or exported there (or wrote results.json); "incomplete": it has
  // started; "pending": no run directory yet. Launchers refine this (sweep status: running, preempted, failed).
  std::string state = "pending";
  int64_t step = 0, total_steps = 0;  // last logged step; train.steps of its config.yaml (0: unknown)
  std::optional<double> last_loss;    // train/loss of the last record
  std::map<std::string, double> best_metrics, final_metrics;  // every eval/* scalar: best (see lower_is_better), last
  double wall_s = 0;                  // from the first to the last metrics record
  std::optional<double> samples_per_s;  // mean of train/samples_per_s over the records
  std::map<std::string, std::vector<std::pair<double, double>>> history;  // every scalar: (step, value)
  int bad_lines = 0;                  // metrics.jsonl lines that are not JSON records (torn by a kill)
};

// Losses, perplexities and errors are better low; everything else (accuracy, recall, BLEU) high.
bool lower_is_better(const std::string& metric);

// Reads `dir`; a missing directory gives state "pending". A run resumed from an earlier checkpoint logs some steps
// again: the later records replace the earlier ones. Throws pathvlm::Error naming config.yaml when it is not YAML.
RunSummary summarize_run(const std::string& dir);

// True when `dir` looks like a run directory (holds config.yaml or metrics.jsonl).
bool is_run_dir(const std::string& dir);

}  // namespace pathvlm::sweep
