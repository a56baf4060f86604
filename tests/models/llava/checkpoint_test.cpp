// LLaVA checkpoints: which config.json files are one, what is read from the mm_* keys of LLaVA's original ones and
// from transformers' LlavaConfig (their defaults where absent), the renames onto LlavaModel's names, and the refusals
// of what pathvlm's LLaVA does not build.
#include "models/llava/checkpoint.h"

#include <gtest/gtest.h>

#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/safetensors.h"
#include "models/llama/config.h"

#include "test_util.h"

using namespace pathvlm;
using nlohmann::json;
namespace fs = std::filesystem;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

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

std::optional<models::LlavaCheckpoint> read_config(const TempDir& dir, const json& config) {
  std::ofstream(dir / "config.json") << config.dump();
  return models::read_llava_checkpoint(dir.path.string());
}

}  // namespace

TEST(LlavaCheckpoint, ReadsLlavaMedAndLlavaDefaults) {
  TempDir dir("llava_original_read");
  const auto med = read_config(dir, llava_med_config());
  ASSERT_TRUE(med.has_value());
  EXPECT_EQ(med->dir, dir.path.string());
  EXPECT_EQ(med->format, models::LlavaCheckpoint::Format::original);
  EXPECT_EQ(med->description(), "one of LLaVA's original checkpoints, llava_mistral");
  EXPECT_EQ(med->model_type, "llava_mistral");
  EXPECT_EQ(med->projector, "mlp2x_gelu");
  EXPECT_EQ(med->vision_width, 1024);
  EXPECT_EQ(med->vision_feature_layer, -2);
  EXPECT_EQ(med->vision_feature_select, "patch");
  EXPECT_EQ(med->image_aspect_ratio, "pad");
  EXPECT_EQ(med->vision_tower, "openai/clip-vit-large-patch14-336");
  EXPECT_EQ(med->init_renames(true),
            (std::vector<std::string>{"model.mm_projector.0. -> multi_modal_projector.linear_1.",
                                      "model.mm_projector.2. -> multi_modal_projector.linear_2.",
                                      "model. -> language_model.model.", "lm_head. -> language_model.lm_head."}));
  EXPECT_EQ(med->init_renames(false),
            (std::vector<std::string>{"model. -> language_model.model.", "lm_head. -> language_model.lm_head."}));

  // LLaVA before 1.2 wrote model_type llava; absent keys take LLaVA's ModelArguments / DataArguments defaults.
  const auto old =
      read_config(dir, {{"model_type", "llava"}, {"mm_hidden_size", 768}, {"mm_vision_select_feature", "cls_patch"}});
  ASSERT_TRUE(old.has_value());
  EXPECT_EQ(old->projector, "linear");
  EXPECT_EQ(old->vision_feature_layer, -1);
  EXPECT_EQ(old->vision_feature_select, "full");
  EXPECT_EQ(old->image_aspect_ratio, "square");
  EXPECT_EQ(old->init_renames(true).front(), "model.mm_projector. -> multi_modal_projector.linear_1.");
}

TEST(LlavaCheckpoint, OtherDirectoriesAreNotOne) {
  TempDir dir("llava_original_others");
  EXPECT_FALSE(models::read_llava_checkpoint("").has_value());
  EXPECT_FALSE(models::read_llava_checkpoint(dir.path.string()).has_value());  // no config.json
  EXPECT_FALSE(read_config(dir, {{"model_type", "llama"}, {"hidden_size", 64}}).has_value());
  EXPECT_FALSE(read_config(dir, {{"model_type", "mistral"}}).has_value());
  EXPECT_FALSE(read_config(dir, {{"model_type", "llava_next"}, {"text_config", json::object()}}).has_value());
  std::ofstream(dir / "config.json") << "{\"model_type\": ";
  const auto msg = error_of([&] { models::read_llava_checkpoint(dir.path.string()); });
  EXPECT_NE(msg.find(dir / "config.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not valid JSON"), std::string::npos) << msg;
}

TEST(LlavaCheckpoint, RefusesWhatItDoesNotBuildNamingTheKey) {
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

namespace {

// llava-hf/llava-1.5-7b-hf's config.json as transformers 4.36 wrote it: its text_config and vision_config hold only
// what differs from LlamaConfig's and CLIPVisionConfig's defaults.
json llava_hf_config() {
  return json::parse(R"({
    "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
    "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
    "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                    "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                    "torch_dtype": "float16", "vocab_size": 32064},
    "tie_word_embeddings": false, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
    "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                      "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                      "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
    "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064})");
}

// A transformers LLaVA directory's weights with only the tensors that tell its layout (and a projector's second
// layer, `linear_2`, of width 4).
void write_weights(const TempDir& dir, const models::HfLlavaLayout& layout,
                   const torch::Tensor& linear_2 = torch::eye(4)) {
  safetensors::save(dir / "model.safetensors",
                    {{layout.language_model_name("model.embed_tokens.weight"), torch::zeros({8, 4})},
                     {layout.projector + "linear_2.weight", linear_2},
                     {layout.projector + "linear_2.bias", torch::zeros({4})}});
}

}  // namespace

TEST(LlavaCheckpoint, ReadsATransformersLlavaDirectoryInBothTensorLayouts) {
  TempDir dir("llava_transformers_read");
  write_weights(dir, models::HfLlavaLayout::before_4_52());
  const auto hf = read_config(dir, llava_hf_config());
  ASSERT_TRUE(hf.has_value());
  EXPECT_EQ(hf->format, models::LlavaCheckpoint::Format::transformers);
  EXPECT_EQ(hf->description(), "a transformers LlavaForConditionalGeneration");
  EXPECT_EQ(hf->projector, "mlp2x_gelu");
  EXPECT_EQ(hf->vision_width, 1024);
  EXPECT_EQ(hf->vision_feature_layer, -2);
  EXPECT_EQ(hf->vision_feature_select, "patch");
  EXPECT_EQ(hf->image_aspect_ratio, "square");
  EXPECT_EQ(hf->image_token_id, 32000);
  EXPECT_EQ(hf->vision_tower, dir.path.string());  // the tower is inside
  // Before 4.52 the names are LlavaModel's own; the tower is skipped (loaded as the tower), and the projector too
  // when it is not adopted.
  EXPECT_EQ(hf->init_renames(true),
            (std::vector<std::string>{"multi_modal_projector. -> multi_modal_projector.",
                                      "language_model.model. -> language_model.model.",
                                      "language_model.lm_head. -> language_model.lm_head."}));
  EXPECT_EQ(hf->init_skipped(true), std::vector<std::string>{"vision_tower."});
  EXPECT_EQ(hf->init_renames(false).front(), "language_model.model. -> language_model.model.");
  EXPECT_EQ(hf->init_skipped(false), (std::vector<std::string>{"vision_tower.", "multi_modal_projector."}));

  // 4.52 and later; LlavaImageProcessor's do_pad is LLaVA's pad; transformers 5.x's defaults, its image_token_id.
  write_weights(dir, models::HfLlavaLayout::from_4_52());
  std::ofstream(dir / "preprocessor_config.json") << R"({"image_processor_type": "LlavaImageProcessor",
                                                         "do_pad": true})";
  auto config = llava_hf_config();
  for (const char* key : {"vision_feature_layer", "vision_feature_select_strategy", "image_token_index"})
    config.erase(key);
  config["image_token_id"] = 151646;
  config["vision_config"].erase("hidden_size");
  const auto newer = read_config(dir, config);
  ASSERT_TRUE(newer.has_value());
  EXPECT_EQ(newer->vision_feature_layer, -2);
  EXPECT_EQ(newer->vision_feature_select, "patch");
  EXPECT_EQ(newer->vision_width, 768);  // CLIPVisionConfig's
  EXPECT_EQ(newer->image_token_id, 151646);
  EXPECT_EQ(newer->image_aspect_ratio, "pad");
  // transformers 5 saves the image processor's settings inside processor_config.json instead.
  fs::remove(dir / "preprocessor_config.json");
  std::ofstream(dir / "processor_config.json") << R"({"image_processor": {"do_pad": true}, "patch_size": 14})";
  EXPECT_EQ(read_config(dir, config)->image_aspect_ratio, "pad");
  std::ofstream(dir / "processor_config.json") << R"({"image_processor": {"do_pad": false}})";
  EXPECT_EQ(read_config(dir, config)->image_aspect_ratio, "square");
  EXPECT_EQ(newer->init_renames(true),
            (std::vector<std::string>{"model.multi_modal_projector. -> multi_modal_projector.",
                                      "model.language_model. -> language_model.model.",
                                      "lm_head. -> language_model.lm_head."}));

  // A single FC as pathvlm exports it: linear_1 and an identity linear_2, which is left out.
  config["projector_hidden_act"] = "linear";
  const auto linear = read_config(dir, config);
  ASSERT_TRUE(linear.has_value());
  EXPECT_EQ(linear->projector, "linear");
  EXPECT_EQ(linear->init_renames(true),
            (std::vector<std::string>{"model.multi_modal_projector.linear_1. -> multi_modal_projector.linear_1.",
                                      "model.language_model. -> language_model.model.",
                                      "lm_head. -> language_model.lm_head."}));
  EXPECT_EQ(linear->init_skipped(true),
            (std::vector<std::string>{"model.vision_tower.", "model.multi_modal_projector.linear_2."}));
}

// Its text_config is the language model: the keys transformers left out take LlamaConfig's defaults, as transformers
// reads them back, and errors name the text_config.
TEST(LlavaCheckpoint, ItsTextConfigIsTheLanguageModelWithLlamaDefaults) {
  const auto text = models::parse_hf_llama_config(llava_hf_config().dump(), "llava/config.json");
  EXPECT_EQ(text.model_type, "llama");
  EXPECT_EQ(text.vocab_size, 32064);
  EXPECT_EQ(text.hidden_size, 4096);
  EXPECT_EQ(text.intermediate_size, 11008);
  EXPECT_EQ(text.num_hidden_layers, 32);
  EXPECT_EQ(text.num_attention_heads, 32);
  EXPECT_EQ(text.num_key_value_heads, 32);
  EXPECT_EQ(text.head_dim, 128);
  EXPECT_EQ(text.max_position_embeddings, 4096);
  EXPECT_DOUBLE_EQ(text.rms_norm_eps, 1e-5);
  EXPECT_EQ(text.bos_token_id, 1);
  EXPECT_EQ(text.eos_token_id, 2);

  auto mistral = llava_hf_config();
  mistral["text_config"] = {{"model_type", "mistral"}, {"vocab_size", 32064}};
  const auto m = models::parse_hf_llama_config(mistral.dump(), "llava/config.json");
  EXPECT_EQ(m.intermediate_size, 14336);  // MistralConfig's
  EXPECT_EQ(m.num_key_value_heads, 8);
  EXPECT_EQ(m.max_position_embeddings, 131072);

  auto bad = llava_hf_config();
  bad["text_config"]["hidden_act"] = "gelu";
  EXPECT_HAS(error_of([&] { models::parse_hf_llama_config(bad.dump(), "llava/config.json"); }),
             "llava/config.json: text_config: hidden_act 'gelu' is not implemented");
  bad["text_config"] = {{"model_type", "gemma"}};
  EXPECT_HAS(error_of([&] { models::parse_hf_llama_config(bad.dump(), "llava/config.json"); }),
             "llava/config.json: text_config: model_type 'gemma' is not a LLaMA-family model");
}

TEST(LlavaCheckpoint, RefusesTransformersProjectorsAndFeaturesItDoesNotBuild) {
  TempDir dir("llava_transformers_refused");
  write_weights(dir, models::HfLlavaLayout::before_4_52());
  for (const auto& [key, value, expect] : std::vector<std::tuple<std::string, json, std::string>>{
           {"projector_hidden_act", "silu", "projector_hidden_act 'silu'"},
           {"multimodal_projector_bias", false, "multimodal_projector_bias is false"},
           {"vision_feature_layer", json::array({-2, -5}), "vision_feature_layer is a list"},
           {"vision_feature_select_strategy", "cls", "vision_feature_select_strategy 'cls'"}}) {
    auto config = llava_hf_config();
    config[key] = value;
    const auto msg = error_of([&] { read_config(dir, config); });
    EXPECT_HAS(msg, dir / "config.json");
    EXPECT_HAS(msg, expect);
  }
  // A linear activation between two layers that are not a single FC in pathvlm's export form.
  write_weights(dir, models::HfLlavaLayout::before_4_52(), torch::eye(4) * 2);
  auto linear = llava_hf_config();
  linear["projector_hidden_act"] = "linear";
  EXPECT_HAS(error_of([&] { read_config(dir, linear); }),
             "multi_modal_projector.linear_2.weight is not the identity");
  // No language model under transformers' names.
  safetensors::save(dir / "model.safetensors", {{"model.embed_tokens.weight", torch::zeros({8, 4})}});
  EXPECT_HAS(error_of([&] { read_config(dir, llava_hf_config()); }),
             "the weights hold no language model under transformers' names");
}
