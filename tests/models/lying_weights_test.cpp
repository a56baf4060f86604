// Weights and model configs that lie are refused: a float tensor labelled I32 (same bytes, same shape), and
// config.json files with zero, negative, huge or inconsistent heads / layers / widths. Errors name the file,
// the tensor or key, and the problem.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "llama/llama_test_util.h"
#include "models/lying_shapes.h"
#include "models/clip/weights.h"
#include "models/llama/config.h"
#include "models/llama/weights.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;
using json = nlohmann::json;

namespace {

void expect_parts(const std::string& message, std::initializer_list<std::string> parts) {
  for (const auto& part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
}

// Rewrites `file` with tensor `name` relabelled as I32: its bytes and shape unchanged, only the dtype lies.
void relabel_as_i32(const std::string& file, const std::string& name) {
  safetensors::NamedTensors tensors;
  {
    auto f = safetensors::File::open(file);
    for (const auto& info : f.tensors()) {
      auto t = f.get(info.name).clone();
      tensors.emplace_back(info.name, info.name == name ? t.view(torch::kInt32) : t);
    }
  }
  safetensors::save(file, tensors);
  ASSERT_EQ(safetensors::File::open(file).info(name).dtype, torch::kInt32);
}

models::ClipModelConfig tiny_clip() {
  models::ClipModelConfig c;
  c.embed_dim = 16;
  c.image_size = 32;
  c.patch_size = 16;
  c.vision_width = 32;
  c.vision_layers = 1;
  c.vision_heads = 2;
  c.text_width = 32;
  c.text_layers = 1;
  c.text_heads = 2;
  c.context_length = 8;
  c.vocab_size = 40;
  return c;
}

}  // namespace

TEST(LyingWeights, FloatTensorLabelledI32IsRefused) {
  TempDir dir("lying_weights");
  {
    const auto config = models::resolve_clip_config(tiny_clip());
    models::ClipModel model(config);
    models::export_hf_clip(model, config, dir / "clip");
  }
  relabel_as_i32(dir / "clip/model.safetensors", "text_projection.weight");
  expect_parts(error_of([&] { models::load_clip(dir / "clip"); }),
               {"CLIP weights '" + (dir / "clip") + "'", "tensor 'text_projection.weight' is stored as I32 (integers)",
                "needs floating-point values (F32)"});

  {
    auto model = pathvlm::testing::random_llama(pathvlm::testing::tiny_llama_config(), 3);
    models::export_hf_llama(model, dir / "llama", torch::kFloat32, 1ull << 30, "");
  }
  relabel_as_i32(dir / "llama/model.safetensors", "model.norm.weight");
  expect_parts(error_of([&] { models::load_llama(dir / "llama", torch::kFloat32, torch::kCPU); }),
               {"LLaMA weights '", "model.safetensors')", "tensor 'model.norm.weight' is stored as I32"});
}

// Every tensor of a CLIP export and of a LLaMA export in turn given another shape: refused naming the directory, or a
// model that runs.
TEST(LyingWeights, EveryClipOrLlamaTensorOfAnotherShapeIsRefusedOrRuns) {
  TempDir dir("lying_shapes");
  const auto config = models::resolve_clip_config(tiny_clip());
  {
    models::ClipModel model(config);
    models::export_hf_clip(model, config, dir / "clip");
  }
  const auto pixels = torch::rand({1, 3, config.image_size, config.image_size});
  const auto ids = torch::randint(1, config.vocab_size, {1, config.context_length});
  pathvlm::testing::expect_lying_shapes_refused(
      dir / "clip", [](const std::string& d) { return models::load_clip(d); },
      [&](models::ClipModel clip) {
        torch::NoGradGuard no_grad;
        EXPECT_EQ(clip->encode_image(pixels).size(1), clip->encode_text(ids).size(1));
      });

  const auto llama_config = pathvlm::testing::tiny_llama_config();
  {
    auto model = pathvlm::testing::random_llama(llama_config, 3);
    models::export_hf_llama(model, dir / "llama", torch::kFloat32, 1ull << 30, "");
  }
  const auto tokens = torch::randint(0, llama_config.vocab_size, {1, 5});
  pathvlm::testing::expect_lying_shapes_refused(
      dir / "llama", [](const std::string& d) { return models::load_llama(d, torch::kFloat32, torch::kCPU); },
      [&](models::LlamaForCausalLM lm) {
        torch::NoGradGuard no_grad;
        EXPECT_EQ(lm->forward(tokens).size(-1), llama_config.vocab_size);
      });
}

TEST(LyingWeights, OnlyMeaningfulConversionsAreAllowed) {
  using safetensors::check_convertible;
  for (auto [stored, wanted] : {std::pair{torch::kFloat16, torch::kFloat32},
                                {torch::kBFloat16, torch::kFloat64},
                                {torch::kFloat64, torch::kBFloat16},
                                {torch::kInt64, torch::kInt32},
                                {torch::kBool, torch::kInt64},
                                {torch::kUInt8, torch::kBool}})
    EXPECT_NO_THROW(check_convertible(stored, wanted, "w.safetensors", "t")) << stored << " -> " << wanted;
  expect_parts(error_of([] { check_convertible(torch::kFloat32, torch::kInt64, "w.safetensors", "ids"); }),
               {"w.safetensors: tensor 'ids' is stored as F32 (floating point)", "needs integer values (I64)"});
  expect_parts(error_of([] { check_convertible(torch::kBool, torch::kFloat16, "w.safetensors", "m"); }),
               {"stored as BOOL (integers)", "floating-point values (F16)"});
}

TEST(LyingConfigs, ClipConfigJsonWithZeroNegativeHugeOrInconsistentSizes) {
  const json good = json::parse(models::hf_clip_config_json(tiny_clip()));
  ASSERT_NO_THROW(models::parse_hf_clip_config(good.dump(), "config.json"));
  auto problem = [&](const char* tower, const char* key, json value) {
    json j = good;
    j[tower][key] = value;
    return error_of([&] { models::parse_hf_clip_config(j.dump(), "clip/config.json"); });
  };
  // 0 would otherwise silently become the preset's value.
  expect_parts(problem("text_config", "num_attention_heads", 0),
               {"clip/config.json: text_config.num_attention_heads must be a size in [1, 2147483647], got 0"});
  expect_parts(problem("vision_config", "num_hidden_layers", 0), {"vision_config.num_hidden_layers must be a size"});
  expect_parts(problem("vision_config", "hidden_size", -64), {"vision_config.hidden_size must be a size", "got -64"});
  expect_parts(problem("vision_config", "hidden_size", 1000000000000), {"got 1000000000000"});
  expect_parts(problem("vision_config", "hidden_size", 2000000),
               {"clip/config.json", "vision_width 2000000 is too large"});
  expect_parts(problem("vision_config", "num_attention_heads", 3),
               {"clip/config.json", "vision_heads 3 does not divide vision_width 32"});
  expect_parts(problem("text_config", "num_hidden_layers", 4096), {"text_layers 4096 is too large (at most 1024)"});
  expect_parts(problem("text_config", "hidden_size", 31.5), {"text_config.hidden_size must be an integer, got 31.5"});
}

TEST(LyingConfigs, LlamaConfigJsonWithZeroNegativeHugeOrInconsistentSizes) {
  const json good = json::parse(models::hf_llama_config_json(pathvlm::testing::tiny_llama_config(), torch::kFloat32));
  ASSERT_NO_THROW(models::parse_hf_llama_config(good.dump(), "config.json"));
  auto problem = [&](json changes, bool drop_head_dim = false) {
    json j = good;
    j.update(changes);
    if (drop_head_dim) j.erase("head_dim");
    return error_of([&] { models::parse_hf_llama_config(j.dump(), "llama/config.json"); });
  };
  expect_parts(problem({{"num_hidden_layers", 0}}), {"llama/config.json: num_hidden_layers must be positive, got 0"});
  expect_parts(problem({{"intermediate_size", -5}}), {"intermediate_size must be positive, got -5"});
  expect_parts(problem({{"num_key_value_heads", 3}}), {"num_key_value_heads (3) must divide num_attention_heads (4)"});
  expect_parts(problem({{"hidden_size", 30}}, true), {"num_attention_heads (4) does not divide hidden_size (30)"});
  expect_parts(problem({{"num_attention_heads", 0}}), {"num_attention_heads must be positive, got 0"});
  expect_parts(problem({{"vocab_size", 10000000000000}}), {"vocab_size 10000000000000 is too large"});
  expect_parts(problem({{"num_hidden_layers", 100000}}), {"num_hidden_layers 100000 is too large (at most 1024)"});
  expect_parts(problem({{"hidden_size", 64.5}}), {"'hidden_size' must be an integer, got 64.5"});
  expect_parts(problem({{"vocab_size", 18446744073709551615ull}}), {"'vocab_size' must be an integer"});
  expect_parts(problem({{"head_dim", 7}}), {"head_dim (7) must be positive and even"});
}
