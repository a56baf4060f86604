#include "models/llava/checkpoint.h"

#include <torch/torch.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"

namespace pathvlm::models {

namespace fs = std::filesystem;
using nlohmann::json;
namespace jf = json_fields;

namespace {

const char* const kOurProjector = "multi_modal_projector.";

json read_json(const std::string& file) { return jf::parse(read_text_file(file), file); }

// LLaVA's own config.json: mm_* keys, LLaVA's ModelArguments / DataArguments defaults where absent.
void read_original(const json& j, const std::string& file, LlavaCheckpoint& c) {
  c.projector = jf::string_or(j, "mm_projector_type", "linear", file);
  PATHVLM_CHECK(c.projector == "linear" || c.projector == "mlp2x_gelu", file, ": mm_projector_type '", c.projector,
                "' is not one pathvlm builds (linear, mlp2x_gelu)");
  c.vision_width = jf::integer_or(j, "mm_hidden_size", 0, file);
  PATHVLM_CHECK(c.vision_width > 0, file, ": mm_hidden_size (the vision tower's width) is missing or not positive");
  c.vision_feature_layer = static_cast<int>(jf::integer_or(j, "mm_vision_select_layer", -1, file));
  const auto select = jf::string_or(j, "mm_vision_select_feature", "patch", file);
  PATHVLM_CHECK(select == "patch" || select == "cls_patch", file, ": mm_vision_select_feature '", select,
                "' is not patch or cls_patch");
  c.vision_feature_select = select == "patch" ? "patch" : "full";
  c.image_aspect_ratio = jf::string_or(j, "image_aspect_ratio", "square", file);
  PATHVLM_CHECK(c.image_aspect_ratio == "square" || c.image_aspect_ratio == "pad", file, ": image_aspect_ratio '",
                c.image_aspect_ratio, "' (LLaVA-NeXT's tiling of large images) is not implemented: square or pad");
  const auto merge = jf::string_or(j, "mm_patch_merge_type", "flat", file);
  PATHVLM_CHECK(merge == "flat", file, ": mm_patch_merge_type '", merge,
                "' (LLaVA-NeXT's tiling of large images) is not implemented: flat");
  PATHVLM_CHECK(!jf::bool_or(j, "mm_use_im_start_end", false, file), file,
                ": mm_use_im_start_end is true: image start/end tokens around each image are not implemented");
  c.vision_tower = jf::string_or(j, "mm_vision_tower", "", file);
}

// A single FC written in transformers' two-layer form (models/llava/weights.h): its second layer must be the
// identity with a zero bias, or dropping it would change the model.
void check_identity_second_layer(const safetensors::Checkpoint& ckpt, const LlavaCheckpoint& c,
                                 const std::string& file) {
  const auto weight_name = c.layout.projector + "linear_2.weight", bias_name = c.layout.projector + "linear_2.bias";
  PATHVLM_CHECK(ckpt.contains(weight_name) && ckpt.contains(bias_name), file, ": projector_hidden_act is linear but '",
                c.dir, "' lacks ", weight_name, " or ", bias_name);
  const auto weight = ckpt.get(weight_name).to(torch::kFloat), bias = ckpt.get(bias_name).to(torch::kFloat);
  const bool identity = weight.dim() == 2 && weight.size(0) == weight.size(1) &&
                        torch::equal(weight, torch::eye(weight.size(0))) && torch::equal(bias, torch::zeros_like(bias));
  PATHVLM_CHECK(identity, file, ": projector_hidden_act is linear and ", weight_name,
                " is not the identity (with a zero bias): a projector of two linear layers is not one pathvlm builds "
                "(linear, mlp2x_gelu)");
}

// Whether the directory's image processor pads to a square (LlavaImageProcessor's do_pad, LLaVA's expand2square):
// preprocessor_config.json, or where transformers 5 saves it, processor_config.json's image_processor.
bool image_processor_pads(const std::string& dir) {
  const auto preprocessor = (fs::path(dir) / "preprocessor_config.json").string();
  if (fs::exists(preprocessor)) return jf::bool_or(read_json(preprocessor), "do_pad", false, preprocessor);
  const auto processor = (fs::path(dir) / "processor_config.json").string();
  if (!fs::exists(processor)) return false;
  const auto j = read_json(processor);
  return j.is_object() && j.contains("image_processor") &&
         jf::bool_or(j.at("image_processor"), "do_pad", false, processor + ": image_processor");
}

// transformers' LlavaConfig: its keys and defaults (anchors-export.md 1.4), the image processor's padding.
void read_transformers(const json& j, const std::string& file, LlavaCheckpoint& c) {
  const auto act = jf::string_or(j, "projector_hidden_act", "gelu", file);
  PATHVLM_CHECK(act == "gelu" || act == "linear", file, ": projector_hidden_act '", act,
                "' is not one pathvlm builds (gelu: mlp2x_gelu; linear, with an identity second layer: linear)");
  c.projector = act == "gelu" ? "mlp2x_gelu" : "linear";
  PATHVLM_CHECK(jf::bool_or(j, "multimodal_projector_bias", true, file), file,
                ": multimodal_projector_bias is false: a projector without biases is not one pathvlm builds");
  const json vision = j.value("vision_config", json::object());
  PATHVLM_CHECK(vision.is_object(), file, ": vision_config is not an object");
  c.vision_width = jf::integer_or(vision, "hidden_size", 768, file + ": vision_config");  // CLIPVisionConfig's
  PATHVLM_CHECK(!j.contains("vision_feature_layer") || !j.at("vision_feature_layer").is_array(), file,
                ": vision_feature_layer is a list: features concatenated from several layers are not implemented");
  c.vision_feature_layer = static_cast<int>(jf::integer_or(j, "vision_feature_layer", -2, file));
  const auto strategy = jf::string_or(j, "vision_feature_select_strategy", "default", file);
  PATHVLM_CHECK(strategy == "default" || strategy == "full", file, ": vision_feature_select_strategy '", strategy,
                "' is not default or full");
  c.vision_feature_select = strategy == "default" ? "patch" : "full";
  // transformers 5.x also names it image_token_id (attribute_map).
  c.image_token_id = jf::integer_or(j, "image_token_index", jf::integer_or(j, "image_token_id", 32000, file), file);
  c.image_aspect_ratio = image_processor_pads(c.dir) ? "pad" : "square";
  c.vision_tower = c.dir;

  const auto ckpt = safetensors::Checkpoint::open(c.dir);
  const auto layout = HfLlavaLayout::of([&](const std::string& name) { return ckpt.contains(name); });
  PATHVLM_CHECK(layout, "'", c.dir, "': a LlavaForConditionalGeneration config, but the weights hold no language "
                "model under transformers' names (language_model.model.* or model.language_model.*)");
  c.layout = *layout;
  if (c.projector == "linear") check_identity_second_layer(ckpt, c, file);
}

}  // namespace

std::string LlavaCheckpoint::description() const {
  return format == Format::transformers ? "a transformers LlavaForConditionalGeneration"
                                        : "one of LLaVA's original checkpoints, " + model_type;
}

LlavaCheckpoint::Keys LlavaCheckpoint::keys() const {
  if (format == Format::transformers)
    return {"vision_feature_layer", "vision_feature_select_strategy", "vision_config.hidden_size"};
  return {"mm_vision_select_layer", "mm_vision_select_feature", "mm_hidden_size"};
}

std::vector<std::string> LlavaCheckpoint::init_renames(bool with_projector) const {
  std::vector<std::string> map;
  if (format == Format::original) {
    if (with_projector && projector == "linear")
      map.push_back("model.mm_projector. -> multi_modal_projector.linear_1.");
    // LLaVA's mlp2x_gelu is nn.Sequential(Linear, GELU, Linear): its linear layers are entries 0 and 2.
    if (with_projector && projector == "mlp2x_gelu")
      map.insert(map.end(), {"model.mm_projector.0. -> multi_modal_projector.linear_1.",
                             "model.mm_projector.2. -> multi_modal_projector.linear_2."});
    // Before "model. -> ...", which the projector's names also start with.
    map.insert(map.end(), {"model. -> language_model.model.", "lm_head. -> language_model.lm_head."});
    return map;
  }
  if (with_projector && projector == "linear") {  // its identity linear_2 is skipped
    map.push_back(layout.projector + "linear_1. -> " + kOurProjector + "linear_1.");
  } else if (with_projector) {
    map.push_back(layout.projector + " -> " + kOurProjector);
  }
  map.push_back(layout.language_model + " -> language_model.model.");
  map.push_back(layout.lm_head + " -> language_model.lm_head.");
  return map;
}

std::vector<std::string> LlavaCheckpoint::init_skipped(bool with_projector) const {
  const std::string tower = format == Format::original ? "model.vision_tower." : layout.vision_tower;
  const std::string projector = format == Format::original ? "model.mm_projector." : layout.projector;
  if (!with_projector) return {tower, projector};
  if (format == Format::transformers && this->projector == "linear") return {tower, projector + "linear_2."};
  return {tower};
}

std::optional<LlavaCheckpoint> read_llava_checkpoint(const std::string& dir) {
  const auto file = (fs::path(dir) / "config.json").string();
  if (dir.empty() || !fs::exists(file)) return std::nullopt;
  const json j = read_json(file);
  if (!j.is_object()) return std::nullopt;
  LlavaCheckpoint c;
  c.dir = dir;
  c.model_type = jf::string_or(j, "model_type", "", file);
  const bool transformers = c.model_type == "llava" && j.contains("text_config");
  if (!transformers && c.model_type != "llava" && c.model_type != "llava_llama" && c.model_type != "llava_mistral")
    return std::nullopt;
  c.format = transformers ? LlavaCheckpoint::Format::transformers : LlavaCheckpoint::Format::original;
  if (transformers) {
    read_transformers(j, file, c);
  } else {
    read_original(j, file, c);
  }
  return c;
}

}  // namespace pathvlm::models
