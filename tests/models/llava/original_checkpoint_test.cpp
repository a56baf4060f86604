// LLaVA's original checkpoints: which config.json files are one, what is read from their mm_* keys (LLaVA's
// defaults where absent), the projector renames, and the refusals of what pathvlm's LLaVA does not build.
#include "models/llava/original_checkpoint.h"

#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>

#include "test_util.h"

using namespace pathvlm;
using nlohmann::json;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;

namespace {

// The mm_* part of LLaVA-Med v1.5's config.json (its Mistral keys do not matter here).
json llava_med_config() {
  return {{"architectures", {"LlavaMistralForCausalLM"}},
          {"model_type", "llava_mistral"},
          {"hidden_size", 4096},
          {"image_aspect_ratio", "pad"},
          {"mm_hidden_size", 1024},
          {"mm_patch_merge_type", "flat"},
          {"mm_projector_type", "mlp2x_gelu"},
          {"mm_use_im_patch_token", false},
          {"mm_use_im_start_end", false},
          {"mm_vision_select_feature", "patch"},
          {"mm_vision_select_layer", -2},
          {"mm_vision_tower", "openai/clip-vit-large-patch14-336"}};
}

std::optional<models::OriginalLlavaCheckpoint> read_config(const TempDir& dir, const json& config) {
  std::ofstream(dir / "config.json") << config.dump();
  return models::read_original_llava_checkpoint(dir.path.string());
}

}  // namespace

TEST(OriginalLlavaCheckpoint, ReadsLlavaMedAndLlavaDefaults) {
  TempDir dir("llava_original_read");
  const auto med = read_config(dir, llava_med_config());
  ASSERT_TRUE(med.has_value());
  EXPECT_EQ(med->dir, dir.path.string());
  EXPECT_EQ(med->model_type, "llava_mistral");
  EXPECT_EQ(med->projector, "mlp2x_gelu");
  EXPECT_EQ(med->vision_width, 1024);
  EXPECT_EQ(med->vision_feature_layer, -2);
  EXPECT_EQ(med->vision_feature_select, "patch");
  EXPECT_EQ(med->image_aspect_ratio, "pad");
  EXPECT_EQ(med->vision_tower, "openai/clip-vit-large-patch14-336");
  EXPECT_EQ(med->projector_renames(),
            (std::vector<std::string>{"model.mm_projector.0. -> multi_modal_projector.linear_1.",
                                      "model.mm_projector.2. -> multi_modal_projector.linear_2."}));

  // LLaVA before 1.2 wrote model_type llava; absent keys take LLaVA's ModelArguments / DataArguments defaults.
  const auto old =
      read_config(dir, {{"model_type", "llava"}, {"mm_hidden_size", 768}, {"mm_vision_select_feature", "cls_patch"}});
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->projector, "linear");
  EXPECT_EQ(old->vision_feature_layer, -1);
  EXPECT_EQ(old->vision_feature_select, "full");
  EXPECT_EQ(old->image_aspect_ratio, "square");
  EXPECT_EQ(old->projector_renames(),
            (std::vector<std::string>{"model.mm_projector. -> multi_modal_projector.linear_1."}));
}

TEST(OriginalLlavaCheckpoint, OtherDirectoriesAreNotOne) {
  TempDir dir("llava_original_others");
  EXPECT_FALSE(models::read_original_llava_checkpoint("").has_value());
  EXPECT_FALSE(models::read_original_llava_checkpoint(dir.path.string()).has_value());  // no config.json
  EXPECT_FALSE(read_config(dir, {{"model_type", "llama"}, {"hidden_size", 64}}).has_value());
  EXPECT_FALSE(read_config(dir, {{"model_type", "mistral"}}).has_value());
  // transformers' LlavaForConditionalGeneration nests its language model.
  EXPECT_FALSE(read_config(dir, {{"model_type", "llava"}, {"text_config", {{"model_type", "llama"}}}}).has_value());
  std::ofstream(dir / "config.json") << "{\"model_type\": ";
  const auto msg = error_of([&] { models::read_original_llava_checkpoint(dir.path.string()); });
  EXPECT_NE(msg.find(dir / "config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(OriginalLlavaCheckpoint, RefusesWhatItDoesNotBuildNamingTheKey) {
  TempDir dir("llava_original_refused");
  for (const auto& [key, value, expect] : std::vector<std::tuple<std::string, json, std::string>>{
           {"mm_use_im_start_end", true, "mm_use_im_start_end is true"},
           {"image_aspect_ratio", "anyres", "image_aspect_ratio 'anyres'"},
           {"mm_patch_merge_type", "spatial_unpad", "mm_patch_merge_type 'spatial_unpad'"},
           {"mm_projector_type", "identity", "mm_projector_type 'identity'"},
           {"mm_vision_select_feature", "cls", "mm_vision_select_feature 'cls'"},
           {"mm_hidden_size", nullptr, "mm_hidden_size"},
           {"mm_hidden_size", 0, "mm_hidden_size"}}) {
    auto config = llava_med_config();
    config[key] = value;
    const auto msg = error_of([&] { read_config(dir, config); });
    EXPECT_NE(msg.find(dir / "config.json"), std::string::npos) << key << ": " << msg;
    EXPECT_NE(msg.find(expect), std::string::npos) << key << ": " << msg;
  }
}
