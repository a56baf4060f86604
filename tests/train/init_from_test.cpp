// train.init_from on the tiny `lm` task: a second run starts from exactly the first run's weights (run
// directory, step directory, renamed file), strict catches missing and unexpected tensors, shape mismatches
// name everything, and a resumed run skips init_from.
#include "train/init_from.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "train/job_config.h"
#include "train/lm/task.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

// One first run (trained, checkpointed) shared by every test; each test starts second runs from it.
class InitFrom : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("pathvlm_init_from_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    auto job = base_job("phase1");
    job.run.seed = 3;
    job.train.steps = 5;
    ASSERT_EQ(train::train(job), 0);
    phase1_ = load_all(dir_ + "/phase1/checkpoints/step_00000005/model.safetensors");
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // A different seed than phase 1, so weights equal to phase 1's can only come from init_from.
  static JobConfig base_job(const std::string& name) {
    return tiny_lm_job(dir_, name, /*seed=*/17, /*steps=*/1);
  }
  // A one-step run at learning rate 0 exports the weights it started from.
  static Tensors start_weights(JobConfig job) {
    job.optim.lr = 0;
    EXPECT_EQ(train::train(job), 0);
    return load_all(dir_ + "/" + job.run.name + "/export/model.safetensors");
  }
  static void expect_equal(const Tensors& a, const Tensors& b) {
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
  static std::string error_of(const JobConfig& job) {
    try {
      train::train(job);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  // phase 1's weights written to `file` under new names, without `drop`, plus `extra`.
  static std::string write_variant(const std::string& file, const std::function<std::string(const std::string&)>& rename,
                                   const std::string& drop = "", safetensors::NamedTensors extra = {}) {
    safetensors::NamedTensors out;
    for (const auto& [name, t] : phase1_)
      if (name != drop) out.emplace_back(rename(name), t);
    for (auto& e : extra) out.push_back(std::move(e));
    safetensors::save(dir_ + "/" + file, out);
    return dir_ + "/" + file;
  }

  static std::string dir_;
  static Tensors phase1_;
};
std::string InitFrom::dir_;
Tensors InitFrom::phase1_;

}  // namespace

TEST_F(InitFrom, ARunDirectoryStartsTheRunFromItsLatestCheckpoint) {
  auto job = base_job("from_run");
  job.train.init_from = {{dir_ + "/phase1", {}, true}};
  expect_equal(start_weights(job), phase1_);
  const size_t n = phase1_.size();
  EXPECT_HAS(read_text(dir_ + "/from_run/log.txt"), str("loaded ", n, " of ", n, " tensors; model tensors missing 0; unexpected 0"));
  // Without init_from the same job starts elsewhere (the check above is not vacuous).
  auto fresh = start_weights(base_job("fresh"));
  EXPECT_FALSE(torch::equal(fresh.at("lm_head.weight"), phase1_.at("lm_head.weight")));
}

TEST_F(InitFrom, AStepDirectoryAndAShardedExportLoadToo) {
  auto job = base_job("from_step");
  job.train.init_from = {{dir_ + "/phase1/checkpoints/step_00000005", {}, true}};
  expect_equal(start_weights(job), phase1_);

  safetensors::NamedTensors all(phase1_.begin(), phase1_.end());
  safetensors::save_sharded(dir_ + "/sharded", all, /*max_shard_bytes=*/16 * 1024);
  ASSERT_TRUE(fs::exists(dir_ + "/sharded/model.safetensors.index.json"));
  job.run.name = "from_sharded";
  job.train.init_from = {{dir_ + "/sharded", {}, true}};
  expect_equal(start_weights(job), phase1_);
}

TEST_F(InitFrom, MapRenamesTheSourceNamesFirstMatchWins) {
  // The LLaMA as a multimodal model stores it: every name under "llm.", the decoder layers as "llm.layers.".
  const auto file = write_variant("renamed.safetensors", [](const std::string& n) {
    return n.rfind("model.layers.", 0) == 0 ? "llm.layers." + n.substr(13) : "llm." + n;
  });
  auto job = base_job("from_map");
  job.train.init_from = {{file, {"llm.layers. -> model.layers.", "llm. -> "}, true}};
  expect_equal(start_weights(job), phase1_);
  // Without the map nothing matches: strict fails, naming the source's names.
  job.run.name = "from_map_unmapped";
  job.train.init_from = {{file, {}, true}};
  EXPECT_HAS(error_of(job), str("train.init_from[0] ('", file, "'): ", phase1_.size(), " tensors match no model tensor: llm."));
  job.train.init_from = {{file, {"model. to blocks."}, true}};
  EXPECT_HAS(error_of(job), "train.init_from[0].map: 'model. to blocks.' is not a rename of the form");
}

TEST_F(InitFrom, StrictReportsMissingAndUnexpectedTensorsNonStrictLoadsWhatMatches) {
  auto same = [](const std::string& n) { return n; };
  const auto partial = write_variant("partial.safetensors", same, /*drop=*/"lm_head.weight");
  auto job = base_job("strict_missing");
  job.train.init_from = {{partial, {}, true}};
  EXPECT_HAS(error_of(job), str("train.init_from: 1 of ", phase1_.size(), " model tensors are in no source: lm_head.weight"));

  // Non-strict: everything else loads, the head keeps its initialisation.
  job.run.name = "lenient";
  job.train.init_from = {{partial, {}, false}};
  auto lenient = start_weights(job);
  auto fresh = start_weights(base_job("fresh_for_lenient"));
  EXPECT_TRUE(torch::equal(lenient.at("lm_head.weight"), fresh.at("lm_head.weight")));
  EXPECT_TRUE(torch::equal(lenient.at("model.embed_tokens.weight"), phase1_.at("model.embed_tokens.weight")));
  const size_t n = phase1_.size() - 1;
  EXPECT_HAS(read_text(dir_ + "/lenient/log.txt"), str("loaded ", n, " of ", n, " tensors; model tensors missing 1 (lm_head.weight)"));

  // Two sources together cover the model: strict is satisfied.
  job.run.name = "two_sources";
  job.train.init_from = {{partial, {}, true}, {dir_ + "/phase1", {}, true}};
  expect_equal(start_weights(job), phase1_);

  const auto extra = write_variant("extra.safetensors", same, "", {{"adapter.weight", torch::zeros({2, 2})}});
  job.run.name = "strict_extra";
  job.train.init_from = {{extra, {}, true}};
  EXPECT_HAS(error_of(job), "1 tensors match no model tensor: adapter.weight (add a rename to map, their prefix to "
                            "skip, or set strict: false");
  job.train.init_from = {{extra, {}, false}};
  expect_equal(start_weights(job), phase1_);
  // Skipped, it is neither loaded nor unused: strict holds.
  job.run.name = "strict_skip";
  job.train.init_from = {{extra, {}, true, {"adapter."}}};
  expect_equal(start_weights(job), phase1_);
  EXPECT_HAS(read_text(dir_ + "/strict_skip/log.txt"),
             str("loaded ", phase1_.size(), " of ", phase1_.size() + 1,
                 " tensors (1 skipped); model tensors missing 0; unexpected 0"));
}

TEST_F(InitFrom, ShapeMismatchNamesTensorFileAndBothShapesAndDtypesConvert) {
  const auto bad = write_variant("bad_shape.safetensors", [](const std::string& n) { return n; }, "lm_head.weight",
                                 {{"lm_head.weight", torch::zeros({3, 5})}});
  auto job = base_job("bad_shape");
  job.train.init_from = {{bad, {}, false}};
  const auto shape = phase1_.at("lm_head.weight").sizes();
  EXPECT_HAS(error_of(job), str("train.init_from[0]: tensor 'lm_head.weight' in '", bad, "' has shape [3, 5], the model's has [",
                                shape[0], ", ", shape[1], "]"));

  // bf16 weights load into the fp32 model, rounded.
  safetensors::NamedTensors half;
  for (const auto& [name, t] : phase1_) half.emplace_back(name, t.to(torch::kBFloat16));
  safetensors::save(dir_ + "/bf16.safetensors", half);
  job.run.name = "bf16";
  job.train.init_from = {{dir_ + "/bf16.safetensors", {}, true}};
  auto loaded = start_weights(job);
  EXPECT_EQ(loaded.at("lm_head.weight").dtype(), torch::kFloat);
  EXPECT_TRUE(torch::equal(loaded.at("lm_head.weight"), phase1_.at("lm_head.weight").to(torch::kBFloat16).to(torch::kFloat)));
}

TEST_F(InitFrom, AResumedRunRestoresItsCheckpointAndSkipsInitFrom) {
  auto job = base_job("resumed");
  job.train.steps = 2;
  job.checkpoint.every_steps = 1;
  job.checkpoint.resume = "auto";
  job.checkpoint.save_final = true;
  ASSERT_EQ(train::train(job), 0);  // a fresh run with its own checkpoints (step 2 is the last)
  const auto own = load_all(dir_ + "/resumed/checkpoints/step_00000002/model.safetensors");
  job.train.steps = 3;
  job.optim.lr = 0;
  job.train.init_from = {{dir_ + "/phase1", {}, true}};
  ASSERT_EQ(train::train(job, /*continue_finished=*/true), 0);
  expect_equal(load_all(dir_ + "/resumed/export/model.safetensors"), own);
  EXPECT_HAS(read_text(dir_ + "/resumed/log.txt"), "train.init_from skipped: resuming from ");
}

TEST(InitFromUnit, RenamesAndWeightResolution) {
  auto renames = train::parse_renames({"model.layers. -> blocks.", " model.->", "-> x."}, "k");
  ASSERT_EQ(renames.size(), 3u);
  EXPECT_EQ(renames[1].from, "model.");
  EXPECT_EQ(renames[1].to, "");
  EXPECT_EQ(train::apply_renames(renames, "model.layers.0.w"), "blocks.0.w");
  EXPECT_EQ(train::apply_renames(renames, "model.norm.w"), "norm.w");
  EXPECT_EQ(train::apply_renames(renames, "lm_head.w"), "x.lm_head.w");  // an empty prefix matches everything
  EXPECT_EQ(train::apply_renames({}, "a.b"), "a.b");
  EXPECT_HAS(std::string([] {
               try {
                 train::resolve_weights("/nonexistent/pathvlm/weights");
               } catch (const Error& e) {
                 return std::string(e.what());
               }
               return std::string();
             }()),
             "train.init_from: '/nonexistent/pathvlm/weights' does not exist");
}
