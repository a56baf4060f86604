#include "models/conch/model.h"

#include "core/error.h"

namespace pathvlm::models {

namespace {

// torch.nn.LayerNorm's default eps, which CoCa's poolers and ln_contrast keep (the timm trunk uses 1e-6).
constexpr double kTorchLayerNormEps = 1e-5;

torch::nn::LayerNorm layer_norm(int64_t width) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(kTorchLayerNormEps));
}

}  // namespace

AttentionalPoolerImpl::AttentionalPoolerImpl(const AttentionalPoolerOptions& o) : options_(o) {
  PATHVLM_CHECK(o.width > 0 && o.heads > 0 && o.width % o.heads == 0, "attentional pooler: width ", o.width,
                " does not split into ", o.heads, " heads");
  query = register_parameter("query", torch::zeros({o.queries, o.width}));
  ln_q = register_module("ln_q", layer_norm(o.width));
  ln_k = register_module("ln_k", layer_norm(o.context_width));
  q_proj = register_module("q_proj", Linear(o.width, o.width, o.bias));
  k_proj = register_module("k_proj", Linear(o.context_width, o.width, o.bias));
  v_proj = register_module("v_proj", Linear(o.context_width, o.width, o.bias));
  out_proj = register_module("out_proj", Linear(o.width, o.width, o.bias));
}

torch::Tensor AttentionalPoolerImpl::forward(const torch::Tensor& context) {
  const int64_t batch = context.size(0), tokens = context.size(1), heads = options_.heads;
  const int64_t head_width = options_.width / heads;
  const auto kv = ln_k(context);
  const auto split = [&](const torch::Tensor& x, int64_t rows) {  // [N, rows, width] -> [N, heads, rows, head_width]
    return x.view({x.size(0), rows, heads, head_width}).transpose(1, 2);
  };
  const auto q = split(q_proj(ln_q(query.to(kv.scalar_type()))).unsqueeze(0), options_.queries);
  const auto k = split(k_proj(kv), tokens), v = split(v_proj(kv), tokens);
  const auto weights = torch::softmax(torch::matmul(q, k.transpose(-2, -1)) / std::sqrt(double(head_width)), -1);
  const auto out = torch::matmul(weights, v).transpose(1, 2).reshape({batch, options_.queries, options_.width});
  return out_proj(out);
}

ConchVisionImpl::ConchVisionImpl(const VitConfig& trunk_config, const AttentionalPoolerOptions& pooler,
                                 int64_t projection) {
  PATHVLM_CHECK(pooler.context_width == trunk_config.width, "CONCH: the pooler reads ", pooler.context_width,
                "-wide tokens but the trunk is ", trunk_config.width, " wide");
  trunk = register_module("trunk", Vit(trunk_config));
  attn_pool_contrast = register_module("attn_pool_contrast", AttentionalPooler(pooler));
  ln_contrast = register_module("ln_contrast", layer_norm(pooler.width));
  if (projection > 0) proj_contrast = register_parameter("proj_contrast", torch::empty({pooler.width, projection}));
}

void ConchVisionImpl::set_projected(bool projected, const std::string& where) {
  PATHVLM_CHECK(!projected || proj_contrast.defined(), where, " has no contrastive projection (CONCH v1 has one; "
                "v1.5 is an image tower alone)");
  projected_ = projected;
}

torch::Tensor ConchVisionImpl::pool(const torch::Tensor& tokens) {
  const auto pooled = ln_contrast(attn_pool_contrast(tokens).select(1, 0));
  return projected_ ? torch::matmul(pooled, proj_contrast) : pooled;
}

}  // namespace pathvlm::models
