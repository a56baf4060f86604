// The JSON files of a Hugging Face CLIP directory: config.json in and out, preprocessor_config.json out.
#include "models/clip/hf_config.h"

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/pil_filters.h"
#include "core/pixel_statistics.h"
#include "models/hf_dtype.h"

namespace pathvlm::models {

using nlohmann::json;

ClipModelConfig parse_hf_clip_config(const std::string& json_text, const std::string& where) {
  const json j = json_fields::parse(json_text, where);
  PATHVLM_CHECK(j.is_object(), where, ": expected a JSON object");
  if (j.contains("model_type")) {
    PATHVLM_CHECK(j["model_type"] == "clip", where, ": model_type is ", j["model_type"].dump(),
                  ", expected \"clip\" (a CLIPModel config)");
  }
  // transformers merges the legacy *_config_dict over *_config; absent keys take CLIPConfig's defaults.
  auto tower = [&](const char* name) {
    json t = j.contains(name) && j[name].is_object() ? j[name] : json::object();
    std::string legacy = std::string(name) + "_dict";
    if (j.contains(legacy) && j[legacy].is_object()) t.update(j[legacy]);
    return t;
  };
  json text = tower("text_config"), vision = tower("vision_config");
  auto get_int = [&](const json& t, const char* tname, const char* key, int fallback) {
    if (!t.contains(key) || t[key].is_null()) return fallback;
    PATHVLM_CHECK(t[key].is_number_integer(), where, ": ", tname, ".", key, " must be an integer, got ", t[key].dump());
    // 0 would mean "the preset's value" to resolve_clip_config, silently replacing what the file says.
    PATHVLM_CHECK(t[key].is_number_unsigned() && t[key].get<uint64_t>() > 0 &&
                      t[key].get<uint64_t>() <= uint64_t(std::numeric_limits<int>::max()),
                  where, ": ", tname, ".", key, " must be a size in [1, ", std::numeric_limits<int>::max(), "], got ",
                  t[key].dump());
    return t[key].get<int>();
  };
  ClipModelConfig c;
  c.embed_dim = get_int(j, "config", "projection_dim", 512);
  c.vocab_size = get_int(text, "text_config", "vocab_size", 49408);
  c.text_width = get_int(text, "text_config", "hidden_size", 512);
  c.text_mlp_dim = get_int(text, "text_config", "intermediate_size", 2048);
  c.text_layers = get_int(text, "text_config", "num_hidden_layers", 12);
  c.text_heads = get_int(text, "text_config", "num_attention_heads", 8);
  c.context_length = get_int(text, "text_config", "max_position_embeddings", 77);
  c.vision_width = get_int(vision, "vision_config", "hidden_size", 768);
  c.vision_mlp_dim = get_int(vision, "vision_config", "intermediate_size", 3072);
  c.vision_layers = get_int(vision, "vision_config", "num_hidden_layers", 12);
  c.vision_heads = get_int(vision, "vision_config", "num_attention_heads", 12);
  c.image_size = get_int(vision, "vision_config", "image_size", 224);
  c.patch_size = get_int(vision, "vision_config", "patch_size", 32);
  PATHVLM_CHECK(get_int(vision, "vision_config", "num_channels", 3) == 3, where,
                ": vision_config.num_channels must be 3");
  const std::string text_where = where + ": text_config", vision_where = where + ": vision_config";
  const std::string text_act = json_fields::string_or(text, "hidden_act", "quick_gelu", text_where),
                    vision_act = json_fields::string_or(vision, "hidden_act", "quick_gelu", vision_where);
  PATHVLM_CHECK(text_act == vision_act, where, ": text hidden_act '", text_act, "' differs from vision hidden_act '",
                vision_act, "' (pathvlm uses one activation for both towers)");
  PATHVLM_CHECK(text_act == "quick_gelu" || text_act == "gelu", where, ": hidden_act '", text_act,
                "' is not supported (quick_gelu or gelu)");
  c.hidden_act = text_act;
  const double text_eps = json_fields::number_or(text, "layer_norm_eps", 1e-5, text_where),
               vision_eps = json_fields::number_or(vision, "layer_norm_eps", 1e-5, vision_where);
  PATHVLM_CHECK(text_eps == vision_eps, where, ": text and vision layer_norm_eps differ (", text_eps, " vs ",
                vision_eps, ")");
  c.layer_norm_eps = text_eps;
  try {
    return resolve_clip_config(c);
  } catch (const Error& e) {
    throw Error(str(where, ": ", e.what()));
  }
}

std::string hf_clip_config_json(const ClipModelConfig& config, torch::ScalarType dtype) {
  const auto c = resolve_clip_config(config);
  json text = {{"model_type", "clip_text_model"},
               {"vocab_size", c.vocab_size},
               {"hidden_size", c.text_width},
               {"intermediate_size", c.text_mlp_dim},
               {"projection_dim", c.embed_dim},
               {"num_hidden_layers", c.text_layers},
               {"num_attention_heads", c.text_heads},
               {"max_position_embeddings", c.context_length},
               {"hidden_act", c.hidden_act},
               {"layer_norm_eps", c.layer_norm_eps},
               {"attention_dropout", 0.0},
               {"initializer_range", 0.02},
               {"initializer_factor", 1.0},
               {"pad_token_id", 1},
               {"bos_token_id", 49406},
               {"eos_token_id", 49407}};
  json vision = {{"model_type", "clip_vision_model"},
                 {"hidden_size", c.vision_width},
                 {"intermediate_size", c.vision_mlp_dim},
                 {"projection_dim", c.embed_dim},
                 {"num_hidden_layers", c.vision_layers},
                 {"num_attention_heads", c.vision_heads},
                 {"num_channels", 3},
                 {"image_size", c.image_size},
                 {"patch_size", c.patch_size},
                 {"hidden_act", c.hidden_act},
                 {"layer_norm_eps", c.layer_norm_eps},
                 {"attention_dropout", 0.0},
                 {"initializer_range", 0.02},
                 {"initializer_factor", 1.0}};
  json root = {{"architectures", {"CLIPModel"}},
               {"model_type", "clip"},
               {"projection_dim", c.embed_dim},
               {"logit_scale_init_value", 2.6592},
               {"initializer_factor", 1.0},
               {"torch_dtype", hf_dtype_name(dtype)},
               {"text_config", text},
               {"vision_config", vision}};
  return root.dump(2) + "\n";
}

std::string hf_image_processor_json(int image_size, const std::array<double, 3>& mean, const std::array<double, 3>& std,
                                    const std::string& interpolation) {
  PATHVLM_CHECK(interpolation == "bicubic" || interpolation == "bilinear", "preprocessor_config.json: interpolation '",
                interpolation, "' has no PIL filter number here");
  const json preprocessor = {{"image_processor_type", "CLIPImageProcessor"},
                             {"do_resize", true},
                             {"size", {{"shortest_edge", image_size}}},
                             {"resample", pil_filter_number(interpolation)},
                             {"do_center_crop", true},
                             {"crop_size", {{"height", image_size}, {"width", image_size}}},
                             {"do_rescale", true},
                             {"rescale_factor", 1.0 / 255.0},
                             {"do_normalize", true},
                             {"image_mean", mean},
                             {"image_std", std},
                             {"do_convert_rgb", true}};
  return preprocessor.dump(2) + "\n";
}

std::string hf_clip_preprocessor_config_json(const ClipModelConfig& config) {
  return hf_image_processor_json(resolve_clip_config(config).image_size, kOpenAiMean, kOpenAiStd);
}

}  // namespace pathvlm::models
