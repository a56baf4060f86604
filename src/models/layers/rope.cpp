#include "models/layers/rope.h"

#include <cmath>

#include "core/error.h"

namespace pathvlm::models {

void RopeScaling::validate(const std::string& where) const {
  PATHVLM_CHECK(type == "default" || type == "linear" || type == "llama3", where, ": rope type '", type,
                "' is not implemented (default, linear, llama3)");
  auto positive = [](double v) { return v > 0 && std::isfinite(v); };
  PATHVLM_CHECK(positive(factor), where, ": the rope scaling 'factor' must be positive, got ", factor);
  if (type == "llama3") {
    PATHVLM_CHECK(positive(low_freq_factor) && positive(high_freq_factor) && high_freq_factor > low_freq_factor,
                  where, ": llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor, got ", low_freq_factor,
                  " and ", high_freq_factor);
    PATHVLM_CHECK(original_max_position_embeddings > 0, where,
                  ": llama3 rope scaling needs a positive original_max_position_embeddings, got ",
                  original_max_position_embeddings);
  }
}

RotaryEmbedding::RotaryEmbedding(int64_t head_dim, double theta, RopeScaling scaling)
    : head_dim_(head_dim), theta_(theta), scaling_(std::move(scaling)) {
  PATHVLM_CHECK(head_dim > 0 && head_dim % 2 == 0, "rope: head_dim must be positive and even, got ", head_dim);
  PATHVLM_CHECK(theta > 0, "rope: rope_theta must be positive, got ", theta);
  scaling_.validate("rope");
}

torch::Tensor RotaryEmbedding::inv_freq(const torch::Device& device) const {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  auto inv_freq = 1.0 / torch::pow(theta_, torch::arange(0, head_dim_, 2, f32) / static_cast<double>(head_dim_));
  // Scaled after the powers, in fp32, as transformers does.
  const double factor = scaling_.factor;
  if (scaling_.type == "linear") return inv_freq / factor;
  if (scaling_.type != "llama3") return inv_freq;
  const auto context = static_cast<double>(scaling_.original_max_position_embeddings);
  const double low = scaling_.low_freq_factor, high = scaling_.high_freq_factor;
  const auto wavelen = 2 * M_PI / inv_freq;
  const auto long_waves = wavelen > context / low, short_waves = wavelen < context / high;
  const auto divided = torch::where(long_waves, inv_freq / factor, inv_freq);
  const auto smooth = (context / wavelen - low) / (high - low);
  const auto blended = (1 - smooth) * divided / factor + smooth * divided;
  return torch::where(long_waves.logical_or(short_waves), divided, blended);
}

RopeCosSin RotaryEmbedding::cos_sin(const torch::Tensor& position_ids, torch::ScalarType dtype) const {
  PATHVLM_CHECK(position_ids.dim() == 1 || position_ids.dim() == 2, "rope: position ids must be [T] or [B, T], got ",
                position_ids.sizes());
  auto freqs = position_ids.to(torch::kFloat32).unsqueeze(-1) * inv_freq(position_ids.device());  // [.., T, d/2]
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
