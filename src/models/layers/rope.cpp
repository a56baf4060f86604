#include "models/layers/rope.h"

#include <cmath>

#include "core/error.h"

namespace pathvlm::models {

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, double linear_factor)
    : head_dim_(head_dim), theta_(theta), linear_factor_(linear_factor) {
  PATHVLM_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be positive and even, got ", head_dim);
  PATHVLM_CHECK(theta > 0, "rope: rope_theta must be positive, got ", theta);
  PATHVLM_CHECK(linear_factor > 0 && std::isfinite(linear_factor),
                "rope: the linear scaling factor must be positive, got ", linear_factor);
}

RopeCosSin RotaryEmbedding::cos_sin(const torch::Tensor& position_ids, torch::ScalarType dtype) const {
  PATHVLM_CHECK(position_ids.dim() == 1 || position_ids.dim() == 2, "rope: position ids must be [T] or [B, T], got ",
                position_ids.sizes());
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(position_ids.device());
  auto inv_freq = 1.0 / torch::pow(theta_, torch::arange(0, head_dim_, 2, f32) / static_cast<double>(head_dim_));
  // Divided after the powers, in fp32, as transformers does.
  if (linear_factor_ != 1.0) inv_freq = inv_freq / linear_factor_;
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq;  // [.., T, head_dim/2]
  auto angles = torch::cat({freqs, freqs}, -1);
  return {angles.cos().to(dtype), angles.sin().to(dtype)};
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const auto half = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, half), x.slice(-1, 0, half)}, -1);
}

torch::Tensor apply_rope(const torch::Tensor& x, const RopeCosSin& cs) {
  PATHVLM_CHECK(x.dim() == 4 && cs.cos.size(-1) == x.size(-1) && cs.cos.size(-2) == x.size(-2), "rope: tensor ",
                x.sizes(), " [B, H, T, head_dim] does not match cos/sin ", cs.cos.sizes());
  // [T, D] broadcasts over batch and heads; [B, T, D] gets a head axis.
  auto cos = cs.cos.dim() == 3 ? cs.cos.unsqueeze(1) : cs.cos;
  auto sin = cs.sin.dim() == 3 ? cs.sin.unsqueeze(1) : cs.sin;
  return x * cos + rotate_half(x) * sin;
}

}  // namespace pathvlm::models
