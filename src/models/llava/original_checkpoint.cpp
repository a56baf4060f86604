#include "models/llava/original_checkpoint.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"

namespace pathvlm::models {

namespace fs = std::filesystem;

std::vector<std::string> OriginalLlavaCheckpoint::projector_renames() const {
  if (projector == "linear") return {"model.mm_projector. -> multi_modal_projector.linear_1."};
  // LLaVA's mlp2x_gelu is nn.Sequential(Linear, GELU, Linear): its linear layers are entries 0 and 2.
  return {"model.mm_projector.0. -> multi_modal_projector.linear_1.",
          "model.mm_projector.2. -> multi_modal_projector.linear_2."};
}

std::optional<OriginalLlavaCheckpoint> read_original_llava_checkpoint(const std::string& dir) {
  const auto file = (fs::path(dir) / "config.json").string();
  if (dir.empty() || !fs::exists(file)) return std::nullopt;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_text_file(file));
  } catch (const nlohmann::json::exception& e) {
    throw Error(str(file, ": not valid JSON (", e.what(), ")"));
  }
  if (!j.is_object()) return std::nullopt;
  namespace jf = json_fields;
  OriginalLlavaCheckpoint c;
  c.dir = dir;
  c.model_type = jf::string_or(j, "model_type", "", file);
  // transformers' own Llava (model_type llava with a text_config) is a different layout.
  const bool original = c.model_type == "llava_llama" || c.model_type == "llava_mistral" ||
                        (c.model_type == "llava" && !j.contains("text_config"));
  if (!original) return std::nullopt;

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
  return c;
}

}  // namespace pathvlm::models
