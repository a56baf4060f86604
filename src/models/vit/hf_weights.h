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
#pragma once
#include <string>

#include "models/vit/model.h"

namespace pathvlm::models {

// The model_type of the config.json in directory `path`; "" when there is none (no directory, no config.json, no
// model_type string in it). An unreadable or malformed config.json is an error naming it.
std::string hub_model_type(const std::string& path);

// Whether `path` is a directory whose config.json has model_type vit, dinov2 or dinov2_with_registers.
bool is_hf_vit(const std::string& path);

Vit load_hf_vit(const std::string& path);

}  // namespace pathvlm::models
