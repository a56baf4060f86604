// A transformer over a slide's tiles (TransMIL / Prov-GigaPath family, with exact memory-linear attention in
// place of Nystrom or dilated attention):
//   x = fc(features) + grid_position_embedding(coords)          [B, N, W]
//   x = [cls; x]                                                [B, 1 + N, W]
//   `layers` pre-norm blocks: x += drop(attn(norm1(x), mask)); x += drop(mlp(norm2(x)))
//   slide vector = norm(x)[:, 0]                                [B, W]
// Padding tiles are masked as keys (the CLS key is always real), so a slide's vector ignores them; it depends on
// the tiles' coordinates, not on their order.
//
//   models::slide::TileTransformer transformer(config);   // SlideEncoderConfig with kind transformer
//   auto cls = transformer(features, coords, mask);         // [B, N, D], [B, N, 2], [B, N] -> [B, W]
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"
#include "models/layers/mlp.h"
#include "models/slide/config.h"
#include "models/slide/masked_attention.h"

namespace pathvlm::models::slide {

// One pre-norm block of the tile transformer; mask [B, L] bool marks the real tokens (keys).
class TileTransformerBlockImpl : public torch::nn::Module {
 public:
  TileTransformerBlockImpl(int64_t width, int64_t heads, int64_t chunk, double dropout);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& mask);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  MaskedAttention self_attn{nullptr};
  Mlp mlp{nullptr};

 private:
  double dropout_;
};
TORCH_MODULE(TileTransformerBlock);

class TileTransformerImpl : public torch::nn::Module {
 public:
  explicit TileTransformerImpl(const SlideEncoderConfig& config);
  // features in the parameters' dtype with padding rows already zeroed (SlideEncoder does both).
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& coords, const torch::Tensor& mask);

  Linear fc{nullptr};
  torch::Tensor cls_token;  // [1, 1, W]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  SlideEncoderConfig config_;
};
TORCH_MODULE(TileTransformer);

}  // namespace pathvlm::models::slide
