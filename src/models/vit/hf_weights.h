// transformers ViT weights in: a Hugging Face hub directory as transformers writes ViTModel (Phikon), Dinov2Model
// (Phikon-v2, Midnight) or Dinov2WithRegistersModel: config.json, model.safetensors (or its shards) and
// preprocessor_config.json, which gives the pixel mean/std and the input size. The tensors of a task model (vit.,
// dinov2. prefixed) load too; its classifier, ViTModel's pooler and the mask token are dropped, any other tensor
// is an error naming it. Pickled checkpoints are refused with the conversion command.
//
// The features are the class token after the final norm (Phikon's model card; DINOv2's pooler_output). DINOv2's
// position embeddings are resampled to the input size once here, as transformers does on every forward pass
// (bicubic, float32; antialiased for the model with registers): Midnight ships DINOv2-giant's 518 px embeddings
// and takes 224 px tiles.
//
//   auto vit = models::load_hf_vit("phikon-v2/");
//
// Out: the ViT as a LlavaForConditionalGeneration's vision tower holds it (a Dinov2Model), for the LLaVA export; a
// LLaVA directory with such a tower loads back here too (its vision_config, the tensors under vision_tower. or
// model.vision_tower.).
//
//   write_text_file("out/config.json", hf_dinov2_config_json(vit->config(), torch::kBFloat16));
//   auto tensors = hf_dinov2_tensors(*vit, "vision_tower.", torch::kBFloat16);
#pragma once
#include <torch/torch.h>

#include <string>

#include "io/safetensors.h"
#include "models/vit/model.h"

namespace pathvlm::models {

// The model_type of the config.json in directory `path`; "" when there is none (no directory, no config.json, no
// model_type string in it). An unreadable or malformed config.json is an error naming it.
std::string hub_model_type(const std::string& path);

// Whether `path` is a directory whose config.json has model_type vit, dinov2 or dinov2_with_registers, or is a
// transformers LLaVA whose vision_config has one of those.
bool is_hf_vit(const std::string& path);

Vit load_hf_vit(const std::string& path);

// config.json of the Dinov2Model (Dinov2WithRegistersModel with register tokens) that hf_dinov2_tensors fills, at
// the ViT's input size; `dtype` named as its torch_dtype. A ViT that Dinov2Model cannot express (no class token; a
// SwiGLU width DINOv2's rounding cannot give) is an error.
std::string hf_dinov2_config_json(const VitConfig& config, torch::ScalarType dtype);

// The ViT's tensors in that Dinov2Model's names, each after `prefix`, in `dtype`: the same numbers through
// transformers' forward. LayerScale stays folded (lambda1 = 1); the position embeddings are the input size's (none
// resampled on load); a class token without a position gets a zero one, register tokens with positions take them in.
safetensors::NamedTensors hf_dinov2_tensors(VitImpl& vit, const std::string& prefix, torch::ScalarType dtype);

}  // namespace pathvlm::models
