#include "models/slide/chunked_attention.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/compat.h"
#include "core/error.h"

namespace pathvlm::models::slide {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// For each key chunk: does it hold a masked key? Chunks of real keys skip the masking pass.
std::vector<bool> chunks_with_masked_keys(const torch::Tensor& key_mask, int64_t S, int64_t chunk) {
  std::vector<bool> masked;
  // Read once in host memory (on CUDA + libtorch 2.x memory_linear_attention takes the fused kernel instead).
  const auto keep = key_mask.defined() ? key_mask.to(torch::kCPU, torch::kBool).contiguous() : torch::Tensor();
  for (int64_t k0 = 0; k0 < S; k0 += chunk) {
    bool any_masked = false;
    for (int64_t b = 0; keep.defined() && b < keep.size(0) && !any_masked; ++b) {
      const bool* row = keep.data_ptr<bool>() + b * S;
      any_masked = !std::all_of(row + k0, row + std::min(S, k0 + chunk), [](bool k) { return k; });
    }
    masked.push_back(any_masked);
  }
  return masked;
}

// Scores of one (query chunk, key chunk) pair with the masked keys at -inf: [B, H, lq, lk].
torch::Tensor chunk_scores(const torch::Tensor& q_scaled, const torch::Tensor& k, const torch::Tensor& key_mask,
                           bool has_masked_keys, int64_t k0, int64_t lk) {
  auto scores = torch::matmul(q_scaled, k.narrow(2, k0, lk).transpose(-2, -1));
  if (has_masked_keys) {
    auto keep = key_mask.narrow(1, k0, lk).view({key_mask.size(0), 1, 1, lk});
    scores.masked_fill_(keep.logical_not(), kNegInf);
  }
  return scores;
}

// -inf (a row with no key yet) -> 0, so that exp(x - m) of masked scores is exp(-inf) = 0 instead of NaN.
torch::Tensor finite_or_zero(const torch::Tensor& m) { return m.masked_fill(torch::isinf(m), 0.0); }

// The mask travels outside the autograd inputs: it has no gradient, and Function::apply refuses undefined tensors.
struct KeyMask {
  torch::Tensor keep;
};

class ChunkedAttentionFunction : public torch::autograd::Function<ChunkedAttentionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& q, const torch::Tensor& k,
                               const torch::Tensor& v, KeyMask mask, int64_t chunk) {
    const auto& key_mask = mask.keep;
    const auto compute = q.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
    const auto scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
    auto q32 = q.to(compute).contiguous(), k32 = k.to(compute).contiguous(), v32 = v.to(compute).contiguous();
    const auto L = q.size(2), S = k.size(2);
    const auto masked_chunks = chunks_with_masked_keys(key_mask, S, chunk);
    auto out = torch::empty(q32.sizes(), q32.options());
    auto lse = torch::empty({q.size(0), q.size(1), L, 1}, q32.options());
    for (int64_t q0 = 0; q0 < L; q0 += chunk) {
      const auto lq = std::min(chunk, L - q0);
      auto q_scaled = q32.narrow(2, q0, lq) * scale;
      auto row_max = torch::full({q.size(0), q.size(1), lq, 1}, kNegInf, q32.options());
      auto row_sum = torch::zeros_like(row_max);
      auto acc = torch::zeros({q.size(0), q.size(1), lq, q.size(3)}, q32.options());
      for (int64_t k0 = 0; k0 < S; k0 += chunk) {
        const auto lk = std::min(chunk, S - k0);
        auto scores = chunk_scores(q_scaled, k32, key_mask, masked_chunks[k0 / chunk], k0, lk);
        auto new_max = torch::maximum(row_max, std::get<0>(scores.max(-1, /*keepdim=*/true)));
        auto shift = finite_or_zero(new_max);
        auto p = (scores - shift).exp_();
        auto rescale = (row_max - shift).exp_();  // exp(-inf) = 0 while the row had no key
        row_sum = row_sum * rescale + p.sum(-1, /*keepdim=*/true);
        acc = acc * rescale + torch::matmul(p, v32.narrow(2, k0, lk));
        row_max = new_max;
      }
      // Rows without any key: acc = 0 and row_sum = 0 -> output 0; their lse is +inf, so that the backward's
      // exp(score - lse) is 0 for every score (-inf or finite) without a NaN.
      out.narrow(2, q0, lq).copy_(acc / row_sum.clamp_min(std::numeric_limits<float>::min()));
      lse.narrow(2, q0, lq).copy_(
          (finite_or_zero(row_max) + row_sum.log()).masked_fill(row_sum == 0, std::numeric_limits<double>::infinity()));
    }
    ctx->save_for_backward({q, k, v, out, lse});
    ctx->saved_data["chunk"] = chunk;
    if (key_mask.defined()) ctx->saved_data["key_mask"] = key_mask;
    return out.to(q.scalar_type());
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto& out = saved[3];
    const auto& lse = saved[4];
    const auto key_mask =
        ctx->saved_data.count("key_mask") ? ctx->saved_data["key_mask"].toTensor() : torch::Tensor();
    const auto chunk = ctx->saved_data["chunk"].toInt();
    const auto compute = out.scalar_type();
    const auto scale = 1.0 / std::sqrt(static_cast<double>(saved[0].size(-1)));
    auto q = saved[0].to(compute).contiguous(), k = saved[1].to(compute).contiguous(),
         v = saved[2].to(compute).contiguous();
    auto grad_out = grads[0].to(compute);
    const auto L = q.size(2), S = k.size(2);
    const auto masked_chunks = chunks_with_masked_keys(key_mask, S, chunk);
    // D_i = sum_j P_ij dP_ij = dO_i . O_i: the softmax backward's row term without the probabilities.
    auto row_dot = (grad_out * out).sum(-1, /*keepdim=*/true);
    auto grad_q = torch::zeros_like(q), grad_k = torch::zeros_like(k), grad_v = torch::zeros_like(v);
    for (int64_t q0 = 0; q0 < L; q0 += chunk) {
      const auto lq = std::min(chunk, L - q0);
      auto q_scaled = q.narrow(2, q0, lq) * scale;
      auto d_out = grad_out.narrow(2, q0, lq);
      auto lse_chunk = lse.narrow(2, q0, lq);
      auto dot_chunk = row_dot.narrow(2, q0, lq);
      auto grad_q_chunk = grad_q.narrow(2, q0, lq);
      for (int64_t k0 = 0; k0 < S; k0 += chunk) {
        const auto lk = std::min(chunk, S - k0);
        auto p = (chunk_scores(q_scaled, k, key_mask, masked_chunks[k0 / chunk], k0, lk) - lse_chunk).exp_();
        grad_v.narrow(2, k0, lk).add_(torch::matmul(p.transpose(-2, -1), d_out));
        auto d_scores = p * (torch::matmul(d_out, v.narrow(2, k0, lk).transpose(-2, -1)) - dot_chunk);
        grad_q_chunk.add_(torch::matmul(d_scores, k.narrow(2, k0, lk)), scale);
        grad_k.narrow(2, k0, lk).add_(torch::matmul(d_scores.transpose(-2, -1), q_scaled));
      }
    }
    return {grad_q.to(saved[0].scalar_type()), grad_k.to(saved[1].scalar_type()), grad_v.to(saved[2].scalar_type()),
            torch::Tensor(), torch::Tensor()};
  }
};

void check_shapes(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                  const torch::Tensor& key_mask, int64_t chunk) {
  PATHVLM_CHECK(q.dim() == 4 && k.dim() == 4 && v.sizes() == k.sizes() && q.size(0) == k.size(0) &&
                    q.size(1) == k.size(1) && q.size(3) == k.size(3),
                "slide attention: expected q [B, H, L, d] and k, v [B, H, S, d], got ", q.sizes(), ", ", k.sizes(),
                ", ", v.sizes());
  PATHVLM_CHECK(!key_mask.defined() || (key_mask.scalar_type() == torch::kBool && key_mask.dim() == 2 &&
                                        key_mask.size(0) == k.size(0) && key_mask.size(1) == k.size(2)),
                "slide attention: key mask must be bool [B, S] = [", k.size(0), ", ", k.size(2), "], got ",
                key_mask.defined() ? key_mask.sizes() : torch::IntArrayRef{});
  PATHVLM_CHECK(chunk > 0, "slide attention: chunk ", chunk, " must be positive");
}

}  // namespace

torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& key_mask, int64_t chunk) {
  check_shapes(q, k, v, key_mask, chunk);
  return ChunkedAttentionFunction::apply(q, k, v, KeyMask{key_mask}, chunk);
}

torch::Tensor memory_linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& key_mask, int64_t chunk) {
#if PATHVLM_TORCH_AT_LEAST(2, 0)
  if (q.is_cuda()) {
    check_shapes(q, k, v, key_mask, chunk);
    auto mask = key_mask.defined() ? key_mask.view({k.size(0), 1, 1, k.size(2)}) : torch::Tensor();
    return compat::scaled_dot_product_attention(q, k, v, mask);
  }
#endif
  return chunked_attention(q, k, v, key_mask, chunk);
}

}  // namespace pathvlm::models::slide
