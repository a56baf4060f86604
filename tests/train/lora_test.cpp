// train.lora on the tiny `lm` task started from another run with train.init_from: only the adapters train,
// the checkpoint holds only them (the frozen base is recorded as external), and the export has the adapter in
// PEFT's layout next to the model with the adapters merged.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "models/lora/apply.h"
#include "train/checkpoint.h"
#include "train/job_config.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace

TEST(LoraTraining, TrainsOnlyAdaptersAndExportsThemMerged) {
  const auto dir = (fs::temp_directory_path() / ("pathvlm_lora_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  auto base_job = tiny_lm_job(dir, "base", /*seed=*/5, /*steps=*/2);
  base_job.checkpoint.export_final = false;
  ASSERT_EQ(train::train(base_job), 0);
  const auto base = load_all(dir + "/base/checkpoints/step_00000002/model.safetensors");

  auto job = tiny_lm_job(dir, "lora", /*seed=*/9, /*steps=*/4);
  job.train.init_from = {{dir + "/base", {}, true}};
  job.train.lora.targets = {"q_proj", "v_proj"};
  job.train.lora.r = 4;
  job.train.lora.alpha = 8;
  job.optim.lr = 1e-2;
  ASSERT_EQ(train::train(job), 0);

  // The checkpoint's own tensors are exactly the adapters of every q_proj and v_proj.
  const std::string step = dir + "/lora/checkpoints/step_00000004";
  const auto own = load_all(step + "/model.safetensors");
  std::vector<std::string> adapted;
  for (const auto& [name, t] : base)
    if (ends_with(name, ".q_proj.weight") || ends_with(name, ".v_proj.weight"))
      adapted.push_back(name.substr(0, name.size() - 7));
  ASSERT_FALSE(adapted.empty());
  ASSERT_EQ(own.size(), 2 * adapted.size());
  for (const auto& path : adapted) {
    ASSERT_TRUE(own.count(path + ".lora_A.weight") && own.count(path + ".lora_B.weight")) << path;
    EXPECT_EQ(own.at(path + ".lora_A.weight").size(0), 4);
    EXPECT_GT(own.at(path + ".lora_B.weight").abs().max().item<double>(), 0.0) << path << ": B never left zero";
  }
  // The base is frozen: recorded as external and read back equal to its source.
  const auto state = nlohmann::json::parse(read_text(step + "/trainer_state.json"));
  EXPECT_EQ(state.at("external").at("tensors").size(), base.size());
  auto full = train::ckpt::ModelTensors::open(step);
  EXPECT_EQ(full.names().size(), base.size() + own.size());
  for (const auto& [name, t] : base) EXPECT_TRUE(torch::equal(full.get(name), t)) << name;

  // The adapter in PEFT's layout.
  const std::string adapter = dir + "/lora/export/adapter";
  const auto peft = load_all(adapter + "/adapter_model.safetensors");
  ASSERT_EQ(peft.size(), own.size());
  for (const auto& [name, t] : own) EXPECT_TRUE(torch::equal(peft.at("base_model.model." + name), t)) << name;
  const auto config = nlohmann::json::parse(read_text(adapter + "/adapter_config.json"));
  EXPECT_EQ(config.at("r"), 4);
  EXPECT_EQ(config.at("lora_alpha"), 8);
  EXPECT_EQ(config.at("target_modules"), nlohmann::json({"q_proj", "v_proj"}));
  EXPECT_EQ(config.at("base_model_name_or_path"), dir + "/base");

  // The exported model is the base with B A * alpha / r added to the adapted weights.
  const auto exported = load_all(dir + "/lora/export/model.safetensors");
  ASSERT_EQ(exported.size(), base.size());
  for (const auto& [name, t] : base) {
    ASSERT_TRUE(exported.count(name)) << name;
    const auto path = name.substr(0, name.rfind('.'));
    if (!own.count(path + ".lora_A.weight") || !ends_with(name, ".weight")) {
      EXPECT_TRUE(torch::equal(exported.at(name), t)) << name;
      continue;
    }
    const auto merged = t + torch::matmul(own.at(path + ".lora_B.weight"), own.at(path + ".lora_A.weight")) * 2.0;
    EXPECT_LT((exported.at(name) - merged).abs().max().item<double>(), 1e-6) << name;
    EXPECT_GT((exported.at(name) - t).abs().max().item<double>(), 0.0) << name;
  }
  fs::remove_all(dir);
}
