// The clip task: config checks, evaluation on real tiles shards, and the demo-sized end-to-end run
// (synth tiles -> shards build -> 2-rank training under mpirun -> zero-shot accuracy far above chance ->
// the export loads back and `pathvlm eval` reproduces the metrics on 1 and 2 ranks).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/host_reads.h"
#include "core/join.h"
#include "synth/synth_tiles.h"
#include "data/tile_shards.h"
#include "models/clip/weights.h"
#include "train/clip/task.h"
#include "train/job_config.h"
#include "train/trainer.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kVocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_clip_task_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

train::ClipTaskConfig tiny_config() {
  train::ClipTaskConfig cfg;
  cfg.model.preset = "tiny";
  cfg.model.image_size = 32;
  cfg.model.context_length = 32;
  cfg.model.vision_layers = 2;
  cfg.model.text_layers = 2;
  cfg.data.image_size = 32;
  cfg.data.workers = 1;
  cfg.vocab = kVocab;
  return cfg;
}

// Small synthetic tiles and their shards (library calls: the CLI is exercised by the end-to-end test).
struct Tiles {
  fs::path dir;
  std::string yaml;
};
Tiles make_tiles(const std::string& name, int64_t zeroshot_per_class, int64_t val_per_class,
                 int64_t train_per_class = 0) {
  Tiles t{temp_dir(name), ""};
  synth::SynthTilesOptions o;
  o.out_dir = (t.dir / "tiles").string();
  o.tile_size = 32;
  o.train_per_class = train_per_class;
  o.val_per_class = val_per_class;
  o.zeroshot_per_class = zeroshot_per_class;
  o.progress = false;
  auto report = synth::synth_tiles(o);
  t.yaml = report.zeroshot_yaml;
  for (auto [split, csv] : {std::pair{"zeroshot", report.zeroshot_csv}, std::pair{"val", report.val_csv},
                            std::pair{"train", report.train_csv}}) {
    const int64_t per_class = std::string(split) == "train" ? train_per_class
                              : std::string(split) == "val" ? val_per_class
                                                            : zeroshot_per_class;
    if (per_class == 0) continue;
    data::TileShardBuildOptions b;
    b.records = csv;
    b.out_dir = (t.dir / "shards" / split).string();
    b.progress = false;
    data::build_tile_shards(b);
  }
  return t;
}

int run(const std::string& command) {
  int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string mpirun(int ranks) {
  return std::string(PATHVLM_MPIRUN) + " -np " + std::to_string(ranks) +
         " --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 ";
}

nlohmann::json read_json(const fs::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(ClipTask, ConfigMistakesGiveClearErrors) {
  auto cfg = tiny_config();
  cfg.data.image_size = 224;
  auto msg = error_of([&] { train::build_clip_model(cfg); });
  EXPECT_NE(msg.find("set clip.data.image_size: 32"), std::string::npos) << msg;

  cfg = tiny_config();
  cfg.lock_image_unlocked_blocks = 1;
  msg = error_of([&] { train::build_clip_model(cfg); });
  EXPECT_NE(msg.find("clip.lock_image is false"), std::string::npos) << msg;

  cfg = tiny_config();
  cfg.lock_image = true;
  cfg.lock_image_unlocked_blocks = 5;
  msg = error_of([&] { train::build_clip_model(cfg); });
  EXPECT_NE(msg.find("exceeds the 2 ViT blocks"), std::string::npos) << msg;

  cfg = tiny_config();
  cfg.vocab = "";
  msg = error_of([&] { train::make_clip_tokenizer(cfg, 32); });
  EXPECT_NE(msg.find("set clip.vocab"), std::string::npos) << msg;

  cfg.vocab = "/nonexistent/bpe.txt.gz";
  msg = error_of([&] { train::make_clip_tokenizer(cfg, 32); });
  EXPECT_NE(msg.find("/nonexistent/bpe.txt.gz"), std::string::npos) << msg;

  // Colour augmentation: four strengths, a hue a ColorJitter takes, and a probability with them.
  data::ClipDataConfig data;
  data.color_jitter = {0.4, 0.4, 0.4};
  EXPECT_NE(error_of([&] { data.validate("clip.data"); }).find("needs 4 values"), std::string::npos);
  data.color_jitter = {0.4, 0.4, 0.4, 0.7};
  data.color_jitter_prob = 0.8;
  EXPECT_NE(error_of([&] { data.validate("clip.data"); }).find("hue must be <= 0.5"), std::string::npos);
  data.color_jitter = {0.4, 0.4, 0.4, 0.1};
  data.color_jitter_prob = 0;
  EXPECT_NE(error_of([&] { data.validate("clip.data"); }).find("would never apply"), std::string::npos);
  data.color_jitter.clear();
  data.color_jitter_prob = 0.8;
  EXPECT_NE(error_of([&] { data.validate("clip.data"); }).find("color_jitter is empty"), std::string::npos);
}

TEST(ClipTask, LockImageKeepsOnlyTheLastBlocksTrainable) {
  auto cfg = tiny_config();
  cfg.lock_image = true;
  cfg.lock_image_unlocked_blocks = 1;
  auto model = train::build_clip_model(cfg);
  for (const auto& p : model->named_parameters()) {
    const auto& name = p.key();
    bool vision = name.rfind("vision_model.", 0) == 0 || name.rfind("visual_projection", 0) == 0;
    bool unlocked = name.rfind("vision_model.encoder.layers.1.", 0) == 0 ||
                    name.rfind("vision_model.post_layernorm", 0) == 0 || name.rfind("visual_projection", 0) == 0;
    EXPECT_EQ(p.value().requires_grad(), !vision || unlocked) << name;
  }
}

// Zero-shot and retrieval on real shards with a random model: metric ranges, the confusion matrix counting
// every tile, and a perfect "oracle" check of the plumbing (labels reach the metrics in the right order).
TEST(ClipTask, EvaluateOnTileShards) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared data not found: " << kVocab;
  auto tiles = make_tiles("eval", 3, 2);
  auto cfg = tiny_config();
  cfg.data.zeroshot = (tiles.dir / "shards" / "zeroshot").string();
  cfg.data.val = (tiles.dir / "shards" / "val").string();
  cfg.eval.classes = tiles.yaml;
  cfg.eval.batch_size = 7;  // batches that straddle classes and a short last batch
  cfg.eval.confusion = false;
  torch::manual_seed(0);
  auto model = train::build_clip_model(cfg);
  model->eval();
  auto tokenizer = std::make_shared<const text::ClipTokenizer>(train::make_clip_tokenizer(cfg, 32));
  const auto encoder = train::clip_encoder(model, tokenizer, cfg, torch::kCPU);
  auto m = train::evaluate_clip(encoder, cfg, nullptr, torch::kCPU);
  for (const char* key : {"zeroshot/top1", "zeroshot/balanced_accuracy", "zeroshot/weighted_f1",
                          "retrieval/image_to_text_R@1", "retrieval/text_to_image_R@10"}) {
    ASSERT_TRUE(m.count(key)) << key;
    EXPECT_GE(m[key], 0.0) << key;
    EXPECT_LE(m[key], 1.0) << key;
  }
  // 16 validation pairs: ranks lie within the 16 candidates.
  EXPECT_GE(m["retrieval/image_to_text_median_rank"], 1.0);
  EXPECT_LE(m["retrieval/image_to_text_median_rank"], 16.0);
  // The same call gives the same numbers (deterministic eval transform, no randomness).
  auto again = train::evaluate_clip(encoder, cfg, nullptr, torch::kCPU);
  EXPECT_EQ(again, m);

  cfg.eval.max_samples = 5;
  auto capped = train::evaluate_clip(encoder, cfg, nullptr, torch::kCPU);
  EXPECT_EQ(capped.count("zeroshot/top1"), 1u);

  cfg.eval.classes = "";
  EXPECT_NE(error_of([&] { train::evaluate_clip(encoder, cfg, nullptr, torch::kCPU); })
                .find("clip.eval.classes"),
            std::string::npos);
}

// A run killed after a checkpoint and resumed ends with exactly the parameters of an uninterrupted run
// (model, AdamW state, data cursor and augmentation all restored), with feature-cache accumulation on.
TEST(ClipTask, KilledAndResumedRunEqualsUninterruptedRun) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared data not found: " << kVocab;
  auto tiles = make_tiles("resume", 0, 0, 12);
  const std::string bin = PATHVLM_BINARY;
  const std::string base =
      bin + " train " + PATHVLM_SOURCE_DIR + "/configs/clip/demo_tiny.yaml run.runs_dir=" + (tiles.dir / "runs").string() +
      " train.steps=12 train.micro_batch_size=8 train.grad_accum=2 optim.warmup_steps=2 eval.every=0" +
      " checkpoint.every_steps=6 log.tensorboard=false clip.model.image_size=32 clip.data.image_size=32" +
      " clip.model.vision_layers=1 clip.model.text_layers=1 clip.data.workers=1 clip.vocab=" + kVocab +
      " clip.data.train=" + (tiles.dir / "shards" / "train").string() + " clip.data.val= clip.data.zeroshot=" +
      " clip.eval.classes=";
  const std::string quiet = " > " + (tiles.dir / "log.txt").string() + " 2>&1";
  ASSERT_EQ(run(base + " run.name=straight" + quiet), 0);
  EXPECT_NE(run(base + " run.name=resumed train.fault.step=6" + quiet), 0);  // killed right after step 6
  ASSERT_EQ(run(base + " run.name=resumed" + quiet), 0);
  auto a = models::load_clip((tiles.dir / "runs" / "straight" / "export").string());
  auto b = models::load_clip((tiles.dir / "runs" / "resumed" / "export").string());
  auto pb = b->named_parameters();
  for (const auto& p : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(p.value(), pb[p.key()])) << p.key();
  }
  fs::remove_all(tiles.dir);
}

// The CLIP step reads nothing on the host (core/host_reads.h): features, the contrastive loss, the bad-record
// pooling (host memory, host communicator), clipping and the update; only the sync points read.
TEST(ClipTask, TheStepReadsNothingOnTheHost) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared data not found: " << kVocab;
  auto tiles = make_tiles("syncs", 0, 0, 6);
  JobConfig job;
  job.run.task = "clip";
  job.run.name = "syncs";
  job.run.runs_dir = (tiles.dir / "runs").string();
  job.log.tensorboard = false;
  job.log.every = 3;
  job.train.device = "cpu";
  job.train.steps = 6;
  job.train.micro_batch_size = 4;
  job.train.grad_accum = 2;
  job.checkpoint.every_steps = 0;
  job.checkpoint.resume = "none";
  auto& cfg = job.task_config<train::ClipTaskConfig>();
  cfg = tiny_config();
  cfg.data.train = (tiles.dir / "shards" / "train").string();
  HostReadCounter reads;
  ASSERT_EQ(train::train(job), 0);
  EXPECT_EQ(reads.steps(), 6);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  fs::remove_all(tiles.dir);
}

// The demo, shortened: 2 CPU ranks learn the synthetic tissue classes from captions alone.
TEST(ClipTask, DemoRunOnTwoRanksLearnsZeroShotFarAboveChance) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared data not found: " << kVocab;
  if (std::string(PATHVLM_MPIRUN).empty()) GTEST_SKIP() << "no mpirun";
  const std::string bin = PATHVLM_BINARY;
  auto dir = temp_dir("demo");
  auto tiles = dir / "tiles", shards = dir / "shards";
  ASSERT_EQ(run(bin + " synth tiles --quiet --out " + tiles.string() +
                " --size 64 --train-per-class 100 --val-per-class 8 --zeroshot-per-class 20 --seed 3 > " +
                (dir / "synth.log").string()),
            0);
  for (const char* split : {"train", "val", "zeroshot"}) {
    ASSERT_EQ(run(bin + " shards build " + (tiles / (std::string(split) + ".csv")).string() + " --out " +
                  (shards / split).string() + " > " + (dir / "shards.log").string() + " 2>&1"),
              0)
        << split;
  }
  const std::string overrides =
      " run.runs_dir=" + (dir / "runs").string() + " run.name=demo train.steps=120 eval.every=120" +
      " checkpoint.every_steps=0 log.tensorboard=false clip.eval.confusion=false clip.vocab=" + kVocab +
      " clip.data.train=" + (shards / "train").string() + " clip.data.val=" + (shards / "val").string() +
      " clip.data.zeroshot=" + (shards / "zeroshot").string() + " clip.eval.classes=" + (tiles / "zeroshot.yaml").string();
  const auto log = dir / "train.log";
  ASSERT_EQ(run(mpirun(2) + bin + " train " + PATHVLM_SOURCE_DIR + "/configs/clip/demo_tiny.yaml" + overrides +
                " > " + log.string() + " 2>&1"),
            0)
      << "see " << log;

  // The loss fell and the final evaluation is far above chance (1/8).
  std::ifstream metrics(dir / "runs" / "demo" / "metrics.jsonl");
  std::string line;
  double first_loss = -1, last_loss = -1, top1 = -1;
  while (std::getline(metrics, line)) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("train/loss") && j["train/loss"].is_number())
      (first_loss < 0 ? first_loss : last_loss) = j["train/loss"].get<double>();
    if (j.contains("zeroshot/top1")) top1 = j["zeroshot/top1"].get<double>();
  }
  std::cout << "demo run: loss " << first_loss << " -> " << last_loss << ", zero-shot top-1 " << top1
            << " (chance 0.125)\n";
  EXPECT_GT(first_loss, 0) << "no loss in metrics.jsonl";
  EXPECT_LT(last_loss, 0.7 * first_loss) << "the loss did not fall";
  EXPECT_GT(top1, 0.5) << "zero-shot top-1 on held-out tiles (chance 0.125); see " << log;

  // The export loads back (HF CLIPModel layout) and equals the final checkpoint.
  auto exported = models::load_clip((dir / "runs" / "demo" / "export").string());
  auto checkpoint = models::load_clip((dir / "runs" / "demo").string());
  exported->eval(), checkpoint->eval();
  torch::NoGradGuard no_grad;
  auto pixels = torch::randn({2, 3, 64, 64});
  EXPECT_TRUE(torch::allclose(exported->encode_image(pixels), checkpoint->encode_image(pixels), 1e-5, 1e-6));
  EXPECT_EQ(exported->config().context_length, 40);

  // `pathvlm eval` on the export, on 1 and 2 ranks: the same metrics, equal to the training's final eval.
  const std::string eval_args = " eval --model " + (dir / "runs" / "demo" / "export").string() + " --zeroshot " +
                                (shards / "zeroshot").string() + " --classes " + (tiles / "zeroshot.yaml").string() +
                                " --val " + (shards / "val").string();
  ASSERT_EQ(run(bin + eval_args + " --json " + (dir / "eval1.json").string() + " > /dev/null 2>&1"), 0);
  ASSERT_EQ(run(mpirun(2) + bin + eval_args + " --json " + (dir / "eval2.json").string() + " > /dev/null 2>&1"), 0);
  auto one = read_json(dir / "eval1.json"), two = read_json(dir / "eval2.json");
  EXPECT_EQ(one, two);
  EXPECT_NEAR(one["zeroshot/top1"].get<double>(), top1, 1e-9);
  fs::remove_all(dir);
}
