#include "models/slide/masked_attention.h"

#include "core/error.h"
#include "models/slide/chunked_attention.h"

namespace pathvlm::models::slide {

MaskedAttentionImpl::MaskedAttentionImpl(int64_t width, int64_t heads, int64_t chunk) : heads_(heads), chunk_(chunk) {
  PATHVLM_CHECK(width > 0 && heads > 0 && width % heads == 0, "slide attention: heads ", heads,
                " must divide width ", width);
  q_proj = register_module("q_proj", Linear(width, width));
  k_proj = register_module("k_proj", Linear(width, width));
  v_proj = register_module("v_proj", Linear(width, width));
  out_proj = register_module("out_proj", Linear(width, width));
}

torch::Tensor MaskedAttentionImpl::forward(const torch::Tensor& queries, const torch::Tensor& keys_values,
                                           const torch::Tensor& key_mask) {
  const auto width = q_proj->in_features;
  PATHVLM_CHECK(queries.dim() == 3 && keys_values.dim() == 3 && queries.size(2) == width &&
                    keys_values.size(2) == width && queries.size(0) == keys_values.size(0),
                "slide attention: expected queries [B, L, ", width, "] and keys [B, S, ", width, "], got ",
                queries.sizes(), " and ", keys_values.sizes());
  const auto B = queries.size(0), head_dim = width / heads_;
  auto split = [&](const torch::Tensor& t) { return t.view({B, t.size(1), heads_, head_dim}).transpose(1, 2); };
  auto out = memory_linear_attention(split(q_proj(queries)), split(k_proj(keys_values)), split(v_proj(keys_values)),
                                     key_mask, chunk_);
  return out_proj(out.transpose(1, 2).reshape({B, queries.size(1), width}));
}

}  // namespace pathvlm::models::slide
