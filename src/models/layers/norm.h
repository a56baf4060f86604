// Normalisation layers of the transformer blocks: torch's LayerNorm (CLIP, the toy LM) and RMSNorm (LLaMA),
// and make_norm() to pick one by kind.
#pragma once
#include <torch/torch.h>

namespace pathvlm::models {

enum class NormKind { layer_norm, rms_norm };

// x / sqrt(mean(x^2) + eps) * weight, computed in fp32 and cast back to the input dtype before the weight
// multiply (as HF's LlamaRMSNorm); parameter `weight` initialised to ones.
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t width, double eps);
  torch::Tensor forward(const torch::Tensor& x);

  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

// A LayerNorm (weight and bias) or RMSNorm (weight) over the last dimension of size `width`.
torch::nn::AnyModule make_norm(NormKind kind, int64_t width, double eps);

}  // namespace pathvlm::models
