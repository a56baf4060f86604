// The projector from CLIP image features to LLaMA input embeddings, with Hugging Face LlavaMultiModalProjector's
// parameter names: linear_1.{weight,bias} [text_hidden, vision_hidden], and for mlp2x_gelu also
// linear_2.{weight,bias} [text_hidden, text_hidden] with the exact (erf) GELU between them (LLaVA-1.5's
// Sequential(Linear, GELU, Linear)). `linear` is PathAsst's single FC, linear_1 alone. Initialised as
// torch::nn::Linear, which is what LLaVA's builder uses.
//
//   models::LlavaProjector projector("mlp2x_gelu", 1024, 5120);
//   auto rows = projector(features);   // [N, T, 1024] -> [N, T, 5120]
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/layers/linear.h"

namespace pathvlm::models {

class LlavaProjectorImpl : public torch::nn::Module {
 public:
  // `type`: "linear" or "mlp2x_gelu"; anything else is an error naming it.
  LlavaProjectorImpl(const std::string& type, int64_t vision_hidden, int64_t text_hidden);
  torch::Tensor forward(const torch::Tensor& features);

  const std::string& type() const { return type_; }
  int64_t vision_hidden() const { return linear_1->in_features; }
  int64_t text_hidden() const { return linear_1->out_features; }

  Linear linear_1{nullptr};
  Linear linear_2{nullptr};  // null for "linear"

 private:
  std::string type_;
};
TORCH_MODULE(LlavaProjector);

}  // namespace pathvlm::models
