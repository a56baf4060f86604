// LoRA adapters as Hugging Face PEFT saves them (PeftModel.from_pretrained loads the directory as is):
//   <dir>/adapter_model.safetensors   <prefix><module path>.lora_A.weight [r, in], ....lora_B.weight [out, r]
//                                     in the adapters' dtype; prefix "base_model.model." by default, so an
//                                     adapted LlamaForCausalLM reads base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight
//   <dir>/adapter_config.json         peft_type LORA, task_type CAUSAL_LM, r, lora_alpha, lora_dropout, use_rslora,
//                                     target_modules (the adapted layers' last names), bias "none", ... sorted keys
//
//   models::save_peft_adapter(*lm, "runs/x/export/adapter", "meta-llama/Llama-2-7b-hf");
//   auto fresh = models::LlamaForCausalLM(config);  ... base weights loaded ...
//   models::load_peft_adapter(*fresh, "runs/x/export/adapter");   // adds the adapters, then loads them
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/layers/linear.h"

namespace pathvlm::models {

inline const std::string kPeftKeyPrefix = "base_model.model.";

// Writes the adapters of `module` (all of one LoraOptions: PEFT's rank_pattern / alpha_pattern are not written)
// into `dir`, created when missing. base_model_name_or_path may be empty (written as null). Throws when the
// module has no adapter or its adapters differ in their options.
void save_peft_adapter(torch::nn::Module& module, const std::string& dir, const std::string& base_model_name_or_path,
                       const std::string& prefix = kPeftKeyPrefix);

// The options adapter_config.json in `dir` gives (throws naming the file on settings this layer cannot
// reproduce: DoRA, fan_in_fan_out, LoRA biases, per-layer ranks, modules_to_save).
LoraOptions read_peft_config(const std::string& dir);

// Adds an adapter with the config's options to each Linear layer named in `dir`'s adapter_model.safetensors
// and loads its tensors (converted to the layer's dtype); returns the layers' paths. Errors name the file and
// the tensor: a key outside `prefix`, no Linear layer at its path, a layer with an adapter already, a
// missing A or B, a shape that is not [r, in] / [out, r].
std::vector<std::string> load_peft_adapter(torch::nn::Module& module, const std::string& dir,
                                           const std::string& prefix = kPeftKeyPrefix);

}  // namespace pathvlm::models
