#include "models/layers/norm.h"

#include "core/error.h"

namespace pathvlm::models {

RmsNormImpl::RmsNormImpl(int64_t width, double eps) : eps_(eps) {
  PATHVLM_CHECK(width > 0 && eps > 0, "rms norm: width ", width, " and eps ", eps, " must be positive");
  weight = register_parameter("weight", torch::ones({width}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  PATHVLM_CHECK(x.size(-1) == weight.size(0), "rms norm: last dimension of ", x.sizes(), " is not ", weight.size(0));
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

torch::nn::AnyModule make_norm(NormKind kind, int64_t width, double eps) {
  if (kind == NormKind::rms_norm) return torch::nn::AnyModule(RmsNorm(width, eps));
  return torch::nn::AnyModule(torch::nn::LayerNorm(torch::nn::LayerNormOptions({width}).eps(eps)));
}

}  // namespace pathvlm::models
