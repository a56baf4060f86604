// Creating and naming run directories.
#include "core/run_dir.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/utf8.h"

namespace fs = std::filesystem;

namespace pathvlm {

std::string run_name_problem(const std::string& name) {
  if (name.empty()) return "is empty";
  if (name == "." || name == "..") return "is not a directory name of its own";
  if (name.find('/') != std::string::npos) return "contains '/' (it names one directory under run.runs_dir)";
  for (unsigned char c : name)
    if (c < 0x20 || c == 0x7F) return str("contains the control character 0x", std::hex, int(c));
  if (const size_t bad = utf8_error_at(name); bad != std::string::npos)
    return str("is not valid UTF-8 (byte ", bad, ")");
  if (name.size() > 255) return str("is ", name.size(), " bytes long; a directory name has at most 255");
  return "";
}

void RunConfig::validate(const std::string& where) const {
  if (name.empty()) return;  // a name is made up at start
  const std::string problem = run_name_problem(name);
  PATHVLM_CHECK(problem.empty(), where, ": run.name '", name, "' ", problem);
}

std::string resolve_run_name(const RunConfig& run) {
  if (!run.name.empty()) return run.name;
  if (const char* job = std::getenv("SLURM_JOB_ID"); job && *job) return run.task + "-" + job;
  std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &local);
  return run.task + "-" + buf;
}

std::string settings_table_without(std::vector<cfg::KeyInfo> values, const std::vector<cfg::KeyInfo>& defaults,
                                   const std::vector<std::string>& left_out) {
  if (left_out.empty()) return cfg::format_settings(values, defaults);
  auto in_left_out = [&](const cfg::KeyInfo& k) {
    return std::find(left_out.begin(), left_out.end(), k.key.substr(0, k.key.find('.'))) != left_out.end();
  };
  values.erase(std::remove_if(values.begin(), values.end(), in_left_out), values.end());
  std::string names;
  for (const auto& n : left_out) names += (names.empty() ? "" : ", ") + n;
  return cfg::format_settings(values, defaults) + "(not shown, unused by this job: " + names +
         "; `pathvlm config show CONFIG --table` lists every setting)\n";
}

RunDir open_run_dir(const RunConfig& run, const std::string& resolved_yaml, int rank, const std::string& name) {
  RunDir dir;
  dir.name = name.empty() ? resolve_run_name(run) : name;
  const std::string problem = run_name_problem(dir.name);
  PATHVLM_CHECK(problem.empty(), "run name '", dir.name, "' ", problem);
  dir.path = (fs::path(run.runs_dir) / dir.name).string();
  dir.writer = rank == 0;
  std::error_code ec;
  dir.resumed = fs::exists(dir.config_path(), ec);
  if (!dir.writer) return dir;

  fs::create_directories(dir.checkpoints_dir(), ec);
  PATHVLM_CHECK(!ec, "run directory '", dir.path, "' cannot be created: ", ec.message());
  std::string previous;
  if (dir.resumed) {
    std::ifstream in(dir.config_path());
    std::ostringstream text;
    text << in.rdbuf();
    previous = text.str();
  }
  // Written to a temporary name and renamed, so a crash never leaves half a config.
  std::string tmp = dir.config_path() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << resolved_yaml;
    PATHVLM_CHECK(out.good(), "run directory '", dir.path, "': cannot write config.yaml: ", std::strerror(errno));
  }
  fs::rename(tmp, dir.config_path(), ec);
  PATHVLM_CHECK(!ec, "run directory '", dir.path, "': cannot write config.yaml: ", ec.message());
  log_set_file(dir.log_path());
  if (dir.resumed && previous != resolved_yaml)
    log_warn("run directory '", dir.path, "' held a different config.yaml; it now holds this run's config");
  return dir;
}

}  // namespace pathvlm
