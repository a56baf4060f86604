// A sweep's directory: where its runs live and what launching them left behind.
//
//   <dir>/sweep.yaml        the sweep file as submitted
//   <dir>/points.tsv        one line per point, in index order: run name, base config, overrides (tab-separated);
//                           line i is SLURM array task i (launch/slurm/train.sbatch reads it)
//   <dir>/jobs.txt          one line per launch: time, launcher, job id (SLURM) or "local", the point indices
//   <dir>/status/<name>     "running" or "exit N", written by the launchers around each point's run
//   <dir>/logs/             each point's output (local: <point>.out; SLURM: <sweep name>_<job>_<task>.out)
//   <dir>/<name>/           each point's run directory (run.runs_dir=<dir>, run.name=<name>)
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "sweep/expand.h"
#include "sweep/run_summary.h"

namespace pathvlm::sweep {

struct SweepDir {
  std::string path;  // absolute
  std::string tasks_path() const { return path + "/points.tsv"; }
  std::string jobs_path() const { return path + "/jobs.txt"; }
  std::string logs_dir() const { return path + "/logs"; }
  std::string status_path(const std::string& name) const { return path + "/status/" + name; }
  std::string run_path(const std::string& name) const { return path + "/" + name; }
};

// `dir` if given, else <run.runs_dir of the base config>/sweeps/<sweep name>; made absolute.
std::string sweep_dir_path(const SweepSpec& spec, const std::string& dir);

// Creates the layout and writes sweep.yaml and points.tsv. A sweep directory holding other points under the same
// names keeps their runs: the points file is rewritten, runs resume by name.
SweepDir prepare_sweep_dir(const std::string& path, const SweepSpec& spec, const std::vector<SweepPoint>& points);

// Opens an existing sweep directory (it must hold points.tsv); errors name the directory.
SweepDir open_sweep_dir(const std::string& path);

// The point names of points.tsv, in index order.
std::vector<std::string> point_names(const SweepDir& dir);

void write_status(const SweepDir& dir, const std::string& name, const std::string& status);
// The status file's text without the newline; empty when absent.
std::string read_status(const SweepDir& dir, const std::string& name);

// Appends a line to jobs.txt: "<ISO time>\t<launcher>\t<job id>\t<indices>".
void record_launch(const SweepDir& dir, const std::string& launcher, const std::string& job, const std::vector<int>& indices);
// SLURM job ids recorded in jobs.txt, oldest first.
std::vector<std::string> recorded_slurm_jobs(const SweepDir& dir);

// The SLURM queue's view of a sweep: (array task index, "STATE REASON" as squeue prints them) for its tasks still
// queued; nullopt when unknown (no SLURM launch recorded, or squeue missing or failing).
using SlurmQueue = std::optional<std::vector<std::pair<int, std::string>>>;

// The state of each point: the run directory's (done / incomplete / pending) refined by the launcher's status file
// and the SLURM queue when known: done, queued, running, held (requeue hold), preempted (exit 42, not requeued),
// failed (exit N), incomplete (stopped without a status: killed, or cancelled while the queue no longer lists it),
// pending (never started).
std::vector<RunSummary> point_states(const SweepDir& dir, const SlurmQueue& queue = std::nullopt);

}  // namespace pathvlm::sweep
