// `pathvlm runs compare RUN... | DIR`: runs side by side.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/compare_options.h"
#include "core/error.h"
#include "sweep/run_table.h"
#include "sweep/sweep_dir.h"

namespace fs = std::filesystem;

namespace pathvlm::cli {

namespace {

// The runs named: run directories as given; a sweep directory's points (with their launch states); any other
// directory's run directories (e.g. runs/).
std::vector<sweep::RunSummary> collect(const std::vector<std::string>& paths) {
  std::vector<sweep::RunSummary> runs;
  for (const auto& path : paths) {
    PATHVLM_CHECK(fs::is_directory(path), "'", path, "' is not a directory (expected a run or a folder of runs)");
    if (sweep::is_run_dir(path)) {
      runs.push_back(sweep::summarize_run(path));
    } else if (fs::is_regular_file(path + "/points.tsv")) {
      const auto points = sweep::point_states(sweep::open_sweep_dir(path));
      runs.insert(runs.end(), points.begin(), points.end());
    } else {
      std::vector<std::string> dirs;
      for (const auto& entry : fs::directory_iterator(path))
        if (entry.is_directory() && sweep::is_run_dir(entry.path().string())) dirs.push_back(entry.path().string());
      PATHVLM_CHECK(!dirs.empty(), "'", path, "' holds no run directories (none has config.yaml or metrics.jsonl)");
      std::sort(dirs.begin(), dirs.end());
      for (const auto& d : dirs) runs.push_back(sweep::summarize_run(d));
    }
  }
  return runs;
}

int compare(const Args& args) {
  ArgParser p("pathvlm runs compare",
              "Runs side by side, read from their metrics.jsonl: state, step/total, last loss, best and final eval "
              "metrics, wall time, samples/s; the best run's resolved config; optionally a PNG of one metric across "
              "the runs. Give run directories, a sweep directory or a folder of runs.");
  p.positional("runs", "run directories, or a folder holding them", true);
  add_compare_options(p, "run", "write a PNG of the metric across the runs here");
  if (!p.parse(args)) return 0;
  std::cout << sweep::compare_runs(collect(p.positionals()), compare_options(p));
  return 0;
}

}  // namespace

int cmd_runs(const Args& args) {
  return run_verb("runs", "RUN... | DIR", "Look at finished and running runs.",
                  {{"compare", "a table of runs, the best run's config, a plot of one metric", compare}}, args);
}

}  // namespace pathvlm::cli
