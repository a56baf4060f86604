// A Q-Former / Perceiver resampler over a slide's tiles: `queries` learned tokens read the bag by cross-attention
// (Q x N scores, linear in the bag) and become the slide tokens.
//   tiles = fc(features)                                          [B, N, W]
//   q = queries                                                   [B, Q, W]
//   `layers` pre-norm blocks: q += drop(self_attn(norm1(q)))
//                             q += drop(cross_attn(norm2(q), norm_tiles(tiles), mask))
//                             q += drop(mlp(norm3(q)))
//   tokens = norm(q); pooled = mean over the Q tokens
// The tiles carry no positions: the tokens do not depend on the tiles' order.
//
//   models::slide::QFormer qformer(config);      // SlideEncoderConfig with kind qformer
//   auto tokens = qformer(features, mask);        // [B, N, D], [B, N] -> [B, Q, W]
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"
#include "models/layers/mlp.h"
#include "models/slide/config.h"
#include "models/slide/masked_attention.h"

namespace pathvlm::models::slide {

// One block: self-attention among the queries, cross-attention to the tiles (mask [B, N] bool), MLP.
class QFormerBlockImpl : public torch::nn::Module {
 public:
  QFormerBlockImpl(int64_t width, int64_t heads, int64_t chunk, double dropout);
  torch::Tensor forward(const torch::Tensor& queries, const torch::Tensor& tiles, const torch::Tensor& mask);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm_tiles{nullptr}, norm3{nullptr};
  MaskedAttention self_attn{nullptr}, cross_attn{nullptr};
  Mlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(QFormerBlock);

class QFormerImpl : public torch::nn::Module {
 public:
  explicit QFormerImpl(const SlideEncoderConfig& config);
  // features in the parameters' dtype with padding rows already zeroed (SlideEncoder does both).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& mask);

  Linear fc{nullptr};
  torch::Tensor queries;  // [Q, W]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(QFormer);

}  // namespace pathvlm::models::slide
