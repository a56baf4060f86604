// A CLIP preset with fixed random weights: the same frozen encoder in every run and process, for demos and tests
// that need an image tower but no pretrained weights (`instruct.vision_tower: tiny`, `pathvlm embed --encoder tiny`).
//
//   if (is_clip_preset(name)) model = fixed_random_clip(config_with_preset(name));
#pragma once
#include <string>

#include "models/clip/model.h"

namespace pathvlm::models {

// tiny, ViT-B-32, ViT-B-16, ViT-L-14.
bool is_clip_preset(const std::string& name);

// A CLIP of `config` (resolved here) drawn from its own seed; the caller's CPU random stream is left as it was, so
// what is built after it draws the same numbers as without it.
ClipModel fixed_random_clip(const ClipModelConfig& config);

}  // namespace pathvlm::models
