// `pathvlm eval`: the evaluation of the task a config names (run.task), on every rank started with it.
// The CLI knows no task: each registered task lists the options it accepts (src/train/tasks.cpp), and each
// option is an override of one key of that task's section.
//
//   pathvlm eval configs/clip/demo_tiny.yaml [key=value ...]          # the run's latest checkpoint
//   pathvlm eval --model runs/demo/export --zeroshot shards/heldout --classes configs/clip/zeroshot_demo.yaml
//   pathvlm eval --model CONCH/ --zeroshot crc100k/ --classes crc100k_prompts_all_per_class.json   # CONCH v1 too
//   mpirun -np 2 pathvlm eval ...                                       # each rank evaluates its share
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/process_group.h"
#include "train/job_config.h"
#include "train/task.h"

namespace pathvlm::cli {
namespace {

namespace fs = std::filesystem;

// The weights to evaluate: --model, else the run's latest checkpoint, else "" (the task's own initial weights).
std::string weights_for(const ArgParser& parser, const JobConfig& job) {
  if (parser.has("model")) return parser.get("model");
  const auto run_dir = fs::path(job.run.runs_dir) / job.run.name;
  if (!job.run.name.empty() && fs::exists(run_dir / "checkpoints" / "latest")) return run_dir.string();
  return "";
}

// The job: CONFIG with its overrides (or the defaults for --task), then each task option as an override.
JobConfig job_for(const ArgParser& parser) {
  const auto& pos = parser.positionals();
  std::vector<std::string> overrides(pos.begin() + (pos.empty() ? 0 : 1), pos.end());
  cfg::Document doc = pos.empty() ? cfg::Document::from_string("", "defaults") : cfg::Document::from_file(pos[0]);
  doc.override_with(overrides);
  std::string task = cfg::read<JobConfig>(doc).run.task;
  if (parser.has("task")) {
    PATHVLM_CHECK(pos.empty() || parser.get("task") == task, "--task ", parser.get("task"), " differs from run.task '",
                  task, "' of '", pos[0], "'");
    task = parser.get("task");
  }
  const auto& spec = train::task_spec(task);
  std::vector<std::string> options = {"run.task=" + task};
  for (const auto& other : train::registered_tasks()) {
    for (const auto& o : other.eval_options) {
      bool mine = std::any_of(spec.eval_options.begin(), spec.eval_options.end(),
                              [&](const train::TaskOption& m) { return m.flag == o.flag; });
      PATHVLM_CHECK(mine || !parser.has(o.flag), "--", o.flag, " is an option of the '", other.name,
                    "' task; this evaluation is of '", task, "'");
    }
  }
  // A flag of a list key (slide.data.val) gives its one element.
  const auto keys = cfg::schema<JobConfig>();
  const auto is_list = [&](const std::string& key) {
    return std::any_of(keys.begin(), keys.end(),
                       [&](const cfg::KeyInfo& k) { return k.key == key && k.type.rfind("list", 0) == 0; });
  };
  for (const auto& o : spec.eval_options) {
    if (!parser.has(o.flag)) continue;
    const std::string value = cfg::render(parser.get(o.flag));
    options.push_back(o.key + "=" + (is_list(o.key) ? "[" + value + "]" : value));
  }
  doc.override_with(options);
  return cfg::read<JobConfig>(doc);
}

int run_eval(const ArgParser& parser) {
  JobConfig job = job_for(parser);
  const std::string weights = weights_for(parser, job);

  const auto& env = dist::init_processes();
  log_set_rank(env.rank, env.world_size);
  auto device = dist::local_device(env);
  auto comm = dist::make_comm(job.dist, device);
  train::TaskContext ctx{job, device, *comm, comm->rank(), comm->world_size(), job.train.micro_batch_size, 1,
                         static_cast<uint64_t>(job.run.seed), ""};
  auto task = train::make_task(job.run.task);
  torch::manual_seed(static_cast<uint64_t>(job.run.seed));  // weights left at their initial values are reproducible
  task->build_for_eval(ctx, weights);
  task->model().eval();
  std::map<std::string, double> metrics;
  {
    torch::NoGradGuard no_grad;
    metrics = task->evaluate(*comm);
  }
  if (env.rank == 0) {
    nlohmann::json j = nlohmann::json::object();
    for (const auto& [k, v] : metrics) j[k] = v;
    if (parser.has("json")) {
      std::ofstream out(parser.get("json"));
      PATHVLM_CHECK(out, "cannot write --json '", parser.get("json"), "'");
      out << j.dump(2) << "\n";
    }
    std::cout << j.dump() << std::endl;
  }
  comm->barrier();
  return 0;
}

}  // namespace

int cmd_eval(const Args& args) {
  ArgParser parser("pathvlm eval",
                   "Evaluate a model with its task's metrics (clip: zero-shot top-1, balanced accuracy, weighted F1, "
                   "confusion matrix; image<->text retrieval R@1/5/10, median rank; of a CLIP or of CONCH v1). With "
                   "CONFIG: the task's data, and the run's latest checkpoint (else the task's initial weights); "
                   "options override. Every rank started with it (mpirun) evaluates its share. Prints the metrics as "
                   "one JSON line.");
  parser.positional("config", "a job config (optional)", false, false);
  parser.positional("overrides", "key=value overrides of the config", true, false);
  parser.option("task", "the task to evaluate without a CONFIG (default: run.task's default)");
  parser.option("model", "weights to evaluate: a run directory or checkpoint, an export, or what the task loads");
  std::vector<std::string> seen;
  for (const auto& spec : train::registered_tasks()) {
    for (const auto& o : spec.eval_options) {
      if (std::find(seen.begin(), seen.end(), o.flag) != seen.end()) continue;
      seen.push_back(o.flag);
      parser.option(o.flag, spec.name + ": " + o.help);
    }
  }
  parser.option("json", "also write the metrics to this JSON file");
  if (!parser.parse(args)) return 0;
  const auto& env = dist::init_processes();
  try {
    return run_eval(parser);
  } catch (const std::exception& e) {
    if (env.world_size > 1) dist::abort_job(str("pathvlm eval: error: ", e.what()));
    throw;
  }
}

}  // namespace pathvlm::cli
