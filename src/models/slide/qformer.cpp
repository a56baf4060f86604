#include "models/slide/qformer.h"

namespace pathvlm::models::slide {
namespace {

torch::nn::LayerNorm layer_norm(int64_t width) { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})); }

}  // namespace

QFormerBlockImpl::QFormerBlockImpl(int64_t width, int64_t heads, int64_t chunk, double dropout) : dropout_(dropout) {
  norm1 = register_module("norm1", layer_norm(width));
  self_attn = register_module("self_attn", MaskedAttention(width, heads, chunk));
  norm2 = register_module("norm2", layer_norm(width));
  norm_tiles = register_module("norm_tiles", layer_norm(width));
  cross_attn = register_module("cross_attn", MaskedAttention(width, heads, chunk));
  norm3 = register_module("norm3", layer_norm(width));
  mlp = register_module("mlp", Mlp(width, 4 * width, "gelu"));
}

torch::Tensor QFormerBlockImpl::forward(const torch::Tensor& queries, const torch::Tensor& tiles,
                                        const torch::Tensor& mask) {
  auto branch = [&](const torch::Tensor& t) { return torch::dropout(t, dropout_, is_training()); };
  auto normed = norm1(queries);
  auto q = queries + branch(self_attn(normed, normed));
  q = q + branch(cross_attn(norm2(q), norm_tiles(tiles), mask));
  return q + branch(mlp(norm3(q)));
}

QFormerImpl::QFormerImpl(const SlideEncoderConfig& config) : dropout_(config.dropout) {
  fc = register_module("fc", Linear(config.input_dim, config.width));
  queries = register_parameter("queries", torch::randn({config.queries, config.width}) * 0.02);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.layers; ++i)
    blocks->push_back(QFormerBlock(config.width, config.heads, config.attention_chunk, config.dropout));
  norm = register_module("norm", layer_norm(config.width));
}

torch::Tensor QFormerImpl::forward(const torch::Tensor& features, const torch::Tensor& mask) {
  auto tiles = torch::dropout(fc(features), dropout_, is_training());
  auto q = queries.to(tiles.dtype()).unsqueeze(0).expand({features.size(0), queries.size(0), queries.size(1)});
  for (const auto& block : *blocks) q = block->as<QFormerBlock>()->forward(q, tiles, mask);
  return norm(q);
}

}  // namespace pathvlm::models::slide
