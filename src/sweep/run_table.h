// Runs side by side: the table of `sweep status` and `runs compare` (Markdown, CSV or JSON), sorting, the best run
// by a metric and that metric over steps for every run as one PNG.
//
//   auto metric = compared_metric(runs, "");          // first eval/* metric logged, else train/loss
//   sort_runs(runs, "eval/zeroshot_top1");            // best first
//   std::cout << format_runs(runs, metric, "md");
//   plot_metric(runs, metric, "runs/sweeps/lr/eval_zeroshot_top1.png");
#pragma once
#include <string>
#include <vector>

#include "sweep/run_summary.h"

namespace pathvlm::sweep {

// `requested` when given (it must be logged by some run: an Error lists the ones that are), else the first eval/*
// metric any run logged, else train/loss.
std::string compared_metric(const std::vector<RunSummary>& runs, const std::string& requested);

// A run's best value of `metric` (eval metrics: best_metrics; others: the best of its history); none if never logged.
std::optional<double> best_value(const RunSummary& run, const std::string& metric);

// Sorts by `key`: name, state, step, loss, wall, samples_per_s (ascending), or a metric (best value first, runs
// without it last). Throws pathvlm::Error naming the key and the choices.
void sort_runs(std::vector<RunSummary>& runs, const std::string& key);

// The run with the best value of `metric`; nullptr if no run logged it.
const RunSummary* best_run(const std::vector<RunSummary>& runs, const std::string& metric);

// A Markdown table, columns padded so it also reads well as plain text ('|' in cells escaped).
std::string markdown_table(const std::vector<std::string>& header, const std::vector<std::vector<std::string>>& rows);

// The table: run, state, step/total, loss, best and final of every eval metric, wall time, samples/s.
// "md": a Markdown table; "csv": RFC 4180 with numbers in full; "json": {"metric", "best", "runs": [...]}.
std::string format_runs(const std::vector<RunSummary>& runs, const std::string& metric, const std::string& format);

// `metric` against step, one line per run (labelled with its name), as a PNG (src/core/plot.h).
void plot_metric(const std::vector<RunSummary>& runs, const std::string& metric, const std::string& path);

struct CompareOptions {
  std::string metric;       // empty: compared_metric's choice
  std::string sort;         // empty: the metric, best first
  std::string format = "md";
  std::string plot;         // a PNG path; empty: no plot
};

// What `sweep status` and `runs compare` print: the sorted table, then (md) where the plot went and the best run's
// resolved config (its config.yaml); JSON carries the config as "best_config". Writes the plot when asked.
std::string compare_runs(std::vector<RunSummary> runs, const CompareOptions& options);

}  // namespace pathvlm::sweep
