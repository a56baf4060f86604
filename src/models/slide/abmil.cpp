#include "models/slide/abmil.h"

#include <limits>

#include "core/error.h"

namespace pathvlm::models::slide {

AbmilImpl::AbmilImpl(int64_t input_dim, int64_t width, int64_t heads, double dropout) : dropout_(dropout) {
  PATHVLM_CHECK(input_dim > 0 && width > 0 && heads > 0, "abmil: input_dim ", input_dim, ", width ", width,
                " and heads ", heads, " must be positive");
  fc = register_module("fc", Linear(input_dim, width));
  attention_a = register_module("attention_a", Linear(width, width));
  attention_b = register_module("attention_b", Linear(width, width));
  attention_c = register_module("attention_c", Linear(width, heads));
  combine = register_module("combine", Linear(heads * width, width));
}

torch::Tensor AbmilImpl::attention(const torch::Tensor& hidden, const torch::Tensor& mask) {
  auto scores = attention_c(torch::tanh(attention_a(hidden)) * torch::sigmoid(attention_b(hidden)));
  // Softmax in fp32 so that long bags of bf16 scores keep their small weights.
  scores = scores.to(torch::kFloat).masked_fill(mask.logical_not().unsqueeze(-1),
                                                -std::numeric_limits<float>::infinity());
  return torch::softmax(scores, /*dim=*/1).to(hidden.scalar_type());
}

torch::Tensor AbmilImpl::forward(const torch::Tensor& features, const torch::Tensor& mask) {
  auto hidden = torch::dropout(torch::relu(fc(features)), dropout_, is_training());  // [B, N, W]
  auto weights = attention(hidden, mask);                                            // [B, N, heads]
  auto per_head = torch::matmul(weights.transpose(1, 2), hidden);                    // [B, heads, W]
  return combine(per_head.flatten(1));
}

}  // namespace pathvlm::models::slide
