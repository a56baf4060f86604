// The slide encoder: a padded batch of bags of tile features -> slide tokens and one vector per slide, by the
// aggregator the config names (abmil.h, tile_transformer.h, qformer.h).
//
//   models::slide::SlideEncoder encoder(config);
//   auto out = encoder(features, coords, mask);   // features [B, N, D] fp32 or bf16, coords [B, N, 2] int64 level-0
//                                                 // top-left x, y; mask [B, N] bool (true = a real tile)
//   out.tokens;   // [B, Q, W]: abmil and transformer Q = 1, qformer Q = queries
//   out.pooled;   // [B, W]: abmil the pooled vector, transformer the CLS token, qformer the mean of the tokens
//
// Padding rows (mask false) may hold any finite values: they are zeroed before the encoder sees them, so they
// never change a slide's output and receive zero gradient. Every slide needs at least one real tile. Features
// are cast to the parameters' dtype; outputs come in the parameters' dtype.
#pragma once
#include <torch/torch.h>

#include "models/slide/abmil.h"
#include "models/slide/config.h"
#include "models/slide/qformer.h"
#include "models/slide/tile_transformer.h"

namespace pathvlm::models::slide {

struct SlideOutput {
  torch::Tensor tokens;  // [B, Q, W]
  torch::Tensor pooled;  // [B, W], the slide embedding before any projection
};

class SlideEncoderImpl : public torch::nn::Module {
 public:
  explicit SlideEncoderImpl(const SlideEncoderConfig& c);
  SlideOutput forward(const torch::Tensor& features, const torch::Tensor& coords, const torch::Tensor& mask);
  int64_t num_tokens() const;  // Q
  int64_t width() const;       // W
  const SlideEncoderConfig& config() const { return config_; }

  // Exactly one is built, registered under its kind's name ("abmil", "transformer", "qformer").
  Abmil abmil{nullptr};
  TileTransformer transformer{nullptr};
  QFormer qformer{nullptr};

 private:
  SlideEncoderConfig config_;
};
TORCH_MODULE(SlideEncoder);

}  // namespace pathvlm::models::slide
