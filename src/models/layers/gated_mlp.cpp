#include "models/layers/gated_mlp.h"

namespace pathvlm::models {

GatedMlpImpl::GatedMlpImpl(int64_t width, int64_t hidden, bool bias) {
  auto linear = [&](int64_t in, int64_t out) { return Linear(in, out, bias); };
  gate_proj = register_module("gate_proj", linear(width, hidden));
  up_proj = register_module("up_proj", linear(width, hidden));
  down_proj = register_module("down_proj", linear(hidden, width));
}

torch::Tensor GatedMlpImpl::forward(const torch::Tensor& x) {
  return down_proj(torch::silu(gate_proj(x)) * up_proj(x));
}

}  // namespace pathvlm::models
