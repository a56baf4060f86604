// `pathvlm eval`: zero-shot classification and retrieval metrics of a CLIP, on every rank started with it.
//
//   pathvlm eval configs/clip/demo_tiny.yaml [key=value ...]          # the run's latest checkpoint
//   pathvlm eval --model runs/demo/export --zeroshot shards/heldout --classes configs/clip/zeroshot_demo.yaml
//   mpirun -np 2 pathvlm eval ...                                       # each rank embeds its share
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "core/log.h"
#include "dist/process_group.h"
#include "models/clip_weights.h"
#include "train/clip_task.h"
#include "train/job_config.h"

namespace pathvlm::cli {
namespace {

namespace fs = std::filesystem;

// The weights a config evaluates: --model, else the run's checkpoints, else clip.pretrained.
std::string model_for(const ArgParser& parser, const JobConfig& job) {
  if (parser.has("model")) return parser.get("model");
  const auto run_dir = fs::path(job.run.runs_dir) / job.run.name;
  if (!job.run.name.empty() && fs::exists(run_dir / "checkpoints" / "latest")) return run_dir.string();
  PATHVLM_CHECK(!job.clip.pretrained.empty(), "no model to evaluate: run '", run_dir.string(),
                "' has no checkpoints/latest, clip.pretrained is empty and --model is not given");
  return job.clip.pretrained;
}

int run_eval(const ArgParser& parser) {
  const auto& pos = parser.positionals();
  train::ClipTaskConfig cfg;
  std::string model_path;
  dist::DistConfig dist_cfg;
  if (!pos.empty()) {
    JobConfig job = load_job_config(pos[0], Args(pos.begin() + 1, pos.end()));
    PATHVLM_CHECK(job.run.task == "clip", "'", pos[0], "' is a '", job.run.task,
                  "' config; eval knows the clip task");
    cfg = job.clip;
    dist_cfg = job.dist;
    model_path = model_for(parser, job);
  } else {
    PATHVLM_CHECK(parser.has("model"), "give a CONFIG, or --model with --zeroshot/--val tiles");
    model_path = parser.get("model");
    cfg.vocab = parser.has("vocab") ? parser.get("vocab") : "";
    cfg.pretrained = model_path;  // the tokenizer files of an HF directory or export
  }
  if (parser.has("zeroshot")) cfg.data.zeroshot = parser.get("zeroshot");
  if (parser.has("classes")) cfg.eval.classes = parser.get("classes");
  if (parser.has("val")) cfg.data.val = parser.get("val");
  if (parser.has("vocab")) cfg.vocab = parser.get("vocab");
  if (parser.has("batch-size")) cfg.eval.batch_size = parser.get_int("batch-size");
  if (parser.has("max-samples")) cfg.eval.max_samples = parser.get_int("max-samples");
  PATHVLM_CHECK(!cfg.data.zeroshot.empty() || !cfg.data.val.empty(),
                "nothing to evaluate: give --zeroshot TILES (with --classes YAML) and/or --val TILES");

  const auto& env = dist::init_processes();
  log_set_rank(env.rank, env.world_size);
  auto device = dist::local_device(env);
  auto comm = dist::make_comm(dist_cfg, device);

  models::ClipLoadOptions options;
  options.hidden_act = cfg.model.hidden_act;
  auto model = models::load_clip(model_path, options);
  model->to(device);
  model->eval();
  cfg.data.image_size = model->config().image_size;  // evaluation preprocesses for the model's input size
  auto tokenizer = train::make_clip_tokenizer(cfg, model->config().context_length);
  log_info("eval: ", model_path, " (", models::describe(model->config()), ") on ", comm->world_size(), " rank(s)");

  auto metrics = train::evaluate_clip(model, tokenizer, cfg, comm.get(), device);
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
                   "Zero-shot classification (top-1, balanced accuracy, weighted F1, confusion matrix) and image<->text "
                   "retrieval (R@1/5/10, median rank) of a CLIP. With CONFIG: the clip section's data and classes, and "
                   "the run's latest checkpoint (else clip.pretrained); options override. Every rank started with it "
                   "(mpirun) embeds its share. Prints the metrics as one JSON line.");
  parser.positional("config", "a clip job config (optional)", false, false);
  parser.positional("overrides", "key=value overrides of the config", true, false);
  parser.option("model", "HF CLIP directory, run directory or checkpoint, export, or .safetensors");
  parser.option("zeroshot", "labelled tiles for zero-shot classification (manifest, its folder, or one .h5)");
  parser.option("classes", "zero-shot YAML: templates and class names in label order");
  parser.option("val", "captioned tiles for retrieval metrics");
  parser.option("vocab", "CLIP BPE (bpe_simple_vocab_16e6.txt.gz) or HF tokenizer dir (default: the model's)");
  parser.option("batch-size", "images per rank per forward");
  parser.option("max-samples", "at most this many tiles of each set");
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
