// Local and SLURM launches of sweep points.
#include "sweep/launch.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "core/log.h"
#include "core/text_file.h"

namespace fs = std::filesystem;

namespace pathvlm::sweep {

namespace {

std::vector<char*> c_args(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(a.data());
  out.push_back(nullptr);
  return out;
}

// The fields of points.tsv line `index`.
std::vector<std::string> task_line(const SweepDir& dir, int index) {
  std::istringstream in(read_text_file(dir.tasks_path()));
  std::string line;
  for (int i = 0; std::getline(in, line); ++i)
    if (i == index) {
      std::vector<std::string> fields;
      std::istringstream cells(line);
      std::string cell;
      while (std::getline(cells, cell, '\t')) fields.push_back(cell);
      return fields;
    }
  throw Error(str(dir.tasks_path(), ": no point ", index));
}

int exit_code(int raw) { return WIFEXITED(raw) ? WEXITSTATUS(raw) : 128 + WTERMSIG(raw); }

}  // namespace

int launch_local(const SweepDir& dir, const std::vector<int>& indices, const LaunchSpec& launch,
                 const std::string& launcher, const std::string& program) {
  PATHVLM_CHECK(fs::is_regular_file(launcher), "local launcher '", launcher,
                "' not found (run from the repository root or pass --launcher launch/local.sh)");
  std::map<pid_t, std::string> running;  // pid -> point name
  int failed = 0;
  auto reap_one = [&] {
    int raw = 0;
    const pid_t pid = waitpid(-1, &raw, 0);
    PATHVLM_CHECK(pid > 0, "waiting for a sweep point: ", std::strerror(errno));
    const std::string name = running.at(pid);
    running.erase(pid);
    const int rc = exit_code(raw);
    write_status(dir, name, "exit " + std::to_string(rc));
    log_info("sweep point ", name, rc == 0 ? " done" : str(" exited with status ", rc), " (log: ", dir.logs_dir(), "/",
             name, ".out)");
    if (rc != 0) ++failed;
  };
  for (int index : indices) {
    while (static_cast<int>(running.size()) >= launch.parallel) reap_one();
    std::vector<std::string> fields = task_line(dir, index);
    const std::string name = fields[0];
    std::vector<std::string> args = {"bash", launcher, std::to_string(launch.ranks)};
    args.insert(args.end(), fields.begin() + 1, fields.end());
    const std::string log_path = dir.logs_dir() + "/" + name + ".out";
    write_status(dir, name, "running");
    log_info("sweep point ", index, " ", name, ": ", launch.ranks, launch.ranks == 1 ? " rank" : " ranks");
    const pid_t pid = fork();
    PATHVLM_CHECK(pid >= 0, "cannot start sweep point ", name, ": ", std::strerror(errno));
    if (pid == 0) {
      const int fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
      if (fd < 0) _exit(127);
      dup2(fd, 1), dup2(fd, 2), close(fd);
      setenv("PATHVLM", program.c_str(), 1);
      setenv("OMP_NUM_THREADS", std::to_string(launch.cpus_per_task).c_str(), 1);
      auto argv = c_args(args);
      execvp("bash", argv.data());
      _exit(127);
    }
    running[pid] = name;
  }
  while (!running.empty()) reap_one();
  return failed;
}

std::string array_spec(std::vector<int> indices, int throttle) {
  std::sort(indices.begin(), indices.end());
  indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
  std::string out;
  for (size_t i = 0; i < indices.size();) {
    size_t j = i;
    while (j + 1 < indices.size() && indices[j + 1] == indices[j] + 1) ++j;
    out += (out.empty() ? "" : ",") + std::to_string(indices[i]);
    if (j > i) out += "-" + std::to_string(indices[j]);
    i = j + 1;
  }
  if (throttle > 0) out += "%" + std::to_string(throttle);
  return out;
}

std::vector<std::string> sbatch_command(const SweepDir& dir, const std::string& sweep_name, const std::vector<int>& indices,
                                        const LaunchSpec& launch, const std::string& template_path,
                                        const std::string& program, const std::string& workdir) {
  std::vector<std::string> cmd = {"sbatch",
                                  "--parsable",
                                  "--job-name=" + sweep_name,
                                  "--array=" + array_spec(indices, launch.throttle),
                                  "--ntasks=" + std::to_string(launch.ranks),
                                  "--cpus-per-task=" + std::to_string(launch.cpus_per_task),
                                  "--output=" + dir.logs_dir() + "/%x_%A_%a.out",
                                  "--chdir=" + workdir,
                                  "--export=ALL,PATHVLM=" + program + ",PATHVLM_TASKS=" + dir.tasks_path()};
  if (launch.gpus_per_task > 0) cmd.push_back("--gpus-per-task=" + std::to_string(launch.gpus_per_task));
  if (!launch.time.empty()) cmd.push_back("--time=" + launch.time);
  if (!launch.partition.empty()) cmd.push_back("--partition=" + launch.partition);
  cmd.insert(cmd.end(), launch.sbatch_args.begin(), launch.sbatch_args.end());
  cmd.push_back(template_path);
  return cmd;
}

std::pair<int, std::string> run_program(const std::vector<std::string>& command) {
  int fds[2];
  PATHVLM_CHECK(pipe(fds) == 0, "cannot run ", command[0], ": ", std::strerror(errno));
  const pid_t pid = fork();
  PATHVLM_CHECK(pid >= 0, "cannot run ", command[0], ": ", std::strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 1), dup2(fds[1], 2), close(fds[1]);
    std::vector<std::string> args = command;
    auto argv = c_args(args);
    execvp(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(fds[0]);
  int raw = 0;
  while (waitpid(pid, &raw, 0) < 0 && errno == EINTR) {
  }
  const int rc = exit_code(raw);
  PATHVLM_CHECK(rc != 127, "cannot run '", command[0], "' (not installed or not on PATH): ", out);
  return {rc, out};
}

std::string submit_slurm(const SweepDir& dir, const std::string& sweep_name, const std::vector<int>& indices,
                         const LaunchSpec& launch, const std::string& template_path, const std::string& program) {
  PATHVLM_CHECK(fs::is_regular_file(template_path), "sbatch template '", template_path,
                "' not found (run from the repository root or pass --template launch/slurm/train.sbatch)");
  const auto cmd = sbatch_command(dir, sweep_name, indices, launch, fs::absolute(template_path).string(), program,
                                  fs::current_path().string());
  const auto [rc, out] = run_program(cmd);
  std::string job;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);)
    if (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))
      job = line.substr(0, line.find(';'));
  PATHVLM_CHECK(rc == 0 && !job.empty(), "sbatch failed (status ", rc, "): ", out);
  record_launch(dir, "slurm", job, indices);
  return job;
}

SlurmQueue slurm_queue(const SweepDir& dir) {
  const auto jobs = recorded_slurm_jobs(dir);
  if (jobs.empty()) return std::nullopt;
  // All of this user's array tasks, filtered here: asking for finished job ids makes squeue fail.
  std::pair<int, std::string> result;
  try {
    result = run_program({"squeue", "--noheader", "--me", "--array", "--format=%F %K %T %r"});
  } catch (const Error&) {
    return std::nullopt;  // no SLURM here: the status files say what is known
  }
  if (result.first != 0) return std::nullopt;
  std::vector<std::pair<int, std::string>> out;
  std::istringstream lines(result.second);
  for (std::string line; std::getline(lines, line);) {
    std::istringstream fields(line);
    std::string job, task, state;
    if (!(fields >> job >> task) || std::find(jobs.begin(), jobs.end(), job) == jobs.end()) continue;
    std::getline(fields, state);
    if (task.find_first_not_of("0123456789") == std::string::npos && !task.empty())
      out.emplace_back(std::stoi(task), state.empty() ? state : state.substr(1));
  }
  return out;
}

}  // namespace pathvlm::sweep
