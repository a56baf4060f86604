// PEFT adapter files of a tiny LLaMA: exact key names, shapes and dtype, adapter_config.json's fields and key
// order, a bit-equal save -> load round trip, and errors naming the file and the tensor.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <tuple>

#include "io/safetensors.h"
#include "models/llama/model.h"
#include "models/lora/apply.h"
#include "models/lora/peft.h"
#include "test_util.h"

using namespace pathvlm;
using models::LoraOptions;
using pathvlm::testing::error_of;
namespace fs = std::filesystem;

namespace {

models::LlamaForCausalLM tiny_llama(uint64_t seed) {
  torch::manual_seed(seed);
  return models::LlamaForCausalLM(models::llama_preset("tiny"));
}

// A tiny LLaMA with trained-looking adapters on q_proj and v_proj.
models::LlamaForCausalLM adapted_llama(uint64_t seed) {
  auto lm = tiny_llama(seed);
  models::apply_lora(*lm, {"v_proj", "q_proj"}, LoraOptions(8, 16).dropout(0.05));
  torch::NoGradGuard no_grad;
  for (const auto& [path, layer] : models::lora_layers(*lm)) layer->lora_B.normal_(0.0, 0.05);
  return lm;
}

std::string temp_dir(const std::string& name) {
  const auto dir = fs::temp_directory_path() / ("pathvlm_peft_test_" + name);
  fs::remove_all(dir);
  return dir.string();
}

std::string read_text(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

}  // namespace

TEST(PeftAdapter, FileLayoutAsPeftWritesIt) {
  auto lm = adapted_llama(1);
  const auto dir = temp_dir("layout");
  models::save_peft_adapter(*lm, dir, "meta-llama/Llama-2-7b-hf");

  auto file = safetensors::File::open(dir + "/adapter_model.safetensors");
  std::set<std::string> keys;
  for (const auto& info : file.tensors()) {
    keys.insert(info.name);
    EXPECT_EQ(info.dtype, torch::kFloat32) << info.name;
  }
  std::set<std::string> expected;
  for (int layer : {0, 1})
    for (const char* proj : {"q_proj", "v_proj"})
      for (const char* ab : {"A", "B"})
        expected.insert(
            str("base_model.model.model.layers.", layer, ".self_attn.", proj, ".lora_", ab, ".weight"));
  EXPECT_EQ(keys, expected);
  // tiny: width 64, 4 query heads and 2 K/V heads of 16.
  EXPECT_EQ(file.info("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight").shape,
            (std::vector<int64_t>{8, 64}));
  EXPECT_EQ(file.info("base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight").shape,
            (std::vector<int64_t>{32, 8}));
  EXPECT_EQ(file.metadata().at("format"), "pt");

  const auto text = read_text(dir + "/adapter_config.json");
  const auto config = nlohmann::json::parse(text);
  const nlohmann::json expected_config = {
      {"alpha_pattern", nlohmann::json::object()}, {"auto_mapping", nullptr},
      {"base_model_name_or_path", "meta-llama/Llama-2-7b-hf"},
      {"bias", "none"}, {"fan_in_fan_out", false}, {"inference_mode", true}, {"init_lora_weights", true},
      {"layers_pattern", nullptr}, {"layers_to_transform", nullptr}, {"lora_alpha", 16}, {"lora_dropout", 0.05},
      {"modules_to_save", nullptr}, {"peft_type", "LORA"}, {"peft_version", "0.20.1.dev0"}, {"r", 8},
      {"rank_pattern", nlohmann::json::object()}, {"revision", nullptr},
      {"target_modules", {"q_proj", "v_proj"}}, {"task_type", "CAUSAL_LM"}, {"use_rslora", false}};
  EXPECT_EQ(config, expected_config) << text;
  EXPECT_TRUE(config["lora_alpha"].is_number_integer());  // 16, as PEFT writes an int alpha
  // Keys sorted in the text, as json.dumps(sort_keys=True).
  EXPECT_LT(text.find("\"alpha_pattern\""), text.find("\"base_model_name_or_path\""));
  EXPECT_LT(text.find("\"target_modules\""), text.find("\"use_rslora\""));

  const auto options = models::read_peft_config(dir);
  EXPECT_EQ(options.r(), 8);
  EXPECT_EQ(options.alpha(), 16.0);
  EXPECT_EQ(options.dropout(), 0.05);
  EXPECT_FALSE(options.use_rslora());
  fs::remove_all(dir);
}

TEST(PeftAdapter, SaveLoadRoundTripIsBitEqual) {
  auto trained = adapted_llama(2);
  const auto dir = temp_dir("round_trip");
  models::save_peft_adapter(*trained, dir, "");
  EXPECT_TRUE(nlohmann::json::parse(read_text(dir + "/adapter_config.json"))["base_model_name_or_path"].is_null());

  auto fresh = tiny_llama(2);  // the same base weights
  const auto loaded = models::load_peft_adapter(*fresh, dir);
  EXPECT_EQ(loaded, (std::vector<std::string>{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj",
                                              "model.layers.1.self_attn.q_proj", "model.layers.1.self_attn.v_proj"}));
  auto a = trained->named_parameters(), b = fresh->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (const auto& p : a) EXPECT_TRUE(torch::equal(p.value(), b[p.key()])) << p.key();
  for (const auto& [path, layer] : models::lora_layers(*fresh)) {
    EXPECT_EQ(layer->lora_options().r(), 8);
    EXPECT_EQ(layer->lora_options().scaling(), 2.0);
  }
  trained->eval();
  fresh->eval();
  const auto x = torch::randint(0, 512, {2, 6}, torch::kLong);
  EXPECT_TRUE(torch::equal(trained->forward(x), fresh->forward(x)));
  fs::remove_all(dir);
}

TEST(PeftAdapter, ErrorsNameTheFileAndTensor) {
  auto trained = adapted_llama(3);
  const auto dir = temp_dir("errors");
  models::save_peft_adapter(*trained, dir, "");
  const std::string file = dir + "/adapter_model.safetensors";

  auto message = error_of([&] { models::load_peft_adapter(*tiny_llama(3), dir, "base_model.model.language_model."); });
  EXPECT_NE(message.find(file), std::string::npos) << message;
  EXPECT_NE(message.find("does not start with 'base_model.model.language_model.'"), std::string::npos) << message;

  // A model with one layer only has no model.layers.1.
  auto config = models::llama_preset("tiny");
  config.num_hidden_layers = 1;
  message = error_of([&] { models::load_peft_adapter(*models::LlamaForCausalLM(config), dir); });
  EXPECT_NE(message.find("base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight' names no Linear layer"),
            std::string::npos)
      << message;

  message = error_of([&] { models::load_peft_adapter(*trained, dir); });
  EXPECT_NE(message.find("has an adapter already"), std::string::npos) << message;

  auto json = nlohmann::json::parse(read_text(dir + "/adapter_config.json"));
  json["r"] = 4;
  write_text(dir + "/adapter_config.json", json.dump());
  message = error_of([&] { models::load_peft_adapter(*tiny_llama(3), dir); });
  EXPECT_NE(message.find("q_proj.lora_A.weight' has shape [8, 64], the layer wants [4, 64]"), std::string::npos)
      << message;

  json["r"] = 8;
  json["use_dora"] = true;
  write_text(dir + "/adapter_config.json", json.dump());
  message = error_of([&] { models::load_peft_adapter(*tiny_llama(3), dir); });
  EXPECT_NE(message.find(dir + "/adapter_config.json': use_dora = true is not supported"), std::string::npos)
      << message;

  // Fields of the wrong type or out of range name the file and the key, not a JSON library's type error.
  json["use_dora"] = false;
  for (const auto& [key, value, expect] : std::vector<std::tuple<std::string, nlohmann::json, std::string>>{
           {"r", "8", "'r' must be an integer, got \"8\""},
           {"r", 0, "r must be at least 1, got 0"},
           {"peft_type", 3, "'peft_type' must be a string, got 3"},
           {"lora_alpha", "16", "'lora_alpha' must be a number"},
           {"lora_dropout", 1.5, "lora_dropout must be in [0, 1), got 1.5"},
           {"use_rslora", "no", "'use_rslora' must be true or false"}}) {
    auto bad = json;
    bad[key] = value;
    write_text(dir + "/adapter_config.json", bad.dump());
    message = error_of([&] { models::load_peft_adapter(*tiny_llama(3), dir); });
    EXPECT_NE(message.find(dir + "/adapter_config.json': "), std::string::npos) << message;
    EXPECT_NE(message.find(expect), std::string::npos) << "expected '" << expect << "' in: " << message;
  }

  EXPECT_NE(error_of([&] { models::save_peft_adapter(*tiny_llama(3), dir, ""); }).find("has no LoRA adapter"),
            std::string::npos);
  fs::remove_all(dir);
}
