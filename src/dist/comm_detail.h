// Argument checks shared by the Comm backends, so every backend rejects the same bad calls the same way.
#pragma once
#include <torch/torch.h>

#include <chrono>

#include "core/error.h"
#include "dist/comm.h"

namespace pathvlm::dist::detail {

// How often a watchdog looks at the collectives in flight: deadlines are seconds, so a few milliseconds
// cost nothing in precision and keep the watchdog off the CPU the input pipeline needs.
inline constexpr std::chrono::milliseconds kWatchdogPoll{2};

inline const char* op_name(ReduceOp op) { return op == ReduceOp::Sum ? "sum" : op == ReduceOp::Avg ? "avg" : "max"; }

inline void check_tensor(const char* what, const torch::Tensor& t) {
  PATHVLM_CHECK(t.defined(), what, ": tensor is undefined");
  PATHVLM_CHECK(t.is_contiguous(), what, ": tensor of shape ", t.sizes(), " is not contiguous");
}

inline void check_reduce(const char* what, const torch::Tensor& t, ReduceOp op) {
  check_tensor(what, t);
  auto d = t.scalar_type();
  bool floating = d == torch::kFloat || d == torch::kDouble || d == torch::kHalf || d == torch::kBFloat16;
  bool integer = d == torch::kInt || d == torch::kLong || d == torch::kChar || d == torch::kByte;
  PATHVLM_CHECK(floating || integer, what, ": dtype ", d, " cannot be reduced");
  PATHVLM_CHECK(floating || op != ReduceOp::Avg, what, ": avg of an integer tensor (", d, ") is not supported");
}

inline void check_allgather(const torch::Tensor& in, const torch::Tensor& out, int world) {
  check_tensor("allgather input", in);
  check_tensor("allgather output", out);
  PATHVLM_CHECK(in.scalar_type() == out.scalar_type(), "allgather: input dtype ", in.scalar_type(),
                " differs from output dtype ", out.scalar_type());
  PATHVLM_CHECK(out.numel() == world * in.numel(), "allgather: output has ", out.numel(), " elements, expected ",
                world, " x ", in.numel());
}

inline void check_reduce_scatter(const torch::Tensor& in, const torch::Tensor& out, ReduceOp op, int world) {
  check_reduce("reduce_scatter input", in, op);
  check_tensor("reduce_scatter output", out);
  PATHVLM_CHECK(in.scalar_type() == out.scalar_type(), "reduce_scatter: input dtype ", in.scalar_type(),
                " differs from output dtype ", out.scalar_type());
  PATHVLM_CHECK(in.numel() == world * out.numel(), "reduce_scatter: input has ", in.numel(),
                " elements, expected ", world, " x ", out.numel());
}

// True when `in` is exactly this rank's chunk of `out` (in-place allgather).
inline bool is_rank_chunk(const torch::Tensor& in, const torch::Tensor& out, int rank) {
  return static_cast<const char*>(in.data_ptr()) == static_cast<const char*>(out.data_ptr()) + rank * in.nbytes();
}

// True when the byte ranges of the two tensors overlap.
inline bool overlaps(const torch::Tensor& a, const torch::Tensor& b) {
  auto a0 = reinterpret_cast<uintptr_t>(a.data_ptr()), b0 = reinterpret_cast<uintptr_t>(b.data_ptr());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

}  // namespace pathvlm::dist::detail
