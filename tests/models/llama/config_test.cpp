// LLaMA config.json as transformers 4.x and 5.x write it, linear and refused rope scalings, malformed files, presets.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <string>

#include "models/llama/config.h"
#include "test_util.h"

using namespace pathvlm;
using models::LlamaConfig;
using models::parse_hf_llama_config;
using pathvlm::testing::error_of;

namespace {

// As transformers 4.45 save_pretrained writes a GQA model with rope_theta 500000 (LLaMA-3 style, unscaled).
const char* kConfig4x = R"({
  "_name_or_path": "tiny",
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 256,
  "initializer_range": 0.02,
  "intermediate_size": 688,
  "max_position_embeddings": 8192,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 8,
  "num_hidden_layers": 3,
  "num_key_value_heads": 2,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": null,
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.45.2",
  "use_cache": true,
  "vocab_size": 1000
})";

// The same model as transformers 5.x writes it: rope settings under rope_parameters, head_dim filled in.
const char* kConfig5x = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "dtype": "bfloat16",
  "eos_token_id": 2,
  "head_dim": 32,
  "hidden_act": "silu",
  "hidden_size": 256,
  "initializer_range": 0.02,
  "intermediate_size": 688,
  "max_position_embeddings": 8192,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 8,
  "num_hidden_layers": 3,
  "num_key_value_heads": 2,
  "pad_token_id": null,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"},
  "tie_word_embeddings": false,
  "transformers_version": "5.0.0",
  "use_cache": true,
  "vocab_size": 1000
})";

std::string with(const char* base, const std::string& key, const nlohmann::json& value) {
  auto j = nlohmann::json::parse(base);
  j[key] = value;
  return j.dump();
}

std::string without(const char* base, const std::string& key) {
  auto j = nlohmann::json::parse(base);
  j.erase(key);
  return j.dump();
}

void expect_same(const LlamaConfig& a, const LlamaConfig& b) {
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.num_hidden_layers, b.num_hidden_layers);
  EXPECT_EQ(a.num_attention_heads, b.num_attention_heads);
  EXPECT_EQ(a.num_key_value_heads, b.num_key_value_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_position_embeddings, b.max_position_embeddings);
  EXPECT_EQ(a.rms_norm_eps, b.rms_norm_eps);
  EXPECT_EQ(a.rope_theta, b.rope_theta);
  EXPECT_TRUE(a.rope_scaling == b.rope_scaling);
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.sliding_window, b.sliding_window);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.qkv_bias, b.qkv_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.tie_word_embeddings, b.tie_word_embeddings);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
  EXPECT_EQ(a.initializer_range, b.initializer_range);
}

}  // namespace

TEST(LlamaConfig, BothTransformersFormsParseToTheSameConfig) {
  auto old_form = parse_hf_llama_config(kConfig4x, "4x/config.json");
  auto new_form = parse_hf_llama_config(kConfig5x, "5x/config.json");
  expect_same(old_form, new_form);
  EXPECT_EQ(old_form.rope_theta, 500000.0);
  EXPECT_EQ(old_form.num_key_value_heads, 2);
  EXPECT_EQ(old_form.head_dim, 32);  // hidden_size / heads when absent
  EXPECT_EQ(old_form.rms_norm_eps, 1e-5);
  EXPECT_EQ(old_form.max_position_embeddings, 8192);
  EXPECT_EQ(old_form.pad_token_id, -1);
}

TEST(LlamaConfig, LegacyAndDefaultedKeys) {
  // No num_key_value_heads (LLaMA-1/2 era): multi-head attention; no rope keys: theta 10000.
  auto c = parse_hf_llama_config(without(without(kConfig4x, "num_key_value_heads").c_str(), "rope_theta"), "c.json");
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.rope_theta, 10000.0);
  // A legacy rope_scaling that says "default" is plain RoPE; Llama-3 configs list several eos ids.
  c = parse_hf_llama_config(with(kConfig4x, "rope_scaling", {{"type", "default"}}), "c.json");
  EXPECT_EQ(c.rope_theta, 500000.0);
  c = parse_hf_llama_config(with(kConfig5x, "eos_token_id", {128001, 128009}), "c.json");
  EXPECT_EQ(c.eos_token_id, 128001);
  c = parse_hf_llama_config(with(kConfig5x, "pad_token_id", 0), "c.json");
  EXPECT_EQ(c.pad_token_id, 0);
  c = parse_hf_llama_config(with(kConfig5x, "tie_word_embeddings", true), "c.json");
  EXPECT_TRUE(c.tie_word_embeddings);
}

TEST(LlamaConfig, WrittenConfigReadsBackInBothForms) {
  auto config = parse_hf_llama_config(kConfig4x, "4x/config.json");
  config.pad_token_id = 0;
  config.attention_bias = true;
  const auto text = models::hf_llama_config_json(config, torch::kBFloat16);
  expect_same(parse_hf_llama_config(text, "ours"), config);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["rope_theta"], 500000.0);
  EXPECT_EQ(j["rope_parameters"]["rope_theta"], 500000.0);
  EXPECT_EQ(j["rope_parameters"]["rope_type"], "default");
  EXPECT_EQ(j["head_dim"], 32);
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  EXPECT_EQ(j["dtype"], "bfloat16");
  EXPECT_EQ(j["architectures"][0], "LlamaForCausalLM");
  // What 4.x reads alone (rope_parameters dropped) and what 5.x reads alone give the same model.
  j.erase("rope_parameters");
  expect_same(parse_hf_llama_config(j.dump(), "4x view"), config);
  j = nlohmann::json::parse(text);
  j.erase("rope_theta");
  j.erase("rope_scaling");
  expect_same(parse_hf_llama_config(j.dump(), "5x view"), config);
}

// Mistral-7B-Instruct-v0.2's config.json as transformers 4.36 wrote it (shapes scaled down): no window.
const char* kMistralConfig = R"({
  "architectures": ["MistralForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 1,
  "eos_token_id": 2,
  "hidden_act": "silu",
  "hidden_size": 256,
  "initializer_range": 0.02,
  "intermediate_size": 896,
  "max_position_embeddings": 32768,
  "model_type": "mistral",
  "num_attention_heads": 8,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-05,
  "rope_theta": 1000000.0,
  "sliding_window": null,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.36.0",
  "use_cache": true,
  "vocab_size": 1000
})";

TEST(LlamaConfig, MistralReadsAndWritesBackAsMistral) {
  auto c = parse_hf_llama_config(kMistralConfig, "mistral-7b-instruct-v0.2/config.json");
  EXPECT_EQ(c.model_type, "mistral");
  EXPECT_EQ(c.sliding_window, 0);
  EXPECT_EQ(c.rope_theta, 1e6);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_EQ(c.max_position_embeddings, 32768);
  const auto text = models::hf_llama_config_json(c, torch::kBFloat16);
  expect_same(parse_hf_llama_config(text, "ours"), c);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["architectures"][0], "MistralForCausalLM");
  EXPECT_EQ(j["model_type"], "mistral");
  EXPECT_TRUE(j.contains("sliding_window") && j["sliding_window"].is_null());
  EXPECT_FALSE(j.contains("attention_bias") || j.contains("mlp_bias") || j.contains("pretraining_tp"));

  // v0.1 had a 4096-token window; MistralConfig's defaults fill what a config leaves out.
  c = parse_hf_llama_config(with(kMistralConfig, "sliding_window", 4096), "v0.1.json");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(nlohmann::json::parse(models::hf_llama_config_json(c, torch::kFloat32))["sliding_window"], 4096);
  auto defaults = nlohmann::json::parse(kMistralConfig);
  for (const char* key : {"sliding_window", "num_key_value_heads", "max_position_embeddings"}) defaults.erase(key);
  c = parse_hf_llama_config(defaults.dump(), "defaults.json");
  EXPECT_EQ(c.sliding_window, 4096);
  EXPECT_EQ(c.num_key_value_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 131072);

  for (const auto& [text, expect] : std::vector<std::pair<std::string, std::string>>{
           {with(kMistralConfig, "sliding_window", 0), "sliding_window must be positive or null, got 0"},
           {with(kMistralConfig, "sliding_window", -5), "sliding_window must be positive or null, got -5"},
           {with(kMistralConfig, "attention_bias", true), "Mistral has no biases"}}) {
    const auto msg = error_of([&] { parse_hf_llama_config(text, "m.json"); });
    EXPECT_NE(msg.find(expect), std::string::npos) << msg;
    EXPECT_NE(msg.find("m.json"), std::string::npos) << msg;
  }
}

// Qwen2.5-0.5B-Instruct's config.json as transformers 4.43 wrote it (shapes scaled down).
const char* kQwen2Config = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 64,
  "initializer_range": 0.02,
  "intermediate_size": 128,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 4,
  "num_hidden_layers": 2,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

TEST(LlamaConfig, Qwen2ReadsWithQkvBiasesAndWritesBackAsQwen2) {
  auto c = parse_hf_llama_config(kQwen2Config, "qwen2.5-0.5b-instruct/config.json");
  EXPECT_EQ(c.model_type, "qwen2");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.attention_bias || c.mlp_bias);
  EXPECT_EQ(c.sliding_window, 0);  // use_sliding_window false: no window
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.eos_token_id, 151645);
  const auto text = models::hf_llama_config_json(c, torch::kBFloat16);
  expect_same(parse_hf_llama_config(text, "ours"), c);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["architectures"][0], "Qwen2ForCausalLM");
  EXPECT_EQ(j["model_type"], "qwen2");
  EXPECT_EQ(j["use_sliding_window"], false);
  EXPECT_FALSE(j.contains("attention_bias") || j.contains("mlp_bias") || j.contains("pretraining_tp"));
  // A LLaMA's attention_bias key means nothing to Qwen2Config: its biases are fixed.
  EXPECT_TRUE(parse_hf_llama_config(with(kQwen2Config, "attention_bias", false), "q.json").qkv_bias);

  const auto msg = error_of([&] { parse_hf_llama_config(with(kQwen2Config, "use_sliding_window", true), "q.json"); });
  EXPECT_NE(msg.find("use_sliding_window is not implemented"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q.json"), std::string::npos) << msg;
}

// Qwen3-0.6B's config.json as transformers 4.51 wrote it (shapes scaled down): head_dim given, q/k norms implied.
TEST(LlamaConfig, Qwen3ReadsWithQkNormsAndWritesBackAsQwen3) {
  auto qwen3 = nlohmann::json::parse(kQwen2Config);
  qwen3["model_type"] = "qwen3";
  qwen3["architectures"] = {"Qwen3ForCausalLM"};
  qwen3["head_dim"] = 32;  // not hidden_size / heads (16)
  qwen3["attention_bias"] = false;
  qwen3["sliding_window"] = nullptr;
  auto c = parse_hf_llama_config(qwen3.dump(), "qwen3-0.6b/config.json");
  EXPECT_EQ(c.model_type, "qwen3");
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.qkv_bias || c.attention_bias || c.mlp_bias);
  EXPECT_EQ(c.head_dim, 32);
  const auto text = models::hf_llama_config_json(c, torch::kBFloat16);
  expect_same(parse_hf_llama_config(text, "ours"), c);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["architectures"][0], "Qwen3ForCausalLM");
  EXPECT_EQ(j["head_dim"], 32);
  EXPECT_EQ(j["attention_bias"], false);
  EXPECT_FALSE(j.contains("mlp_bias") || j.contains("pretraining_tp"));
  qwen3["use_sliding_window"] = true;
  const auto msg = error_of([&] { parse_hf_llama_config(qwen3.dump(), "q3.json"); });
  EXPECT_NE(msg.find("use_sliding_window is not implemented"), std::string::npos) << msg;
}

// LLaVA's original checkpoints: LLaVA-Med v1.5 (llava_mistral), LLaVA-1.5 (llava, before LLaVA 1.2 renamed it
// llava_llama) are their language model's config plus mm_* keys, and write back as that language model; a
// transformers LlavaForConditionalGeneration's is its text_config.
TEST(LlamaConfig, LlavaOriginalConfigsAreTheirLanguageModels) {
  auto llava_med = nlohmann::json::parse(kMistralConfig);
  llava_med["model_type"] = "llava_mistral";
  llava_med["architectures"] = {"LlavaMistralForCausalLM"};
  llava_med["mm_projector_type"] = "mlp2x_gelu";
  llava_med["mm_hidden_size"] = 1024;
  auto c = parse_hf_llama_config(llava_med.dump(), "llava-med/config.json");
  expect_same(c, parse_hf_llama_config(kMistralConfig, "mistral"));
  EXPECT_EQ(nlohmann::json::parse(models::hf_llama_config_json(c, torch::kBFloat16))["model_type"], "mistral");

  auto llava15 = nlohmann::json::parse(kConfig4x);
  llava15["mm_vision_tower"] = "openai/clip-vit-large-patch14-336";
  for (const std::string type : {"llava", "llava_llama"}) {
    llava15["model_type"] = type;
    expect_same(parse_hf_llama_config(llava15.dump(), type), parse_hf_llama_config(kConfig4x, "llama"));
  }

  // transformers' own Llava nests the language model under text_config.
  const auto hf_llava = nlohmann::json{{"model_type", "llava"}, {"text_config", nlohmann::json::parse(kConfig4x)}};
  expect_same(parse_hf_llama_config(hf_llava.dump(), "llava-hf/config.json"),
              parse_hf_llama_config(kConfig4x, "llama"));
}

// Vicuna v1.5-16k's config (transformers 4.31 wrote it): linear scaling by 4 under the legacy `type`.
TEST(LlamaConfig, LinearRopeScalingInBothFormsAndBackOut) {
  auto vicuna_16k = with(kConfig4x, "rope_scaling", {{"type", "linear"}, {"factor", 4.0}});
  auto old_form = parse_hf_llama_config(vicuna_16k, "vicuna-13b-v1.5-16k/config.json");
  EXPECT_EQ(old_form.rope_scaling.type, "linear");
  EXPECT_EQ(old_form.rope_scaling.factor, 4.0);
  EXPECT_EQ(old_form.rope_theta, 500000.0);
  auto new_form = parse_hf_llama_config(
      with(kConfig5x, "rope_parameters", {{"rope_type", "linear"}, {"factor", 4.0}, {"rope_theta", 500000.0}}),
      "5x/config.json");
  expect_same(old_form, new_form);
  EXPECT_EQ(new_form.rope_scaling.factor, 4.0);
  // 5.x takes a non-null legacy rope_scaling over rope_parameters (4.x reads nothing else).
  auto both = nlohmann::json::parse(kConfig5x);
  both["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2.0}};
  EXPECT_EQ(parse_hf_llama_config(both.dump(), "both.json").rope_scaling.factor, 2.0);
  // A plain config is unscaled.
  EXPECT_EQ(parse_hf_llama_config(kConfig5x, "5x/config.json").rope_scaling.type, "default");

  // Written back in both forms, each of which alone gives the same model.
  const auto text = models::hf_llama_config_json(old_form, torch::kFloat32);
  expect_same(parse_hf_llama_config(text, "ours"), old_form);
  auto j = nlohmann::json::parse(text);
  EXPECT_EQ(j["rope_scaling"]["rope_type"], "linear");
  EXPECT_EQ(j["rope_scaling"]["type"], "linear");
  EXPECT_EQ(j["rope_scaling"]["factor"], 4.0);
  EXPECT_EQ(j["rope_parameters"]["rope_type"], "linear");
  EXPECT_EQ(j["rope_parameters"]["factor"], 4.0);
  EXPECT_EQ(j["rope_parameters"]["rope_theta"], 500000.0);
  auto four = j;
  four.erase("rope_parameters");
  expect_same(parse_hf_llama_config(four.dump(), "4x view"), old_form);
  auto five = j;
  five.erase("rope_scaling");
  five.erase("rope_theta");
  expect_same(parse_hf_llama_config(five.dump(), "5x view"), old_form);
  // An unscaled config writes no scaling.
  new_form.rope_scaling = {};
  j = nlohmann::json::parse(models::hf_llama_config_json(new_form, torch::kFloat32));
  EXPECT_TRUE(j["rope_scaling"].is_null());
  EXPECT_EQ(j["rope_parameters"]["rope_type"], "default");
}

// LLaMA-3.1-8B's rope_scaling (transformers 4.43 wrote it) and 5.x's rope_parameters read to the same scaling, and
// write back in both forms.
TEST(LlamaConfig, Llama3RopeScalingInBothFormsAndBackOut) {
  const nlohmann::json scaling = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                  {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  const auto old_form = parse_hf_llama_config(with(kConfig4x, "rope_scaling", scaling), "llama-3.1-8b/config.json");
  EXPECT_EQ(old_form.rope_scaling.type, "llama3");
  EXPECT_EQ(old_form.rope_scaling.factor, 8.0);
  EXPECT_EQ(old_form.rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(old_form.rope_scaling.high_freq_factor, 4.0);
  EXPECT_EQ(old_form.rope_scaling.original_max_position_embeddings, 8192);
  auto parameters = scaling;
  parameters["rope_theta"] = 500000.0;
  expect_same(parse_hf_llama_config(with(kConfig5x, "rope_parameters", parameters), "5x.json"), old_form);

  const auto j = nlohmann::json::parse(models::hf_llama_config_json(old_form, torch::kBFloat16));
  EXPECT_EQ(j["rope_scaling"], scaling);
  EXPECT_EQ(j["rope_parameters"], parameters);
  EXPECT_TRUE(j["rope_scaling"]["original_max_position_embeddings"].is_number_integer());
  expect_same(parse_hf_llama_config(j.dump(), "ours"), old_form);
}

TEST(LlamaConfig, RopeScalingTypesAreRefusedByName) {
  auto msg = error_of([] {
    parse_hf_llama_config(with(kConfig4x, "rope_scaling", {{"type", "linear"}}), "vicuna-13b-v1.5-16k/config.json");
  });
  EXPECT_NE(msg.find("'linear' needs a 'factor'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("vicuna-13b-v1.5-16k/config.json"), std::string::npos) << msg;
  msg = error_of([] {
    parse_hf_llama_config(with(kConfig4x, "rope_scaling", {{"type", "linear"}, {"factor", 0}}), "z.json");
  });
  EXPECT_NE(msg.find("'factor' must be positive, got 0"), std::string::npos) << msg;

  msg = error_of([] {
    parse_hf_llama_config(with(kConfig5x, "rope_parameters",
                               {{"rope_type", "yarn"}, {"rope_theta", 500000.0}, {"factor", 4.0},
                                {"original_max_position_embeddings", 32768}}),
                          "qwen2.5-7b-yarn/config.json");
  });
  EXPECT_NE(msg.find("'yarn'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("qwen2.5-7b-yarn/config.json"), std::string::npos) << msg;
  // llama3 needs all four of its numbers, in range.
  const nlohmann::json llama31 = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                                  {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto without = llama31;
  without.erase("high_freq_factor");
  msg = error_of([&] { parse_hf_llama_config(with(kConfig4x, "rope_scaling", without), "l.json"); });
  EXPECT_NE(msg.find("rope type 'llama3' needs a 'high_freq_factor'"), std::string::npos) << msg;
  auto inverted = llama31;
  inverted["low_freq_factor"] = 4.0;
  msg = error_of([&] { parse_hf_llama_config(with(kConfig4x, "rope_scaling", inverted), "l.json"); });
  EXPECT_NE(msg.find("0 < low_freq_factor < high_freq_factor"), std::string::npos) << msg;
  EXPECT_NE(msg.find("l.json"), std::string::npos) << msg;

  // 5.x lets a non-null legacy rope_scaling win over rope_parameters, so it is refused even beside them.
  msg = error_of([] {
    parse_hf_llama_config(with(kConfig5x, "rope_scaling", {{"rope_type", "dynamic"}, {"factor", 2.0}}), "d.json");
  });
  EXPECT_NE(msg.find("'dynamic'"), std::string::npos) << msg;
}

TEST(LlamaConfig, MalformedConfigsNameTheFile) {
  struct Case {
    std::string text, expect;
  };
  const Case cases[] = {
      {"{not json", "not valid JSON"},
      {"[1, 2]", "expected a JSON object"},
      {with(kConfig4x, "model_type", "bert"), "model_type 'bert' is not a LLaMA-family model"},
      {with(kConfig4x, "model_type", 128), "'model_type' must be a string, got 128"},
      {with(kConfig4x, "rms_norm_eps", "1e-5"), "'rms_norm_eps' must be a number, got \"1e-5\""},
      {with(kConfig4x, "tie_word_embeddings", "yes"), "'tie_word_embeddings' must be true or false"},
      {with(kConfig4x, "hidden_act", 1), "'hidden_act' must be a string"},
      {with(kConfig5x, "eos_token_id", {"</s>"}), "eos_token_id must list integers"},
      {with(kConfig5x, "rope_parameters", {{"rope_type", 3}}), "rope_parameters: 'rope_type' must be a string"},
      {with(kConfig5x, "rope_parameters", {{"rope_type", "default"}, {"rope_theta", "1e4"}}),
       "rope_parameters: 'rope_theta' must be a number"},
      {with(kConfig5x, "rope_parameters", {{"rope_type", "default"}, {"partial_rotary_factor", 0.5}}),
       "rope_parameters: partial_rotary_factor 0.5 is not implemented"},
      {without(kConfig5x, "hidden_size"), "missing 'hidden_size'"},
      {with(kConfig5x, "hidden_size", "big"), "'hidden_size' must be an integer, got \"big\""},
      {with(kConfig5x, "num_key_value_heads", 3), "num_key_value_heads (3)"},
      {with(kConfig5x, "head_dim", 7), "head_dim (7)"},
      {with(kConfig5x, "hidden_act", "gelu"), "'gelu'"},
      {with(kConfig5x, "rope_parameters", "fast"), "'rope_parameters' must be an object"},
      {with(kConfig5x, "eos_token_id", nlohmann::json::array()), "eos_token_id is an empty list"},
  };
  for (const auto& c : cases) {
    auto msg = error_of([&] { parse_hf_llama_config(c.text, "models/x/config.json"); });
    EXPECT_NE(msg.find("models/x/config.json"), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << "expected '" << c.expect << "' in: " << msg;
  }
}

TEST(LlamaConfig, PresetsHaveThePublishedSizes) {
  EXPECT_EQ(models::llama_preset_names(),
            (std::vector<std::string>{"llama2-13b", "llama2-7b", "tiny", "tinyllama-1.1b"}));
  // Parameter counts of the published checkpoints.
  EXPECT_EQ(models::llama_preset("tinyllama-1.1b").num_parameters(), 1100048384);
  EXPECT_EQ(models::llama_preset("llama2-7b").num_parameters(), 6738415616);
  EXPECT_EQ(models::llama_preset("llama2-13b").num_parameters(), 13015864320);
  const auto tiny = models::llama_preset("tiny");
  EXPECT_LT(tiny.num_key_value_heads, tiny.num_attention_heads);
  EXPECT_FALSE(tiny.tie_word_embeddings);
  auto msg = error_of([] { models::llama_preset("llama-70b"); });
  EXPECT_NE(msg.find("tinyllama-1.1b"), std::string::npos) << msg;
}
