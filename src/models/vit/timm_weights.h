// timm ViT weights in: a Hugging Face hub directory as timm writes it (config.json with `architecture`,
// `model_args` and `pretrained_cfg`; model.safetensors), or a .safetensors state dict in timm's names
// (patch_embed.proj.weight, blocks.N.attn.qkv.weight, ...). Pickled checkpoints (UNI's pytorch_model.bin) are
// refused with the conversion command (scripts/convert_to_safetensors.py).
//
// The config comes from the tensors and config.json (models/vit/config.h). A tensor that is not part of such a ViT
// (q/k norms, a CLIP-style pre-norm, attention pooling) is an error naming it; the classifier head is dropped.
#pragma once
#include <functional>
#include <string>

#include "models/vit/loading.h"
#include "models/vit/model.h"

namespace pathvlm::models {

// Whether `path` holds a timm ViT: a directory whose config.json names a timm `architecture`, or (a directory
// with) safetensors in timm's names.
bool is_timm_vit(const std::string& path);

Vit load_timm_vit(const std::string& path);

// Sets `vit` from the timm ViT tensors named `prefix` + timm's names in `t` (CONCH keeps its trunk under
// "visual.trunk."), LayerScale folded; `positions`, where given, turns the checkpoint's pos_embed into the one `vit`
// takes (a resampling).
void set_timm_vit(CheckpointTensors& t, const std::string& prefix, Vit& vit,
                  const std::function<torch::Tensor(const torch::Tensor&)>& positions = nullptr);

}  // namespace pathvlm::models
