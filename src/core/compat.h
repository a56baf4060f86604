// Differences between libtorch 1.13 (Debian, CPU) and 2.x (GPU machine) live here and nowhere else.
#pragma once
#include <torch/torch.h>
#include <torch/version.h>
#include <ATen/autocast_mode.h>

#define PATHVLM_TORCH_AT_LEAST(major, minor) \
  (TORCH_VERSION_MAJOR > (major) || (TORCH_VERSION_MAJOR == (major) && TORCH_VERSION_MINOR >= (minor)))

namespace pathvlm::compat {

// A handle on an autograd graph node: std::shared_ptr in libtorch 1.13, c10::intrusive_ptr in 2.14.
using AutogradNodePtr = decltype(torch::autograd::impl::grad_accumulator(std::declval<const at::Tensor&>()));

// Makes an autograd node the way libtorch's own custom functions do: c10::make_intrusive where nodes are intrusive,
// else a shared_ptr freed through deleteNode (which frees long graphs without deep recursion; found by
// argument-dependent lookup because libtorch 2.14 no longer declares it).
template <typename NodeT>
auto make_autograd_node() {
  if constexpr (std::is_same_v<AutogradNodePtr, c10::intrusive_ptr<torch::autograd::Node>>) {
    return c10::make_intrusive<NodeT>();
  } else {
    return std::shared_ptr<NodeT>(new NodeT(), [](NodeT* node) { deleteNode(node); });
  }
}

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

// Autocast of the current thread for one device type (thread-local state; the API changed in 2.4, and
// libtorch 1.13 has separate CPU and CUDA ("gpu") functions). Only kCPU and kCUDA are supported.
inline bool autocast_enabled(at::DeviceType device) {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  return at::autocast::is_autocast_enabled(device);
#else
  return device == at::kCPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
#endif
}
inline at::ScalarType autocast_dtype(at::DeviceType device) {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  return at::autocast::get_autocast_dtype(device);
#else
  return device == at::kCPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
#endif
}
inline void set_autocast(at::DeviceType device, bool enabled, at::ScalarType dtype) {
#if PATHVLM_TORCH_AT_LEAST(2, 4)
  at::autocast::set_autocast_enabled(device, enabled);
  at::autocast::set_autocast_dtype(device, dtype);
#else
  if (device == at::kCPU) {
    at::autocast::set_cpu_enabled(enabled);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(enabled);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
#endif
}

// Sets autocast for `device` and restores the previous state, clearing the cast cache on exit as
// torch.autocast does.
class AutocastGuard {
 public:
  AutocastGuard(at::DeviceType device, bool enabled, at::ScalarType dtype)
      : device_(check_device(device)), prev_enabled_(autocast_enabled(device)), prev_dtype_(autocast_dtype(device)) {
    set_autocast(device_, enabled, dtype);
  }
  ~AutocastGuard() {
    set_autocast(device_, prev_enabled_, prev_dtype_);
    if (!prev_enabled_) at::autocast::clear_cache();
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  static at::DeviceType check_device(at::DeviceType device) {
    TORCH_CHECK(device == at::kCPU || device == at::kCUDA, "pathvlm autocast supports cpu and cuda, not ", device);
    return device;
  }
  at::DeviceType device_;
  bool prev_enabled_;
  at::ScalarType prev_dtype_;
};

// CUDA autocast (no effect on CPU tensors).
class CudaAutocastGuard : public AutocastGuard {
 public:
  CudaAutocastGuard(bool enabled, at::ScalarType dtype) : AutocastGuard(at::kCUDA, enabled, dtype) {}
};

// The fused AdamW kernel (torch.optim.AdamW(fused=True)): libtorch 2.x on CUDA. Decoupled decay, bias correction
// from `steps` (float32 0-dim tensors on the device, read by the kernel, so the step count may live there), and a
// device-side skip: nothing is updated when `found_inf` (float32, 0-dim) is 1.
inline constexpr bool kHaveFusedAdamW = PATHVLM_TORCH_AT_LEAST(2, 0);
inline void fused_adamw_(at::TensorList params, at::TensorList grads, at::TensorList exp_avgs,
                         at::TensorList exp_avg_sqs, at::TensorList steps, double lr, double beta1, double beta2,
                         double weight_decay, double eps, const at::Tensor& found_inf) {
#if PATHVLM_TORCH_AT_LEAST(2, 0)
  at::_fused_adamw_(params, grads, exp_avgs, exp_avg_sqs, /*max_exp_avg_sqs=*/{}, steps, lr, beta1, beta2,
                    weight_decay, eps, /*amsgrad=*/false, /*maximize=*/false, /*grad_scale=*/c10::nullopt, found_inf);
#else
  TORCH_CHECK(false, "fused AdamW needs libtorch 2.x");
#endif
}

// TF32 for CUDA matmuls and convolutions.
inline void allow_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

}  // namespace pathvlm::compat
