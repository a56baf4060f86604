// The two-layer transformer MLP fc1 -> act -> fc2 (CLIP, ViT): act is "gelu" (exact, erf) or "quick_gelu"
// (x * sigmoid(1.702 x), OpenAI CLIP's approximation).
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/layers/linear.h"

namespace pathvlm::models {

class MlpImpl : public torch::nn::Module {
 public:
  MlpImpl(int64_t width, int64_t hidden, const std::string& act);
  torch::Tensor forward(const torch::Tensor& x);

  Linear fc1{nullptr}, fc2{nullptr};

 private:
  bool quick_gelu_;
};
TORCH_MODULE(Mlp);

}  // namespace pathvlm::models
