// `pathvlm sweep SWEEP.yaml [--dry-run | --launch local|slurm]` and `pathvlm sweep status DIR`.
#include <filesystem>
#include <iostream>
#include <set>

#include "cli/args.h"
#include "cli/commands.h"
#include "cli/compare_options.h"
#include "core/error.h"
#include "core/log.h"
#include "sweep/expand.h"
#include "sweep/launch.h"
#include "sweep/run_table.h"
#include "sweep/sweep_dir.h"

namespace fs = std::filesystem;

namespace pathvlm::cli {

namespace {

// The points as a Markdown table: index, run name, one column per varying key.
std::string points_table(const sweep::Expansion& e, const std::vector<sweep::RunSummary>& states) {
  std::vector<std::string> header = {"#", "run"};
  if (!states.empty()) header.push_back("state");
  header.insert(header.end(), e.varying_keys.begin(), e.varying_keys.end());
  std::vector<std::vector<std::string>> rows;
  for (const auto& p : e.points) {
    std::vector<std::string> row = {std::to_string(p.index), p.name};
    if (!states.empty()) row.push_back(states[p.index].state);
    for (const auto& [key, value] : p.values) row.push_back(value);
    rows.push_back(std::move(row));
  }
  return sweep::markdown_table(header, rows);
}

std::string this_program() { return fs::read_symlink("/proc/self/exe").string(); }

int run_sweep(const Args& args) {
  ArgParser p("pathvlm sweep",
              "Expand a sweep file (base config, `set`, grid / zip / random axes) into runs, check every point's "
              "config, and print them (--dry-run) or launch them: --launch local (launch/local.sh, --parallel at a "
              "time) or --launch slurm (one job array of launch/slurm/train.sbatch). Launching again skips finished "
              "points and resumes the others from their checkpoints. `pathvlm sweep status DIR` shows progress.");
  p.positional("sweep", "the sweep file (configs/sweeps/*.yaml)");
  p.flag("dry-run", "print the points and where they would run; launch nothing");
  p.option("launch", "local | slurm");
  p.option("dir", "the sweep directory (default: <run.runs_dir>/sweeps/<sweep name>)");
  p.option("ranks", "processes per point (launch.ranks)");
  p.option("parallel", "local: points running at once (launch.parallel)");
  p.option("cpus-per-task", "CPUs per rank: SLURM --cpus-per-task, local OMP_NUM_THREADS (launch.cpus_per_task)");
  p.option("gpus-per-task", "SLURM --gpus-per-task; 0 for a CPU-only job (launch.gpus_per_task)");
  p.option("throttle", "SLURM array tasks running at once, the % of --array; 0: no limit (launch.throttle)");
  p.option("time", "SLURM --time (launch.time)");
  p.option("partition", "SLURM --partition (launch.partition)");
  p.list("sbatch-arg", "more sbatch options, e.g. --sbatch-arg=--account=abc (added to launch.sbatch_args)");
  p.option("launcher", "the local launcher", false, "launch/local.sh");
  p.option("template", "the sbatch template", false, "launch/slurm/train.sbatch");
  if (!p.parse(args)) return 0;

  sweep::SweepSpec spec = sweep::read_sweep_file(p.positionals()[0]);
  auto& l = spec.launch;
  auto count = [&](const char* name, int& out, int min) {
    if (!p.has(name)) return;
    out = static_cast<int>(p.get_int(name));
    PATHVLM_CHECK(out >= min, "--", name, " must be >= ", min, ", got ", out);
  };
  count("ranks", l.ranks, 1);
  count("parallel", l.parallel, 1);
  count("cpus-per-task", l.cpus_per_task, 1);
  count("gpus-per-task", l.gpus_per_task, 0);
  count("throttle", l.throttle, 0);
  if (p.has("time")) l.time = p.get("time");
  if (p.has("partition")) l.partition = p.get("partition");
  for (const auto& a : p.get_list("sbatch-arg")) l.sbatch_args.push_back(a);
  const std::string launch = p.get("launch");
  PATHVLM_CHECK(launch.empty() || launch == "local" || launch == "slurm", "--launch '", launch,
                "': expected local or slurm");

  const sweep::Expansion e = sweep::expand(spec);
  const std::string dir_path = sweep::sweep_dir_path(spec, p.get("dir"));
  sweep::check_points(spec, e.points, dir_path);  // nothing runs unless every point's config is sound
  std::cout << "sweep " << spec.name << ": " << e.points.size() << (e.points.size() == 1 ? " point" : " points")
            << " from " << spec.base << " in " << dir_path << "\n";
  for (const auto& key : e.overridden_keys)
    std::cout << "note: " << key << " varies in several blocks; the last block's values (random over zip over grid) "
              << "are used\n";
  if (e.duplicates_dropped > 0) std::cout << e.duplicates_dropped << " points equal to an earlier one were dropped\n";

  if (p.get_flag("dry-run") || launch.empty()) {
    std::vector<sweep::RunSummary> states;
    if (fs::is_regular_file(dir_path + "/points.tsv")) {
      for (const auto& pt : e.points) states.push_back(sweep::summarize_run(dir_path + "/" + pt.name));
    }
    std::cout << "\n" << points_table(e, states) << "\nlocal: bash " << p.get("launcher") << " " << l.ranks
              << " <base> <overrides>, " << l.parallel << " at a time\nslurm:";
    std::vector<int> all;
    for (const auto& pt : e.points) all.push_back(pt.index);
    for (const auto& a : sweep::sbatch_command(sweep::SweepDir{dir_path}, spec.name, all, l, p.get("template"),
                                               this_program(), fs::current_path().string()))
      std::cout << " " << a;
    std::cout << "\n";
    if (!p.get_flag("dry-run")) std::cout << "\nnothing launched: add --launch local or --launch slurm\n";
    return 0;
  }

  const sweep::SweepDir dir = sweep::prepare_sweep_dir(dir_path, spec, e.points);
  const auto states = sweep::point_states(dir, launch == "slurm" ? sweep::slurm_queue(dir) : std::nullopt);
  std::vector<int> todo;
  int done = 0, active = 0;
  for (const auto& pt : e.points) {
    const std::string& state = states[pt.index].state;
    if (state == "done") ++done;
    else if (launch == "slurm" && (state == "queued" || state == "running" || state == "held")) ++active;
    else todo.push_back(pt.index);
  }
  if (done + active > 0)
    std::cout << "skipping " << done << " finished point" << (done == 1 ? "" : "s")
              << (active ? str(" and ", active, " still in the SLURM queue") : "") << "\n";
  if (todo.empty()) {
    std::cout << "nothing to launch\n";
    return 0;
  }
  const std::string program = this_program();
  if (launch == "slurm") {
    const std::string job = sweep::submit_slurm(dir, spec.name, todo, l, p.get("template"), program);
    std::cout << "submitted job array " << job << " (" << todo.size() << " tasks: --array="
              << sweep::array_spec(todo, l.throttle) << "); logs in " << dir.logs_dir() << "\n"
              << "progress: pathvlm sweep status " << dir.path << "\n";
    return 0;
  }
  sweep::record_launch(dir, "local", "local", todo);
  const int failed = sweep::launch_local(dir, todo, l, p.get("launcher"), program);
  std::cout << "\n" << sweep::compare_runs(sweep::point_states(dir), {}) << "\n";
  PATHVLM_CHECK(failed == 0, failed, " of ", todo.size(), " sweep points failed; their logs are in ", dir.logs_dir());
  return 0;
}

int status(const Args& args) {
  ArgParser p("pathvlm sweep status",
              "The points of a sweep directory: state (done, queued, running, preempted, held, failed, incomplete, "
              "pending), step/total, last loss, best and final eval metrics, wall time, samples/s; a PNG of the "
              "compared metric across points; the best point's resolved config.");
  p.positional("dir", "the sweep directory");
  add_compare_options(p, "point", "where the PNG goes (default: <dir>/<metric>.png)");
  if (!p.parse(args)) return 0;
  const sweep::SweepDir dir = sweep::open_sweep_dir(p.positionals()[0]);
  const auto runs = sweep::point_states(dir, sweep::slurm_queue(dir));
  sweep::CompareOptions o = compare_options(p);
  if (o.plot.empty()) {
    std::string file = sweep::compared_metric(runs, o.metric);
    for (char& c : file) c = c == '/' ? '_' : c;
    o.plot = dir.path + "/" + file + ".png";
  }
  std::cout << sweep::compare_runs(runs, o);
  return 0;
}

}  // namespace

int cmd_sweep(const Args& args) {
  if (!args.empty() && args[0] == "status") return status(Args(args.begin() + 1, args.end()));
  return run_sweep(args);
}

}  // namespace pathvlm::cli
