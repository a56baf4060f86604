// Rotary position embedding (RoPE) in Hugging Face's rotate-half convention (LLaMA): the head dimension is
// split into halves (x1, x2) and each pair (x1[i], x2[i]) is rotated by position * theta^(-2i/head_dim):
//   rope(x) = x * cos + rotate_half(x) * sin,   rotate_half(x) = cat(-x2, x1)
// with cos/sin [.., T, head_dim] holding each frequency twice (cat(freqs, freqs)), as HF does.
//
// Linear scaling (HF rope_type "linear", Vicuna v1.5-16k / LongChat) divides every frequency by a factor, which
// stretches the positions the model was trained on over `factor` times as many.
//
//   models::RotaryEmbedding rope(head_dim, /*theta=*/10000.0);
//   auto cs = rope.cos_sin(position_ids, torch::kBFloat16);   // position_ids [T] or [B, T] int64
//   inputs.rope = &cs;                                         // Attention applies it to q and k
#pragma once
#include <torch/torch.h>

namespace pathvlm::models {

// cos and sin of the rotation angles, [T, head_dim] or [B, T, head_dim].
struct RopeCosSin {
  torch::Tensor cos, sin;
};

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta, double linear_factor = 1.0);
  // Angles computed in fp32 (as HF does, for precision at long positions), then cast to `dtype`.
  RopeCosSin cos_sin(const torch::Tensor& position_ids, torch::ScalarType dtype) const;
  int64_t head_dim() const { return head_dim_; }

 private:
  int64_t head_dim_;
  double theta_;
  double linear_factor_;
};

torch::Tensor rotate_half(const torch::Tensor& x);
// x [B, H, T, head_dim]; cos/sin [T, head_dim] or [B, T, head_dim].
torch::Tensor apply_rope(const torch::Tensor& x, const RopeCosSin& cs);

}  // namespace pathvlm::models
