// LLaMA's gated MLP (SwiGLU): down_proj(silu(gate_proj(x)) * up_proj(x)), HF's parameter names, no biases
// unless asked for.
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"

namespace pathvlm::models {

class GatedMlpImpl : public torch::nn::Module {
 public:
  GatedMlpImpl(int64_t width, int64_t hidden, bool bias = false);
  torch::Tensor forward(const torch::Tensor& x);

  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(GatedMlp);

}  // namespace pathvlm::models
