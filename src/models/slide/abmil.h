// Gated attention-based MIL pooling (Ilse et al. 2018; CLAM's attention net), multi-head and masked:
//   h = dropout(relu(fc(x)))                                       [B, N, W]
//   score = attention_c(tanh(attention_a(h)) * sigmoid(attention_b(h)))   [B, N, heads]
//   a = softmax over the real tiles of each head (padding at -inf) pooled_k = sum_n a_nk h_n
//   pooled = combine(concat_k pooled_k)                            [B, W]
// Each head weighs the whole bag on its own; `combine` mixes the heads' vectors back to W.
//
//   models::slide::Abmil abmil(/*input_dim=*/512, /*width=*/256, /*heads=*/4, /*dropout=*/0.25);
//   auto pooled = abmil(features, mask);    // features [B, N, 512], mask [B, N] bool -> [B, 256]
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"

namespace pathvlm::models::slide {

class AbmilImpl : public torch::nn::Module {
 public:
  AbmilImpl(int64_t input_dim, int64_t width, int64_t heads, double dropout);
  // features in the parameters' dtype with padding rows already zeroed (SlideEncoder does both).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& mask);
  // The attention weights [B, N, heads] (0 on padding; each head sums to 1 over a slide's tiles).
  torch::Tensor attention(const torch::Tensor& hidden, const torch::Tensor& mask);

  Linear fc{nullptr}, attention_a{nullptr}, attention_b{nullptr}, attention_c{nullptr}, combine{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(Abmil);

}  // namespace pathvlm::models::slide
