// The JSON files of a Hugging Face CLIP directory, as transformers' CLIPModel and CLIPImageProcessor read them.
//
//   auto config = parse_hf_clip_config(read_text_file("clip-vit-base-patch16/config.json"), "clip-vit-base-patch16");
//   write_text_file("out/config.json", hf_clip_config_json(config));
#pragma once
#include <array>
#include <torch/types.h>

#include <string>

#include "models/clip/config.h"

namespace pathvlm::models {

// HF CLIPConfig JSON (architectures ["CLIPModel"], model_type "clip", text_config, vision_config). Parsing takes
// CLIPConfig's defaults for absent keys and the legacy *_config_dict over *_config, as transformers does; errors
// name `where` and the key.
std::string hf_clip_config_json(const ClipModelConfig& config, torch::ScalarType dtype = torch::kFloat32);
ClipModelConfig parse_hf_clip_config(const std::string& json_text, const std::string& where);

// preprocessor_config.json of CLIPImageProcessor with a shortest-edge resize to `image_size` (`interpolation`:
// bicubic or bilinear), center crop, rescale and the given mean/std: what open_clip's eval transform and LLaVA's image
// pipeline do (for any tower).
std::string hf_image_processor_json(int image_size, const std::array<double, 3>& mean, const std::array<double, 3>& std,
                                    const std::string& interpolation = "bicubic");
// The CLIP image tower's: hf_image_processor_json at its image_size with the OpenAI mean/std.
std::string hf_clip_preprocessor_config_json(const ClipModelConfig& config);

}  // namespace pathvlm::models
