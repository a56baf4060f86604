// Tiny LLaMA models with weights far from their initialisation (so every parameter moves the logits), shared by
// the LLaMA tests.
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/llama/model.h"
#include "test_util.h"

namespace pathvlm::testing {

// GQA (4 query heads over 2 key/value heads), untied head, a non-default rope_theta.
inline models::LlamaConfig tiny_llama_config() {
  models::LlamaConfig c;
  c.vocab_size = 61;
  c.hidden_size = 32;
  c.intermediate_size = 40;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.head_dim = 8;
  c.max_position_embeddings = 64;
  c.rms_norm_eps = 1e-5;
  c.rope_theta = 500.0;
  return c;
}

// Matrices N(0, 0.3), biases N(0, 0.1), norm weights 1 + N(0, 0.2), from `seed`.
inline models::LlamaForCausalLM random_llama(const models::LlamaConfig& config, uint64_t seed,
                                             models::LlamaOptions options = {}) {
  torch::manual_seed(seed);
  models::LlamaForCausalLM model(config, options);
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    auto& p = item.value();
    const auto& name = item.key();
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0) {
      p.normal_(0.0, 0.1);
    } else if (p.dim() == 1) {
      p.normal_(1.0, 0.2);
    } else {
      p.normal_(0.0, 0.3);
    }
  }
  return model;
}


}  // namespace pathvlm::testing
