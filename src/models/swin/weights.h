// CTransPath in (models/swin/model.h): the state dict of its published checkpoint (TransPath's ctranspath.pth, CHIEF's
// CHIEF_CTransPath.pth: a pickle whose "model" entry scripts/convert_to_safetensors.py takes) as safetensors, in timm
// 0.5's Swin names with the ConvStem (patch_embed.proj.{0,1,3,4,6}, patch_embed.norm, layers.N.blocks.M.attn.*,
// layers.N.downsample.*, norm). The sizes come from the tensors; the input is 224 px, ImageNet's pixel statistics,
// as TRIDENT's `ctranspath` runs it. The stored attention masks are dropped and computed again (TRIDENT does the
// same); a stored relative_position_index must be the one a Swin window has.
#pragma once
#include <string>

#include "models/swin/model.h"

namespace pathvlm::models {

// Whether `path` (a .safetensors file or a directory holding model.safetensors) holds CTransPath's Swin.
bool is_ctranspath(const std::string& path);

// Errors name the file and the tensor.
Swin load_ctranspath(const std::string& path);

}  // namespace pathvlm::models
