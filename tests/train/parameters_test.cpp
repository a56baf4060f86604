// train.freeze / train.trainable: the glob rules as a table, the decision, the printed summary, the error for
// a pattern that matches nothing, and a real training run in which frozen tensors stay bitwise unchanged.
#include "train/parameters.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/job_config.h"
#include "train/lm/task.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;
using train::ParameterInfo;

TEST(Glob, MatchesWholeTextWithStarAndQuestionMark) {
  struct Case {
    const char* pattern;
    const char* text;
    bool match;
  };
  const Case cases[] = {
      {"abc", "abc", true},          {"abc", "abcd", false},       {"ab", "abc", false},
      {"*", "", true},               {"*", "a.b.c", true},         {"a*", "a.b.c", true},
      {"*.c", "a.b.c", true},        {"*.b", "a.b.c", false},      {"a.?.c", "a.b.c", true},
      {"a.?.c", "a.bb.c", false},    {"*lora_*", "x.lora_A.w", true}, {"a*b*c", "aXbYc", true},
      {"a*b*c", "aXbY", false},      {"**", "x", true},            {"?", "", false},
  };
  for (const auto& c : cases) EXPECT_EQ(train::glob_match(c.pattern, c.text), c.match) << c.pattern << " vs " << c.text;
}

TEST(Glob, ParameterPatternsMatchTheNameOrADottedModulePrefix) {
  struct Case {
    const char* pattern;
    const char* name;
    bool match;
  };
  const Case cases[] = {
      {"vision_model", "vision_model.encoder.layers.0.mlp.fc1.weight", true},
      {"vision_model.*", "vision_model.encoder.layers.0.mlp.fc1.weight", true},
      {"vision", "vision_model.encoder.layers.0.mlp.fc1.weight", false},  // not a whole component
      {"vision_model.encoder.layers.0", "vision_model.encoder.layers.0.mlp.fc1.weight", true},
      {"vision_model.encoder.layers.1", "vision_model.encoder.layers.10.mlp.fc1.weight", false},
      {"*.lora_*", "llm.model.layers.3.self_attn.q_proj.lora_A", true},
      {"*.lora_*", "llm.model.layers.3.self_attn.q_proj.weight", false},
      {"*.layers.?.mlp", "llm.model.layers.3.mlp.up.weight", true},
      {"*.layers.?.mlp", "llm.model.layers.12.mlp.up.weight", false},
      {"pos_embed", "pos_embed.weight", true},
      {"pos_embed.weight", "pos_embed.weight", true},
      {"*", "anything.at.all", true},
  };
  for (const auto& c : cases)
    EXPECT_EQ(train::matches_parameter(c.pattern, c.name), c.match) << c.pattern << " vs " << c.name;
}

namespace {

const std::vector<ParameterInfo> kVlm = {
    {"vision.blocks.0.attn.weight", 100, true}, {"vision.blocks.1.attn.weight", 100, true},
    {"projector.fc.weight", 20, true},          {"projector.fc.bias", 4, true},
    {"llm.layers.0.q.weight", 50, true},        {"llm.layers.0.q.lora_A", 5, true},
    {"llm.layers.0.q.lora_B", 5, true},         {"llm.layers.1.q.weight", 50, true},
    {"llm.layers.1.q.lora_A", 5, true},         {"llm.layers.1.q.lora_B", 5, true},
    {"llm.head.weight", 30, false},  // frozen by the task
};

std::vector<std::string> trained_names(const train::TrainableSelection& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < kVlm.size(); ++i)
    if (s.trained[i]) out.push_back(kVlm[i].name);
  return out;
}

}  // namespace

TEST(SelectTrainable, FreezeUnlessATrainablePatternMatchesAndTaskFrozenStaysFrozen) {
  using Names = std::vector<std::string>;
  // No patterns: everything the task left trainable.
  EXPECT_EQ(trained_names(train::select_trainable(kVlm, {}, {})).size(), 10u);
  // The LLM's adapters and what no pattern froze (the projector).
  EXPECT_EQ(trained_names(train::select_trainable(kVlm, {"llm.*", "vision"}, {"*.lora_*"})),
            (Names{"projector.fc.weight", "projector.fc.bias", "llm.layers.0.q.lora_A", "llm.layers.0.q.lora_B", "llm.layers.1.q.lora_A", "llm.layers.1.q.lora_B"}));
  // Only the projector.
  EXPECT_EQ(trained_names(train::select_trainable(kVlm, {"*"}, {"projector.*"})),
            (Names{"projector.fc.weight", "projector.fc.bias"}));
  // trainable does not unfreeze what the task froze.
  EXPECT_EQ(trained_names(train::select_trainable(kVlm, {"*"}, {"llm.head"})), Names{});
  // trainable alone changes nothing.
  EXPECT_EQ(trained_names(train::select_trainable(kVlm, {}, {"projector"})).size(), 10u);

  auto s = train::select_trainable(kVlm, {"llm.*", "vision"}, {"*.lora_*"});
  ASSERT_EQ(s.uses.size(), 3u);
  EXPECT_EQ(s.uses[0].key, "train.freeze");
  EXPECT_EQ(s.uses[0].pattern, "llm.*");
  EXPECT_EQ(s.uses[0].tensors, 7);  // the task-frozen head counts as matched
  EXPECT_EQ(s.uses[0].elements, 150);
  EXPECT_EQ(s.uses[1].tensors, 2);
  EXPECT_EQ(s.uses[2].key, "train.trainable");
  EXPECT_EQ(s.uses[2].tensors, 4);
  EXPECT_EQ(s.uses[2].elements, 20);
}

TEST(SelectTrainable, APatternThatMatchesNothingNamesKeyPatternAndNearestNames) {
  try {
    train::select_trainable(kVlm, {"*"}, {"projektor"});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.trainable: 'projektor' matches no parameter name (11 parameters; the nearest: "
                       "projector.fc.weight, projector.fc.bias"),
              std::string::npos)
        << msg;
  }
  EXPECT_THROW(train::select_trainable(kVlm, {"vision.blocks.2"}, {}), Error);
}

TEST(SelectTrainable, SummaryFoldsLayersAndWholeModules) {
  auto summary = [](const std::vector<std::string>& freeze, const std::vector<std::string>& trainable) {
    return train::trained_summary(kVlm, train::select_trainable(kVlm, freeze, trainable).trained);
  };
  EXPECT_EQ(summary({"llm.*", "vision"}, {"*.lora_*"}),
            "projector.* (2 tensors, 24 params), llm.layers.*.q.lora_A (2 tensors, 10 params), llm.layers.*.q.lora_B (2 tensors, 10 params)");
  EXPECT_EQ(summary({"*"}, {"projector"}), "projector.* (2 tensors, 24 params)");
  EXPECT_EQ(summary({"llm"}, {}), "vision.* (2 tensors, 200 params), projector.* (2 tensors, 24 params)");
  EXPECT_EQ(summary({"*"}, {}), "nothing");
  const std::vector<ParameterInfo> plain = {{"a.weight", 3, true}, {"b.0.weight", 4, true}};
  EXPECT_EQ(train::trained_summary(plain, {true, true}), "everything (2 tensors)");
}

// ---- in a real run ---------------------------------------------------------------------------------

namespace {

JobConfig tiny_job(const std::string& runs_dir, const std::string& name) {
  return tiny_lm_job(runs_dir, name, /*seed=*/11, /*steps=*/6);
}

}  // namespace

TEST(TrainerFreezing, FreezeAllButTrainablePatternsKeepsFrozenTensorsBitwise) {
  const auto dir = (fs::temp_directory_path() / ("pathvlm_freeze_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  auto job = tiny_job(dir, "run");
  job.train.freeze = {"*"};
  job.train.trainable = {"model.layers.*.self_attn", "lm_head"};
  ASSERT_EQ(train::train(job), 0);

  auto trained = load_all(dir + "/run/export/model.safetensors");
  int changed = 0, kept = 0;
  for (const auto& p : initial_lm(job)->named_parameters()) {
    const bool should_train = p.key().find(".self_attn.") != std::string::npos || p.key().rfind("lm_head.", 0) == 0;
    const bool equal = torch::equal(trained.at(p.key()), p.value());
    EXPECT_EQ(equal, !should_train) << p.key();
    (should_train ? changed : kept) += 1;
  }
  EXPECT_EQ(changed, 2 * 4 + 1);  // q, k, v, o projections (no biases) in each of 2 layers, and the head
  EXPECT_GT(kept, 10);
  const auto log = read_text(dir + "/run/log.txt");
  EXPECT_NE(log.find("train.freeze '*': "), std::string::npos) << log;
  EXPECT_NE(log.find("train.trainable 'model.layers.*.self_attn': 8 tensors"), std::string::npos) << log;
  EXPECT_NE(log.find("trained: model.layers.*.self_attn.* (8 tensors"), std::string::npos) << log;
  fs::remove_all(dir);
}

TEST(TrainerFreezing, UnmatchedTrainablePatternStopsTheRunBeforeTraining) {
  const auto dir = (fs::temp_directory_path() / ("pathvlm_freeze_bad_" + std::to_string(::getpid()))).string();
  fs::remove_all(dir);
  auto job = tiny_job(dir, "run");
  job.train.freeze = {"model.layers"};
  job.train.trainable = {"*.atn"};
  try {
    train::train(job);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("train.trainable: '*.atn' matches no parameter name"), std::string::npos) << msg;
    EXPECT_NE(msg.find("the nearest: "), std::string::npos) << msg;
  }
  fs::remove_all(dir);
}
