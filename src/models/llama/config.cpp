#include "models/llama/config.h"

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "models/hf_dtype.h"
#include "models/model_size.h"

namespace pathvlm::models {

namespace {

void check_model_type(const std::string& model_type, const std::string& where) {
  PATHVLM_CHECK(model_type == "llama" || model_type == "mistral" || model_type == "qwen2" || model_type == "qwen3",
                where, ": model_type '", model_type,
                "' is not a LLaMA-family model (expected \"llama\", \"mistral\", \"qwen2\" or \"qwen3\")");
}

// transformers writes a LlavaForConditionalGeneration's text_config as its difference from LlamaConfig's defaults
// (llava-hf's LLaVA-1.5-7B names 7 keys) and reads it back with the defaults of its own model_type: the shape keys
// this parser requires of a whole config.json, per type.
nlohmann::json text_config_defaults(const std::string& model_type) {
  const bool qwen = model_type == "qwen2" || model_type == "qwen3";
  return {{"vocab_size", qwen ? 151936 : 32000},
          {"hidden_size", 4096},
          {"intermediate_size", qwen ? 22016 : model_type == "mistral" ? 14336 : 11008},
          {"num_hidden_layers", 32},
          {"num_attention_heads", 32},
          {"max_position_embeddings", qwen ? 32768 : model_type == "mistral" ? 131072 : 2048}};
}

// The language model's part of a config.json: the file itself, or the text_config of a transformers
// LlavaForConditionalGeneration (model_type llava with a text_config) with its left-out keys filled in. LLaVA's
// original checkpoints (models/llava/checkpoint.h) are a LLaMA's or Mistral's config with LLaVA's mm_* keys added:
// their model_type (llava_llama, llava_mistral; llava before LLaVA 1.2) becomes the language model's.
nlohmann::json language_model_json(const nlohmann::json& j, const std::string& where) {
  auto lm = j;
  const auto type = json_fields::string_or(j, "model_type", "", where);
  if (type == "llava" && j.contains("text_config")) {
    const auto& text = j.at("text_config");
    PATHVLM_CHECK(text.is_object(), where, ": text_config is not an object");
    lm = text;
    const auto text_type = json_fields::string_or(text, "model_type", "llama", where + ": text_config");
    lm["model_type"] = text_type;
    const auto defaults = text_config_defaults(text_type);
    for (const auto& [key, value] : defaults.items())
      if (!json_fields::present(lm, key.c_str())) lm[key] = value;
  } else if (type == "llava_llama" || type == "llava") {
    lm["model_type"] = "llama";
  } else if (type == "llava_mistral") {
    lm["model_type"] = "mistral";
  }
  return lm;
}

}  // namespace

void LlamaConfig::validate(const std::string& where) const {
  // Far beyond any real LLaMA, and small enough that num_parameters() cannot overflow.
  constexpr int64_t kMaxSize = int64_t(1) << 20, kMaxCount = 1024;
  const std::pair<const char*, int64_t> sizes[] = {{"vocab_size", vocab_size},
                                                   {"hidden_size", hidden_size},
                                                   {"intermediate_size", intermediate_size},
                                                   {"num_hidden_layers", num_hidden_layers},
                                                   {"num_attention_heads", num_attention_heads},
                                                   {"num_key_value_heads", num_key_value_heads},
                                                   {"head_dim", head_dim}};
  for (const auto& [key, value] : sizes)
    check_model_size(where, key, value, std::string(key).rfind("num_", 0) == 0 ? kMaxCount : kMaxSize);
  PATHVLM_CHECK(num_attention_heads > 0 && num_key_value_heads > 0 && num_attention_heads % num_key_value_heads == 0,
                where, ": num_key_value_heads (", num_key_value_heads, ") must divide num_attention_heads (",
                num_attention_heads, ")");
  PATHVLM_CHECK(head_dim > 0 && head_dim % 2 == 0, where, ": head_dim (", head_dim,
                ") must be positive and even (RoPE rotates pairs)");
  PATHVLM_CHECK(rms_norm_eps > 0 && rope_theta > 0, where, ": rms_norm_eps and rope_theta must be positive");
  rope_scaling.validate(where);
  PATHVLM_CHECK(max_position_embeddings > 0, where, ": max_position_embeddings must be positive");
  check_model_type(model_type, where);
  PATHVLM_CHECK(sliding_window >= 0, where, ": sliding_window must be positive or absent, got ", sliding_window);
  PATHVLM_CHECK(model_type == "mistral" || sliding_window == 0, where, ": a sliding window is Mistral's, not LLaMA's");
  PATHVLM_CHECK(model_type != "mistral" || (!attention_bias && !mlp_bias && !qkv_bias), where,
                ": Mistral has no biases");
  PATHVLM_CHECK(qkv_bias == (model_type == "qwen2") && (model_type != "qwen2" || (!attention_bias && !mlp_bias)),
                where, ": biases on q/k/v alone are Qwen2's, and Qwen2 has no others");
  PATHVLM_CHECK(qk_norm == (model_type == "qwen3") && (model_type != "qwen3" || !mlp_bias), where,
                ": q and k normalised per head are Qwen3's, which has no MLP biases");
}

int64_t LlamaConfig::num_parameters() const {
  const int64_t q = num_attention_heads * head_dim, kv = num_key_value_heads * head_dim;
  int64_t attention = hidden_size * q + 2 * hidden_size * kv + q * hidden_size;
  if (attention_bias) attention += q + 2 * kv + hidden_size;
  if (qkv_bias) attention += q + 2 * kv;
  if (qk_norm) attention += 2 * head_dim;
  int64_t mlp = 3 * hidden_size * intermediate_size;
  if (mlp_bias) mlp += 2 * intermediate_size + hidden_size;
  const int64_t layer = attention + mlp + 2 * hidden_size;
  return vocab_size * hidden_size * (tie_word_embeddings ? 1 : 2) + num_hidden_layers * layer + hidden_size;
}

namespace {

LlamaConfig shape(int64_t vocab, int64_t hidden, int64_t intermediate, int64_t layers, int64_t heads,
                  int64_t kv_heads, int64_t max_positions, double eps) {
  LlamaConfig c;
  c.vocab_size = vocab;
  c.hidden_size = hidden;
  c.intermediate_size = intermediate;
  c.num_hidden_layers = layers;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = hidden / heads;
  c.max_position_embeddings = max_positions;
  c.rms_norm_eps = eps;
  return c;
}

// Shapes from the models' published config.json files (TinyLlama-1.1B, LLaMA-2 7B/13B = Vicuna v1.5).
const std::map<std::string, LlamaConfig>& presets() {
  static const std::map<std::string, LlamaConfig> table = {
      {"tiny", shape(512, 64, 176, 2, 4, 2, 512, 1e-5)},
      {"tinyllama-1.1b", shape(32000, 2048, 5632, 22, 32, 4, 2048, 1e-5)},
      {"llama2-7b", shape(32000, 4096, 11008, 32, 32, 32, 4096, 1e-5)},
      {"llama2-13b", shape(32000, 5120, 13824, 40, 40, 40, 4096, 1e-5)},
  };
  return table;
}

}  // namespace

std::vector<std::string> llama_preset_names() {
  std::vector<std::string> names;
  for (const auto& [name, _] : presets()) names.push_back(name);
  return names;
}

LlamaConfig llama_preset(const std::string& name) {
  auto it = presets().find(name);
  if (it == presets().end()) {
    std::string known;
    for (const auto& n : llama_preset_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error(str("unknown LLaMA preset '", name, "' (known: ", known, "; or give a Hugging Face model directory)"));
  }
  return it->second;
}

namespace {

// The scaling a rope_scaling / rope_parameters object names: "default" (unscaled), "linear" (its `factor`) or
// "llama3" (`factor`, `low_freq_factor`, `high_freq_factor`, `original_max_position_embeddings`, all required).
// Other types would load and silently compute other numbers, so they are refused.
RopeScaling rope_scaling_of(const nlohmann::json& rope, const std::string& key, const std::string& where) {
  RopeScaling scaling;
  if (rope.is_null()) return scaling;
  PATHVLM_CHECK(rope.is_object(), where, ": '", key, "' must be an object, got ", rope.dump());
  const std::string at = where + ": " + key;
  // 5.x names it rope_type, 4.x type.
  scaling.type =
      json_fields::string_or(rope, "rope_type", json_fields::string_or(rope, "type", "default", at), at);
  PATHVLM_CHECK(scaling.type == "default" || scaling.type == "linear" || scaling.type == "llama3", where,
                ": rope type '", scaling.type, "' in '", key,
                "' is not implemented (only 'default', 'linear' and 'llama3' are); refusing rather than computing "
                "other numbers");
  const double partial = json_fields::number_or(rope, "partial_rotary_factor", 1.0, at);
  PATHVLM_CHECK(partial == 1.0, at, ": partial_rotary_factor ", partial,
                " is not implemented (only 1: rotary embedding on the whole head)");
  if (scaling.type == "default") return scaling;
  auto number = [&](const char* name, double& out) {
    PATHVLM_CHECK(json_fields::present(rope, name), at, ": rope type '", scaling.type, "' needs a '", name, "'");
    out = json_fields::number_or(rope, name, out, at);
  };
  number("factor", scaling.factor);
  if (scaling.type == "llama3") {
    number("low_freq_factor", scaling.low_freq_factor);
    number("high_freq_factor", scaling.high_freq_factor);
    PATHVLM_CHECK(json_fields::present(rope, "original_max_position_embeddings"), at,
                  ": rope type 'llama3' needs a 'original_max_position_embeddings'");
    scaling.original_max_position_embeddings =
        json_fields::integer_or(rope, "original_max_position_embeddings", 0, at);
  }
  scaling.validate(at);
  return scaling;
}

// The rope_scaling object transformers writes for `scaling` (null when unscaled).
nlohmann::json rope_scaling_json(const RopeScaling& scaling) {
  if (scaling.type == "default") return nullptr;
  nlohmann::json j = {{"rope_type", scaling.type}, {"factor", scaling.factor}};
  if (scaling.type == "linear") j["type"] = "linear";  // transformers before 4.43 read only `type`
  if (scaling.type == "llama3") {
    j["low_freq_factor"] = scaling.low_freq_factor;
    j["high_freq_factor"] = scaling.high_freq_factor;
    j["original_max_position_embeddings"] = scaling.original_max_position_embeddings;
  }
  return j;
}

// A LLaMA-family config as language_model_json gives it.
LlamaConfig parse_language_model(const nlohmann::json& j, const std::string& where) {
  namespace jf = json_fields;
  auto get_int = [&](const char* key, int64_t& out, bool required) {
    PATHVLM_CHECK(!required || jf::present(j, key), where, ": missing '", key, "'");
    out = jf::integer_or(j, key, out, where);
  };

  LlamaConfig c;
  c.model_type = json_fields::string_or(j, "model_type", "", where);
  check_model_type(c.model_type, where);  // before the other keys: a BERT config is not 'missing' LLaMA's keys
  const bool mistral = c.model_type == "mistral", qwen2 = c.model_type == "qwen2", qwen3 = c.model_type == "qwen3";
  get_int("vocab_size", c.vocab_size, true);
  get_int("hidden_size", c.hidden_size, true);
  get_int("intermediate_size", c.intermediate_size, true);
  get_int("num_hidden_layers", c.num_hidden_layers, true);
  get_int("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = mistral ? 8 : c.num_attention_heads;  // MistralConfig's default is 8
  get_int("num_key_value_heads", c.num_key_value_heads, false);
  PATHVLM_CHECK(c.num_attention_heads > 0, where, ": num_attention_heads must be positive, got ",
                c.num_attention_heads);
  // Without an explicit head_dim the heads split hidden_size evenly (as transformers computes it).
  PATHVLM_CHECK(jf::present(j, "head_dim") || c.hidden_size % c.num_attention_heads == 0, where,
                ": num_attention_heads (", c.num_attention_heads, ") does not divide hidden_size (", c.hidden_size,
                ") and there is no head_dim");
  c.head_dim = c.hidden_size / c.num_attention_heads;
  get_int("head_dim", c.head_dim, false);
  if (mistral) c.max_position_embeddings = 4096 * 32;  // MistralConfig's default
  get_int("max_position_embeddings", c.max_position_embeddings, false);
  if (mistral) {
    // Absent: MistralConfig's 4096; null: no window (Mistral v0.2 and later).
    c.sliding_window = j.contains("sliding_window") ? jf::integer_or(j, "sliding_window", 0, where) : 4096;
    PATHVLM_CHECK(!jf::present(j, "sliding_window") || c.sliding_window > 0, where,
                  ": sliding_window must be positive or null, got ", j.at("sliding_window").dump());
  }
  if (qwen2 || qwen3) {
    // Qwen's windows cover only some layers (max_window_layers); models ship with them off.
    PATHVLM_CHECK(!jf::bool_or(j, "use_sliding_window", false, where), where, ": use_sliding_window is not "
                  "implemented for Qwen2 / Qwen3 (their released models leave it off)");
  }
  c.qkv_bias = qwen2;  // Qwen2Attention's q/k/v always have biases, o_proj never
  c.qk_norm = qwen3;
  c.rms_norm_eps = jf::number_or(j, "rms_norm_eps", c.rms_norm_eps, where);
  if (!qwen2) c.attention_bias = jf::bool_or(j, "attention_bias", c.attention_bias, where);
  if (!qwen2 && !qwen3) c.mlp_bias = jf::bool_or(j, "mlp_bias", c.mlp_bias, where);
  c.tie_word_embeddings = jf::bool_or(j, "tie_word_embeddings", c.tie_word_embeddings, where);
  c.initializer_range = jf::number_or(j, "initializer_range", c.initializer_range, where);
  const auto act = jf::string_or(j, "hidden_act", "silu", where);
  PATHVLM_CHECK(act == "silu", where, ": hidden_act '", act, "' is not implemented (LLaMA uses silu)");
  get_int("bos_token_id", c.bos_token_id, false);
  if (jf::present(j, "eos_token_id") && j.at("eos_token_id").is_array()) {
    const auto& ids = j.at("eos_token_id");
    PATHVLM_CHECK(!ids.empty(), where, ": eos_token_id is an empty list");
    PATHVLM_CHECK(ids.at(0).is_number_integer(), where, ": eos_token_id must list integers, got ", ids.dump());
    c.eos_token_id = ids.at(0).get<int64_t>();
  } else {
    get_int("eos_token_id", c.eos_token_id, false);
  }
  get_int("pad_token_id", c.pad_token_id, false);

  // transformers 4.x: top-level rope_theta (+ rope_scaling); 5.x: rope_parameters. A non-null rope_scaling
  // wins in both (4.x reads nothing else, 5.x takes it over rope_parameters).
  c.rope_theta = jf::number_or(j, "rope_theta", c.rope_theta, where);
  if (jf::present(j, "rope_parameters")) {
    const auto& rope = j.at("rope_parameters");
    c.rope_scaling = rope_scaling_of(rope, "rope_parameters", where);
    c.rope_theta = jf::number_or(rope, "rope_theta", c.rope_theta, where + ": rope_parameters");
  }
  if (jf::present(j, "rope_scaling")) {
    c.rope_scaling = rope_scaling_of(j.at("rope_scaling"), "rope_scaling", where);
  }
  c.validate(where);
  return c;
}

}  // namespace

LlamaConfig parse_hf_llama_config(const std::string& json_text, const std::string& where) {
  const auto j = json_fields::parse(json_text, where);
  PATHVLM_CHECK(j.is_object(), where, ": expected a JSON object");
  const bool llava = json_fields::string_or(j, "model_type", "", where) == "llava" && j.contains("text_config");
  return parse_language_model(language_model_json(j, where), llava ? where + ": text_config" : where);
}

std::string hf_llama_config_json(const LlamaConfig& c, torch::ScalarType dtype) {
  const std::string dtype_name = hf_dtype_name(dtype);
  nlohmann::json j = {
      {"architectures", {c.model_type == "mistral" ? "MistralForCausalLM"
                         : c.model_type == "qwen2" ? "Qwen2ForCausalLM"
                         : c.model_type == "qwen3" ? "Qwen3ForCausalLM"
                                                   : "LlamaForCausalLM"}},
      {"model_type", c.model_type},
      {"vocab_size", c.vocab_size},
      {"hidden_size", c.hidden_size},
      {"intermediate_size", c.intermediate_size},
      {"num_hidden_layers", c.num_hidden_layers},
      {"num_attention_heads", c.num_attention_heads},
      {"num_key_value_heads", c.num_key_value_heads},
      {"head_dim", c.head_dim},
      {"hidden_act", "silu"},
      {"max_position_embeddings", c.max_position_embeddings},
      {"rms_norm_eps", c.rms_norm_eps},
      {"initializer_range", c.initializer_range},
      {"attention_bias", c.attention_bias},
      {"attention_dropout", 0.0},
      {"mlp_bias", c.mlp_bias},
      {"pretraining_tp", 1},
      {"tie_word_embeddings", c.tie_word_embeddings},
      {"use_cache", true},
      {"bos_token_id", c.bos_token_id >= 0 ? nlohmann::json(c.bos_token_id) : nlohmann::json(nullptr)},
      {"eos_token_id", c.eos_token_id},
      // Both forms: 4.x reads rope_theta/rope_scaling and ignores rope_parameters; 5.x reads either.
      {"rope_theta", c.rope_theta},
      {"rope_scaling", nullptr},
      {"rope_parameters", {{"rope_type", "default"}, {"rope_theta", c.rope_theta}}},
      {"dtype", dtype_name},
      {"torch_dtype", dtype_name},
  };
  if (c.model_type != "llama") {
    // MistralConfig and the Qwen configs have no MLP bias or tensor-parallel keys (Qwen2's biases are implied);
    // of them only Qwen3Config has attention_bias.
    for (const char* key : {"mlp_bias", "pretraining_tp"}) j.erase(key);
    if (c.model_type != "qwen3") j.erase("attention_bias");
  }
  if (c.model_type == "mistral") {
    // Its window is null when there is none.
    j["sliding_window"] = c.sliding_window > 0 ? nlohmann::json(c.sliding_window) : nlohmann::json(nullptr);
  }
  if (c.model_type == "qwen2" || c.model_type == "qwen3") j["use_sliding_window"] = false;
  if (c.rope_scaling.type != "default") {
    j["rope_scaling"] = rope_scaling_json(c.rope_scaling);
    j["rope_parameters"] = rope_scaling_json(c.rope_scaling);
    j["rope_parameters"].erase("type");
    j["rope_parameters"]["rope_theta"] = c.rope_theta;
  }
  j["pad_token_id"] = c.pad_token_id >= 0 ? nlohmann::json(c.pad_token_id) : nlohmann::json(nullptr);
  return j.dump(2) + "\n";
}

}  // namespace pathvlm::models
