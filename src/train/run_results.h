// What a finished run leaves for a person to look at (rank 0, at the very end):
//
//   <run>/results.json  final and best evaluation metrics, the last training scalars, steps, training time over
//                       every resumed piece, samples/s, and the paths of the run's files (docs/formats.md)
//   <run>/loss.png      training loss (and any evaluation loss) over steps
//   <run>/eval.png      the evaluation metrics that lie in [0, 1] (accuracies, recalls) over steps, when there are any
//
// Everything is read back from metrics.jsonl, so the records of earlier pieces of a resumed run count; a step
// logged twice (re-done after a crash) counts once, with its last record. results.json is written last and
// atomically: its presence marks the run as finished (a later `pathvlm train` of the same run stops unless asked).
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace pathvlm::train {

// One process's share of a run: the steps it trained and the seconds it spent in the training loop.
struct RunPiece {
  int64_t from_step = 0, to_step = 0;
  double seconds = 0;
};
nlohmann::json pieces_to_json(const std::vector<RunPiece>& pieces);
std::vector<RunPiece> pieces_from_json(const nlohmann::json& j);  // [] for a missing (null) entry
double total_seconds(const std::vector<RunPiece>& pieces);

// What the trainer knows at the end; the metrics come from metrics.jsonl in run_dir.
struct RunFacts {
  std::string name, task, run_dir;
  int world_size = 1;
  int64_t steps = 0, skipped_steps = 0;
  double epoch = 0;
  int64_t samples = 0;  // samples trained on, all ranks and pieces
  std::vector<RunPiece> pieces;
  std::string checkpoint;  // the last checkpoint's directory ("" if none was saved)
  std::string export_dir;  // "" without an export
  std::string tensorboard; // the event file ("" without one)
};

// Every scalar of metrics.jsonl: tag -> step -> value (the last record of a step wins; null values are skipped).
using MetricHistory = std::map<std::string, std::map<int64_t, double>>;
MetricHistory read_metric_history(const std::string& metrics_jsonl);

// True for metrics where lower is better (losses, perplexities, ranks, the share of answers naming no class), which
// best_eval minimises; it maximises the others.
bool lower_is_better(const std::string& tag);

// results.json's content (see docs/formats.md), from the facts and the history.
nlohmann::ordered_json run_results(const RunFacts& facts, const MetricHistory& history);

// Writes loss.png, eval.png (when there are [0, 1] metrics) and then results.json into facts.run_dir; returns the
// results. Throws pathvlm::Error naming the file that cannot be written.
nlohmann::ordered_json write_run_results(const RunFacts& facts);

}  // namespace pathvlm::train
