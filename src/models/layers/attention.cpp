#include "models/layers/attention.h"

#include <limits>

#include "core/compat.h"
#include "core/error.h"

namespace pathvlm::models {

AttentionImpl::AttentionImpl(const AttentionOptions& opts) : options(opts) {
  if (options.kv_heads() == 0) options.kv_heads(options.heads());
  PATHVLM_CHECK(options.width() > 0 && options.heads() > 0, "attention: width ", options.width(), " and heads ",
                options.heads(), " must be positive");
  if (options.head_dim() == 0) {
    PATHVLM_CHECK(options.width() % options.heads() == 0, "attention: heads ", options.heads(),
                  " do not divide width ", options.width());
    options.head_dim(options.width() / options.heads());
  }
  PATHVLM_CHECK(options.kv_heads() > 0 && options.heads() % options.kv_heads() == 0, "attention: kv_heads ",
                options.kv_heads(), " must divide heads ", options.heads());
  const auto q_width = options.heads() * options.head_dim(), kv_width = options.kv_heads() * options.head_dim();
  // Construction order q, k, v, out is the order of their random default initialisation.
  q_proj = register_module(options.q_name(), Linear(options.width(), q_width, options.bias()));
  k_proj = register_module(options.k_name(), Linear(options.width(), kv_width, options.bias()));
  v_proj = register_module(options.v_name(), Linear(options.width(), kv_width, options.bias()));
  out_proj =
      register_module(options.out_name(), Linear(q_width, options.width(), options.bias() && options.out_bias()));
  if (options.qk_norm_eps() > 0) {
    q_norm = register_module("q_norm", RmsNorm(options.head_dim(), options.qk_norm_eps()));
    k_norm = register_module("k_norm", RmsNorm(options.head_dim(), options.qk_norm_eps()));
  }
}

torch::Tensor repeat_kv_heads(const torch::Tensor& kv, int64_t repeats) {
  if (repeats == 1) return kv;
  const auto B = kv.size(0), H = kv.size(1), S = kv.size(2), D = kv.size(3);
  return kv.unsqueeze(2).expand({B, H, repeats, S, D}).reshape({B, H * repeats, S, D});
}

std::array<torch::Tensor, 3> AttentionImpl::project_qkv(const torch::Tensor& x) {
  // The concatenation copies the three weights on every call; that pays when x has at least as many rows as the
  // projections have inputs (a training batch), not for a few rows at a time (decoding a token per sequence).
  const bool fuse = options.fused_qkv() && x.numel() / options.width() >= options.width();
  if (!fuse) return {q_proj(x), k_proj(x), v_proj(x)};
  const auto weight = torch::cat({q_proj->weight, k_proj->weight, v_proj->weight});
  const auto bias = options.bias() ? torch::cat({q_proj->bias, k_proj->bias, v_proj->bias}) : torch::Tensor();
  const auto qkv = torch::nn::functional::linear(x, weight, bias);
  std::array<torch::Tensor, 3> out;
  int64_t offset = 0;
  for (int i = 0; i < 3; ++i) {
    auto& proj = i == 0 ? q_proj : i == 1 ? k_proj : v_proj;
    out[i] = qkv.narrow(-1, offset, proj->out_features);
    if (proj->has_lora()) out[i] = out[i] + proj->lora_update(x);
    offset += proj->out_features;
  }
  return out;
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const AttentionInputs& inputs) {
  PATHVLM_CHECK(x.dim() == 3 && x.size(2) == options.width(), "attention: expected input [B, L, ", options.width(),
                "], got ", x.sizes());
  const auto B = x.size(0), L = x.size(1), D = options.head_dim();
  auto heads = [&](const torch::Tensor& t, int64_t n) { return t.view({B, L, n, D}).transpose(1, 2); };
  auto [q_rows, k_rows, v_rows] = project_qkv(x);
  auto q = heads(q_rows, options.heads());
  auto k = heads(k_rows, options.kv_heads());
  auto v = heads(v_rows, options.kv_heads());
  if (q_norm) {
    q = q_norm(q);
    k = k_norm(k);
  }
  if (inputs.rope != nullptr) {
    q = apply_rope(q, *inputs.rope);
    k = apply_rope(k, *inputs.rope);
  }
  if (inputs.cache != nullptr) std::tie(k, v) = inputs.cache->append(k, v);
  const auto repeats = options.heads() / options.kv_heads();
  k = repeat_kv_heads(k, repeats);
  v = repeat_kv_heads(v, repeats);

  const bool causal = inputs.causal.value_or(options.causal());
  const auto S = k.size(2);
  auto mask = inputs.mask;
  // The kernel's own causal flag aligns the mask to the top left, right only when queries and keys are the same
  // tokens; with cached keys before the queries, or an extra mask to combine, causality becomes a mask.
  const bool causal_as_mask = causal && (S != L || mask.defined());
  if (causal_as_mask) {
    auto keep = torch::ones({L, S}, x.options().dtype(torch::kBool)).tril(S - L);
    if (!mask.defined()) {
      mask = keep;
    } else if (mask.scalar_type() == torch::kBool) {
      mask = mask.logical_and(keep);
    } else {
      mask = mask + torch::zeros({L, S}, mask.options())
                        .masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
    }
  }
  auto out = compat::scaled_dot_product_attention(q, k, v, mask, causal && !causal_as_mask);
  return out_proj(out.transpose(1, 2).reshape({B, L, options.heads() * D}));
}

}  // namespace pathvlm::models
