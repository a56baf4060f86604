// The slide task through the Trainer: it learns to match held-out slides with their reports and to classify them
// zero-shot, its export encodes like the trained model, and (real `pathvlm train` under mpirun) 1 vs 2 vs 3 ranks
// agree and a run killed mid-way resumes bitwise.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "core/error.h"
#include "core/host_reads.h"
#include "core/join.h"
#include "data/slide_bags.h"
#include "train/init_from.h"
#include "train/slide/task.h"
#include "train/trainer.h"
#include "test_util.h"
#include "train/slide/slide_test_util.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

TEST(SlideTask, LearnsToMatchHeldOutSlidesWithTheirReportsAndToClassifyThem) {
  auto dir = fresh_dir("slide_learns");
  const auto slides = write_tiny_slides(dir + "/data");
  auto job = tiny_slide_job(dir, "learn", slides, 60);
  job.eval.every = 60;
  auto& sc = job.task_config<train::SlideTaskConfig>();
  sc.data.val = {slides.val_csv};
  sc.eval.classes = slides.zeroshot_yaml;
  HostReadCounter reads;  // the slide step reads nothing on the host either (core/host_reads.h)
  train::train(job);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  const auto record = last_record_with(dir + "/learn/metrics.jsonl", "zeroshot/top1");
  ASSERT_FALSE(record.is_null()) << read_text(dir + "/learn/log.txt");
  // Chance: 1/4 for the kinds, 1/16 and 5/16 for R@1 and R@5 among the 16 held-out slides (several share a kind mix).
  EXPECT_GE(record["zeroshot/top1"].get<double>(), 0.75) << record.dump();
  EXPECT_GE(record["retrieval/slide_to_report_R@5"].get<double>(), 0.6) << record.dump();
  EXPECT_GE(record["retrieval/report_to_slide_R@5"].get<double>(), 0.6) << record.dump();
  const auto first = logged_losses(dir + "/learn/metrics.jsonl");
  EXPECT_LT(std::stod(first.rbegin()->second), 0.7 * std::stod(first.begin()->second));
  fs::remove_all(dir);
}

TEST(SlideTask, TheExportEncodesSlidesAndReportsLikeTheLastCheckpoint) {
  auto dir = fresh_dir("slide_export");
  const auto slides = write_tiny_slides(dir + "/data", 16, 4);
  auto job = tiny_slide_job(dir, "ex", slides, 3);
  job.checkpoint.every_steps = 3;
  train::train(job);

  auto exported = train::open_slide_model(dir + "/ex");  // the run directory finds its export/
  auto& cfg = job.task_config<train::SlideTaskConfig>();
  models::slide::SlideReportModel checkpoint(cfg.encoder, train::text_tower_config(cfg.text));
  std::vector<std::pair<std::string, torch::Tensor>> targets;
  for (auto& item : checkpoint->named_parameters()) targets.push_back({item.key(), item.value()});
  train::load_init_from({{"test", train::InitSource{dir + "/ex", {}, true}}}, targets);
  checkpoint->eval();

  auto val = data::SlideBagDataset::open({slides.val_csv}, {});
  data::BatchRequest request;
  request.records = {0, 1, 2, 3};
  auto batch = val.builder(/*train=*/false)(request);
  torch::NoGradGuard no_grad;
  auto a = exported.model->encode_slide(batch.at("features"), batch.at("coords"), batch.at("mask"));
  auto b = checkpoint->encode_slide(batch.at("features"), batch.at("coords"), batch.at("mask"));
  EXPECT_TRUE(torch::equal(a, b));
  auto ids = exported.tokenizer->batch(batch.text("report"));
  EXPECT_EQ(ids.size(1), 32);
  EXPECT_TRUE(torch::equal(exported.model->encode_report(ids), checkpoint->encode_report(ids)));
  fs::remove_all(dir);
}

TEST(SlideTask, ALabelOutsideTheZeroShotClassesIsNamed) {
  auto dir = fresh_dir("slide_badlabel");
  const auto slides = write_tiny_slides(dir + "/data", 16, 4);
  TempDir tmp("slide_badlabel_yaml");
  auto job = tiny_slide_job(dir, "bad", slides, 1);
  job.optim.warmup_steps = 0;
  job.eval.every = 1;
  auto& sc = job.task_config<train::SlideTaskConfig>();
  sc.data.val = {slides.val_csv};
  sc.eval.classes = tmp.write("classes.yaml", "templates: [\"{}\"]\nclasses: [tumor, stroma]\n");
  try {
    train::train(job);
    ADD_FAILURE() << "expected an error";
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "which is not a class of");
    EXPECT_HAS(e.what(), "classes.yaml");
  }
  fs::remove_all(dir);
}

// ---- real `pathvlm train` under mpirun ----------------------------------------------------------------

TEST(SlideMultiRank, WorldSizesAgreeWithOneRank) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("slide_equiv");
  const auto slides = write_tiny_slides(dir + "/data", 24, 4);
  const auto config = write_config(dir, tiny_slide_job(dir, "unused", slides, 5));
  ASSERT_NO_FATAL_FAILURE(launch_world_variants(dir, config));
  const auto& variants = world_variants();
  // Left out: the text tower's key biases and ABMIL's score biases shift every logit of a softmax alike, so their
  // true gradient is 0 and AdamW turns the rounding noise left in it (which differs with the batch split) into
  // full-size steps. AdamW's normalisation also lifts the noise of other small gradients to ~1e-4 after 5 steps.
  auto ends_with = [](const std::string& s, const std::string& tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
  };
  auto weights = [&](const std::string& run) {
    auto all = load_all(dir + "/" + run + "/export/model.safetensors");
    for (auto it = all.begin(); it != all.end();)
      it = ends_with(it->first, "k_proj.bias") || ends_with(it->first, "attention_c.bias") ? all.erase(it) : std::next(it);
    return all;
  };
  const auto reference = weights("ref");
  const auto ref_losses = logged_losses(dir + "/ref/metrics.jsonl");
  ASSERT_EQ(ref_losses.size(), 5u);
  for (size_t i = 1; i < variants.size(); ++i) {
    EXPECT_LE(max_relative_error(weights(variants[i].name), reference), 3e-4) << variants[i].name;
    const auto losses = logged_losses(dir + "/" + variants[i].name + "/metrics.jsonl");
    ASSERT_EQ(losses.size(), 5u) << variants[i].name;
    for (const auto& [step, loss] : ref_losses)
      EXPECT_NEAR(std::stod(losses.at(step)), std::stod(loss), 1e-4) << variants[i].name << " step " << step;
  }
  fs::remove_all(dir);
}

// Killed after step 6 (checkpoint at 4) on 2 ranks with the Q-Former encoder: tile sampling, data order and weights
// resume bitwise.
TEST(SlideMultiRank, ResumeAfterSigkillIsBitwiseEqual) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("slide_resume");
  const auto slides = write_tiny_slides(dir + "/data", 24, 4);
  auto job = tiny_slide_job(dir, "unused", slides, 10);
  job.train.micro_batch_size = 4;
  job.checkpoint.every_steps = 4;
  job.checkpoint.keep_last = 2;
  job.checkpoint.resume = "auto";
  auto& sc = job.task_config<train::SlideTaskConfig>();
  sc.encoder.kind = "qformer";
  sc.encoder.queries = 4;
  sc.encoder.layers = 1;
  expect_bitwise_resume(dir, write_config(dir, job), {2, "KILL", -1, 6, 4, 10});
  fs::remove_all(dir);
}
