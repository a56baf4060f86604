#include "models/llava/projector.h"

#include "core/error.h"

namespace pathvlm::models {

LlavaProjectorImpl::LlavaProjectorImpl(const std::string& type, int64_t vision_hidden, int64_t text_hidden)
    : type_(type) {
  PATHVLM_CHECK(type == "linear" || type == "mlp2x_gelu", "llava projector: type '", type,
                "' is not one of linear, mlp2x_gelu");
  linear_1 = register_module("linear_1", Linear(vision_hidden, text_hidden));
  if (type == "mlp2x_gelu") linear_2 = register_module("linear_2", Linear(text_hidden, text_hidden));
}

torch::Tensor LlavaProjectorImpl::forward(const torch::Tensor& features) {
  PATHVLM_CHECK(features.dim() >= 1 && features.size(-1) == vision_hidden(), "llava projector: expected features [..., ",
                vision_hidden(), "], got ", features.sizes());
  auto h = linear_1(features.to(linear_1->weight.scalar_type()));
  if (!linear_2) return h;
  return linear_2(torch::gelu(h));
}

}  // namespace pathvlm::models
