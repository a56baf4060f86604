// Rotary position embedding (RoPE) in Hugging Face's rotate-half convention (LLaMA): the head dimension is
// split into halves (x1, x2) and each pair (x1[i], x2[i]) is rotated by position * theta^(-2i/head_dim):
//   rope(x) = x * cos + rotate_half(x) * sin,   rotate_half(x) = cat(-x2, x1)
// with cos/sin [.., T, head_dim] holding each frequency twice (cat(freqs, freqs)), as HF does.
//
// Scalings (HF rope_type), each a rewrite of the frequencies:
//   - "linear" (Vicuna v1.5-16k, LongChat) divides every frequency by `factor`, which stretches the positions the
//     model was trained on over `factor` times as many;
//   - "llama3" (LLaMA-3.1 / 3.2 / 3.3) divides the frequencies whose wavelength exceeds
//     original_max_position_embeddings / low_freq_factor by `factor`, keeps those whose wavelength is below
//     original_max_position_embeddings / high_freq_factor, and blends the two in between.
//
//   models::RotaryEmbedding rope(head_dim, /*theta=*/10000.0);
//   auto cs = rope.cos_sin(position_ids, torch::kBFloat16);   // position_ids [T] or [B, T] int64
//   inputs.rope = &cs;                                         // Attention applies it to q and k
#pragma once
#include <torch/torch.h>

#include <string>

namespace pathvlm::models {

// cos and sin of the rotation angles, [T, head_dim] or [B, T, head_dim].
struct RopeCosSin {
  torch::Tensor cos, sin;
};

// HF's rope_scaling / rope_parameters: "default" (none), "linear" or "llama3".
struct RopeScaling {
  std::string type = "default";
  double factor = 1.0;
  // llama3 only.
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;

  bool operator==(const RopeScaling& o) const {
    return type == o.type && factor == o.factor && low_freq_factor == o.low_freq_factor &&
           high_freq_factor == o.high_freq_factor &&
           original_max_position_embeddings == o.original_max_position_embeddings;
  }
  // Throws naming `where` when a value is out of range.
  void validate(const std::string& where) const;
};

class RotaryEmbedding {
 public:
  RotaryEmbedding(int64_t head_dim, double theta, RopeScaling scaling = {});
  // Angles computed in fp32 (as HF does, for precision at long positions), then cast to `dtype`.
  RopeCosSin cos_sin(const torch::Tensor& position_ids, torch::ScalarType dtype) const;
  int64_t head_dim() const { return head_dim_; }
  // The rotation frequencies [head_dim / 2], fp32 on `device`, scaled: theta^(-2i/head_dim) as transformers computes
  // them.
  torch::Tensor inv_freq(const torch::Device& device) const;

 private:
  int64_t head_dim_;
  double theta_;
  RopeScaling scaling_;
};

torch::Tensor rotate_half(const torch::Tensor& x);
// x [B, H, T, head_dim]; cos/sin [T, head_dim] or [B, T, head_dim].
torch::Tensor apply_rope(const torch::Tensor& x, const RopeCosSin& cs);

}  // namespace pathvlm::models
