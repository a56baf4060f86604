// TITAN's slide encoder (models/titan/model.h) from MahmoodLab/TITAN's hub directory: model.safetensors (the
// `vision_encoder.*` tensors; the text tower, the caption pooler `attn_pool.*` and the contrastive projection `proj`
// are left out) and, when present, config.json's `vision_config` (num_heads, attn_pooler_heads, pos_encode_type,
// which must be "alibi"; TITAN's defaults 12, 8 and "alibi" otherwise). The other sizes come from the tensors.
#pragma once
#include <string>

#include "models/titan/model.h"

namespace pathvlm::models {

// Whether `path` (a .safetensors file or a directory holding model.safetensors) holds TITAN's slide encoder.
bool is_titan(const std::string& path);

// Errors name the file and the tensor or key.
TitanSlideEncoder load_titan(const std::string& path);

}  // namespace pathvlm::models
