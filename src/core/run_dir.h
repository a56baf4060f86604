// The run directory <run.runs_dir>/<name>/: config.yaml (resolved), log.txt, metrics.jsonl, the
// TensorBoard event file, and checkpoints/ (the trainer's). Only rank 0 writes here.
//
//   RunDir run = start_run(job, rank, world_size, name);  // logging set up, settings table printed
//   MetricsWriter metrics(run.writer ? run.path : "", job.log.tensorboard, job.log.flush_secs);
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "core/core_config.h"
#include "core/log.h"

namespace pathvlm {

struct RunDir {
  std::string name;
  std::string path;     // <runs_dir>/<name>
  bool writer = false;  // this process writes the run's files (rank 0)
  bool resumed = false; // the directory existed already (appending to its log and metrics)

  std::string config_path() const { return path + "/config.yaml"; }
  std::string log_path() const { return path + "/log.txt"; }
  std::string metrics_path() const { return path + "/metrics.jsonl"; }
  std::string checkpoints_dir() const { return path + "/checkpoints"; }
};

// Why `name` cannot name a run directory ("" when it can): empty, "." or "..", a '/', a control character,
// invalid UTF-8 (the name is stored in checkpoints' JSON), or longer than a file name may be (255 bytes).
std::string run_name_problem(const std::string& name);

// run.name if set; else "<task>-<SLURM_JOB_ID>" under SLURM; else "<task>-YYYYmmdd-HHMMSS" (local time).
// Without a name or SLURM the ranks' clocks may disagree: broadcast rank 0's name and pass it on.
std::string resolve_run_name(const RunConfig& run);

// Rank 0 creates the directory and checkpoints/, writes config.yaml and sends the log to log.txt;
// other ranks only learn the paths. `name` empty: resolve_run_name(run).
RunDir open_run_dir(const RunConfig& run, const std::string& resolved_yaml, int rank, const std::string& name = "");

// cfg::format_settings of the keys outside the top-level sections `left_out`, with a footer naming those.
std::string settings_table_without(std::vector<cfg::KeyInfo> values, const std::vector<cfg::KeyInfo>& defaults,
                                   const std::vector<std::string>& left_out);

// Everything a job does before work starts: logger rank, level and file; run directory; the table of
// the resolved settings (non-defaults marked) but for the top-level sections in `unused_sections` (the other tasks'
// sections of a training job). `Job` has `run` (RunConfig) and `log` (LogConfig).
template <class Job>
RunDir start_run(const Job& job, int rank, int world_size, const std::string& name = "",
                 const std::vector<std::string>& unused_sections = {}) {
  log_set_rank(rank, world_size);
  log_set_level(job.log.level);
  log_set_all_ranks(job.log.all_ranks);
  RunDir run = open_run_dir(job.run, cfg::to_yaml(job), rank, name);
  log_info(run.resumed ? "continuing run " : "run ", run.name, " in ", run.path, " (", world_size,
           world_size == 1 ? " process)" : " processes)");
  log_info("settings:\n", settings_table_without(cfg::schema<Job>(job), cfg::schema<Job>(), unused_sections));
  return run;
}

}  // namespace pathvlm
