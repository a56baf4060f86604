// Differences between libtorch 1.13 (Debian, CPU) and 2.x (GPU machine) live here and nowhere else.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>

#define PATHVLM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace pathvlm::compat {

// softmax(q k^T / sqrt(d) + mask) v over [..., L, d] tensors; the fused kernel where libtorch has one.
inline torch::Tensor scaled_dot_product_attention(const torch::Tensor& q, const torch::Tensor& k,
                                                  const torch::Tensor& v, const torch::Tensor& mask = {},
                                                  bool is_causal = false) {
#if PATHVLM_TORCH_AT_LEAST(2, 0)
  return at::scaled_dot_product_attention(q, k, v, mask.defined() ? c10::optional<at::Tensor>(mask) : c10::nullopt,
                                          0.0, is_causal);
#else
  auto scores = torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(static_cast<double>(q.size(-1)));
  if (is_causal) {
    auto L = q.size(-2), S = k.size(-2);
    auto causal = torch::ones({L, S}, q.options().dtype(torch::kBool)).tril();
    scores = scores.masked_fill(causal.logical_not(), -std::numeric_limits<float>::infinity());
  }
  if (mask.defined()) {
    scores = mask.scalar_type() == torch::kBool
                 ? scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity())
                 : scores + mask;
  }
  return torch::matmul(torch::softmax(scores, -1), v);
#endif
}

}  // namespace pathvlm::compat
