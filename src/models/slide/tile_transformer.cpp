#include "models/slide/tile_transformer.h"

#include "core/error.h"
#include "models/slide/grid_position.h"

namespace pathvlm::models::slide {

TileTransformerBlockImpl::TileTransformerBlockImpl(int64_t width, int64_t heads, int64_t chunk, double dropout)
    : dropout_(dropout) {
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  self_attn = register_module("self_attn", MaskedAttention(width, heads, chunk));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  mlp = register_module("mlp", Mlp(width, 4 * width, "gelu"));
}

torch::Tensor TileTransformerBlockImpl::forward(const torch::Tensor& x, const torch::Tensor& mask) {
  auto normed = norm1(x);
  auto h = x + torch::dropout(self_attn(normed, normed, mask), dropout_, is_training());
  return h + torch::dropout(mlp(norm2(h)), dropout_, is_training());
}

TileTransformerImpl::TileTransformerImpl(const SlideEncoderConfig& config) : config_(config) {
  PATHVLM_CHECK(config.width % 4 == 0, "slide encoder transformer: width ", config.width,
                " must be a multiple of 4 (2-D sin-cos positions)");
  fc = register_module("fc", Linear(config.input_dim, config.width));
  cls_token = register_parameter("cls_token", torch::randn({1, 1, config.width}) * 0.02);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.layers; ++i)
    blocks->push_back(TileTransformerBlock(config.width, config.heads, config.attention_chunk, config.dropout));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.width})));
}

torch::Tensor TileTransformerImpl::forward(const torch::Tensor& features, const torch::Tensor& coords,
                                           const torch::Tensor& mask) {
  const auto B = features.size(0);
  auto tiles = fc(features) + grid_position_embedding(coords, config_.grid_stride, config_.width).to(features.dtype());
  tiles = torch::dropout(tiles, config_.dropout, is_training());
  auto x = torch::cat({cls_token.to(tiles.dtype()).expand({B, 1, config_.width}), tiles}, 1);
  auto keys = torch::cat({torch::ones({B, 1}, mask.options()), mask}, 1);
  for (const auto& block : *blocks) x = block->as<TileTransformerBlock>()->forward(x, keys);
  return norm(x.select(1, 0));
}

}  // namespace pathvlm::models::slide
