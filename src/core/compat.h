// Differences between libtorch 1.13 (Debian, CPU) and 2.x (GPU machine) live here and nowhere else.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

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

// CUDA autocast of the current thread (thread-local state; the API changed in 2.4). The guard sets it and
// restores the previous state, clearing the cast cache on exit as torch.autocast does.
inline bool cuda_autocast_enabled() {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return at::autocast::is_enabled();
#endif
}
inline at::ScalarType cuda_autocast_dtype() {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(at::kCUDA);
#else
  return at::autocast::get_autocast_gpu_dtype();
#endif
}
inline void set_cuda_autocast(bool enabled, at::ScalarType dtype) {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(at::kCUDA, enabled);
  at::autocast::set_autocast_dtype(at::kCUDA, dtype);
#else
  at::autocast::set_enabled(enabled);
  at::autocast::set_autocast_gpu_dtype(dtype);
#endif
}
class CudaAutocastGuard {
 public:
  CudaAutocastGuard(bool enabled, at::ScalarType dtype)
      : prev_enabled_(cuda_autocast_enabled()), prev_dtype_(cuda_autocast_dtype()) {
    set_cuda_autocast(enabled, dtype);
  }
  ~CudaAutocastGuard() {
    set_cuda_autocast(prev_enabled_, prev_dtype_);
    if (!prev_enabled_) at::autocast::clear_cache();
  }
  CudaAutocastGuard(const CudaAutocastGuard&) = delete;
  CudaAutocastGuard& operator=(const CudaAutocastGuard&) = delete;

 private:
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

// TF32 for CUDA matmuls and convolutions.
inline void allow_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

}  // namespace pathvlm::compat
