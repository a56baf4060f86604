// The options `sweep status` and `runs compare` share (which metric, the order, the format, the plot), declared and
// read in one place so the two commands name and explain them alike.
#pragma once
#include <string>

#include "cli/args.h"
#include "sweep/run_table.h"

namespace pathvlm::cli {

// `what`: "point" or "run"; `plot_help`: where the PNG goes.
inline void add_compare_options(ArgParser& p, const std::string& what, const std::string& plot_help) {
  p.option("metric", "the metric to compare, plot and pick the best " + what + " by (default: the first eval/* metric)");
  p.option("sort", "name, state, step, loss, wall, samples_per_s or a metric (best first); default: the metric");
  p.option("format", "md, csv or json", false, "md");
  p.option("plot", plot_help);
}

inline sweep::CompareOptions compare_options(const ArgParser& p) {
  return {p.get("metric"), p.get("sort"), p.get("format"), p.get("plot")};
}

}  // namespace pathvlm::cli
