#include "models/slide/encoder.h"

#include <algorithm>

#include "core/error.h"

namespace pathvlm::models::slide {
namespace {
// Checked in host memory only: on a GPU the check would wait for the device every forward, and the slide bag
// loaders already refuse slides without tiles ("0 tiles").
bool every_row_has_a_true(const torch::Tensor& mask) {
  if (!mask.is_cpu()) return true;
  const auto m = mask.contiguous();
  const bool* p = m.data_ptr<bool>();
  for (int64_t r = 0; r < m.size(0); ++r)
    if (std::none_of(p + r * m.size(1), p + (r + 1) * m.size(1), [](bool keep) { return keep; })) return false;
  return true;
}
}  // namespace


SlideEncoderImpl::SlideEncoderImpl(const SlideEncoderConfig& c) : config_(c) {
  c.validate("slide encoder");
  if (c.kind == "abmil") {
    abmil = register_module("abmil", Abmil(c.input_dim, c.width, c.heads, c.dropout));
  } else if (c.kind == "transformer") {
    transformer = register_module("transformer", TileTransformer(c));
  } else {  // qformer: validate() admits no other kind
    qformer = register_module("qformer", QFormer(c));
  }
}

int64_t SlideEncoderImpl::num_tokens() const { return config_.kind == "qformer" ? config_.queries : 1; }

int64_t SlideEncoderImpl::width() const { return config_.width; }

SlideOutput SlideEncoderImpl::forward(const torch::Tensor& features, const torch::Tensor& coords,
                                      const torch::Tensor& mask) {
  PATHVLM_CHECK(features.dim() == 3 && features.size(2) == config_.input_dim, "slide encoder: expected features [B, N, ",
                config_.input_dim, "], got ", features.sizes());
  const auto B = features.size(0), N = features.size(1);
  PATHVLM_CHECK(mask.defined() && mask.scalar_type() == torch::kBool && mask.dim() == 2 && mask.size(0) == B &&
                    mask.size(1) == N,
                "slide encoder: expected a bool mask [", B, ", ", N, "], got ",
                mask.defined() ? mask.sizes() : torch::IntArrayRef{});
  PATHVLM_CHECK(coords.defined() && coords.dim() == 3 && coords.size(0) == B && coords.size(1) == N &&
                    coords.size(2) == 2,
                "slide encoder: expected coords [", B, ", ", N, ", 2], got ",
                coords.defined() ? coords.sizes() : torch::IntArrayRef{});
  PATHVLM_CHECK(N > 0 && every_row_has_a_true(mask), "slide encoder: every slide needs at least one real tile");
  const auto dtype = parameters().front().scalar_type();
  auto padding = mask.logical_not().unsqueeze(-1);
  auto tiles = features.to(dtype).masked_fill(padding, 0.0);

  SlideOutput out;
  if (abmil) {
    out.pooled = abmil(tiles, mask);
    out.tokens = out.pooled.unsqueeze(1);
  } else if (transformer) {
    out.pooled = transformer(tiles, coords.masked_fill(padding, 0), mask);
    out.tokens = out.pooled.unsqueeze(1);
  } else {
    out.tokens = qformer(tiles, mask);
    out.pooled = out.tokens.mean(1);
  }
  return out;
}

}  // namespace pathvlm::models::slide
