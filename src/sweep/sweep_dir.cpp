// The sweep directory's files.
#include "sweep/sweep_dir.h"

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/ascii.h"
#include "core/error.h"
#include "core/text_file.h"
#include "train/job_config.h"

namespace fs = std::filesystem;

namespace pathvlm::sweep {

namespace {

std::vector<std::vector<std::string>> read_tsv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields;
    std::istringstream cells(line);
    std::string cell;
    while (std::getline(cells, cell, '\t')) fields.push_back(cell);
    rows.push_back(std::move(fields));
  }
  return rows;
}

std::string queue_state(const std::string& squeue) {
  if (squeue.rfind("RUNNING", 0) == 0 || squeue.rfind("COMPLETING", 0) == 0 || squeue.rfind("CONFIGURING", 0) == 0)
    return "running";
  const std::string lower = ascii_lower(squeue);
  // REQUEUE_HOLD / SPECIAL_EXIT states, or PENDING with JobHeldUser, JobHeldAdmin, job_requeued_in_held_state.
  if (lower.find("held") != std::string::npos || lower.find("hold") != std::string::npos ||
      lower.find("special_exit") != std::string::npos)
    return "held";
  return "queued";
}

}  // namespace

std::string sweep_dir_path(const SweepSpec& spec, const std::string& dir) {
  if (!dir.empty()) return fs::absolute(dir).lexically_normal().string();
  std::vector<std::string> fixed;
  for (const auto& [key, value] : spec.set) fixed.push_back(key + "=" + value);
  const JobConfig job = load_job_config(spec.base, fixed);
  return fs::absolute(fs::path(job.run.runs_dir) / "sweeps" / spec.name).lexically_normal().string();
}

SweepDir prepare_sweep_dir(const std::string& path, const SweepSpec& spec, const std::vector<SweepPoint>& points) {
  SweepDir dir{path};
  std::error_code ec;
  for (const auto& sub : {dir.path + "/status", dir.logs_dir()}) {
    fs::create_directories(sub, ec);
    PATHVLM_CHECK(!ec, "sweep directory '", sub, "' cannot be created: ", ec.message());
  }
  write_text_file(dir.path + "/sweep.yaml", read_text_file(spec.path));
  std::string tsv;
  for (const auto& p : points) {
    tsv += p.name + "\t" + spec.base;
    for (const auto& o : run_overrides(spec, p, dir.path)) {
      PATHVLM_CHECK(o.find_first_of("\t\n") == std::string::npos, "sweep '", spec.path, "': point ", p.index,
                    ": override '", o, "' holds a tab or newline");
      tsv += "\t" + o;
    }
    tsv += "\n";
  }
  write_text_file(dir.tasks_path(), tsv);
  return dir;
}

SweepDir open_sweep_dir(const std::string& path) {
  SweepDir dir{fs::absolute(path).lexically_normal().string()};
  PATHVLM_CHECK(fs::is_regular_file(dir.tasks_path()), "'", path,
                "' is not a sweep directory (no points.tsv; `pathvlm sweep SWEEP.yaml` makes one)");
  return dir;
}

std::vector<std::string> point_names(const SweepDir& dir) {
  std::vector<std::string> names;
  for (const auto& row : read_tsv(dir.tasks_path())) {
    PATHVLM_CHECK(row.size() >= 2, dir.tasks_path(), ":", names.size() + 1, ": expected name, config, overrides");
    names.push_back(row[0]);
  }
  return names;
}

void write_status(const SweepDir& dir, const std::string& name, const std::string& status) {
  write_text_file(dir.status_path(name), status + "\n");
}

std::string read_status(const SweepDir& dir, const std::string& name) {
  if (!fs::is_regular_file(dir.status_path(name))) return "";
  std::string s = read_text_file(dir.status_path(name));
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  return s;
}

void record_launch(const SweepDir& dir, const std::string& launcher, const std::string& job,
                   const std::vector<int>& indices) {
  std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &utc);
  std::string list;
  for (int i : indices) list += (list.empty() ? "" : ",") + std::to_string(i);
  std::ofstream out(dir.jobs_path(), std::ios::app);
  out << when << "\t" << launcher << "\t" << job << "\t" << list << "\n";
  out.close();
  PATHVLM_CHECK(out, "cannot append to '", dir.jobs_path(), "'");
}

std::vector<std::string> recorded_slurm_jobs(const SweepDir& dir) {
  std::vector<std::string> jobs;
  if (!fs::is_regular_file(dir.jobs_path())) return jobs;
  for (const auto& row : read_tsv(dir.jobs_path()))
    if (row.size() >= 3 && row[1] == "slurm") jobs.push_back(row[2]);
  return jobs;
}

std::vector<RunSummary> point_states(const SweepDir& dir, const SlurmQueue& queue) {
  std::vector<RunSummary> out;
  const auto names = point_names(dir);
  for (size_t i = 0; i < names.size(); ++i) {
    RunSummary r = summarize_run(dir.run_path(names[i]));
    r.name = names[i];
    if (r.state != "done") {
      const std::string status = read_status(dir, names[i]);
      if (status == "running") r.state = "running";
      else if (status == "exit 0") r.state = "done";
      else if (status == "exit 42") r.state = "preempted";
      else if (status.rfind("exit ", 0) == 0) r.state = "failed (" + status + ")";
      // The queue knows best what has not finished: waiting, running, or held after a requeue; a task it no longer
      // lists that still says "running" was cancelled or killed.
      if (queue) {
        if (r.state == "running") r.state = "incomplete";
        for (const auto& [index, state] : *queue)
          if (index == static_cast<int>(i)) r.state = queue_state(state);
      }
    }
    out.push_back(std::move(r));
  }
  return out;
}

}  // namespace pathvlm::sweep
