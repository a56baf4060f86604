// LoRA adapters on a model's Linear layers (models::Linear) chosen by module path, and merging them back.
//
// A target matches a module whose path is the target or ends with "." + target, * and ? being globs: the
// suffix name "q_proj" (PEFT's list form) covers every layer's q_proj; "model.layers.*.self_attn.q_proj" is a
// glob over paths; "blocks.0.*" covers every Linear below blocks.0.
//
//   auto adapted = models::apply_lora(*lm, {"q_proj", "v_proj"}, models::LoraOptions(8, 16).dropout(0.05));
//   for (auto& p : lm->named_parameters()) p.value().requires_grad_(models::is_lora_parameter(p.key()));
//   ... train ...
//   models::merge_lora(*lm);   // plain Linear layers again, with the adapters folded into their weights
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/layers/linear.h"

namespace pathvlm::models {

// Whether `target` selects the module at `path` (the rule above).
bool matches_module(const std::string& target, const std::string& path);

// Adds an adapter to every Linear layer of `module` matched by a target; returns their paths in module order.
// Throws when a target matches no Linear layer (naming it and a few of the layers there are) or a matched layer
// has an adapter already.
std::vector<std::string> apply_lora(torch::nn::Module& module, const std::vector<std::string>& targets,
                                    const LoraOptions& options);

using NamedLinears = std::vector<std::pair<std::string, std::shared_ptr<LinearImpl>>>;
// The Linear layers below `module` by path, in module order; those that carry an adapter.
NamedLinears linear_layers(torch::nn::Module& module);
NamedLinears lora_layers(torch::nn::Module& module);

// Merges every adapter into its layer's weight (LinearImpl::merge_lora); returns how many.
int64_t merge_lora(torch::nn::Module& module);

// Parameter-name globs of the adapters' tensors: "*.lora_A.weight", "*.lora_B.weight".
const std::vector<std::string>& lora_parameter_patterns();
bool is_lora_parameter(const std::string& name);

}  // namespace pathvlm::models
