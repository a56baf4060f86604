#include "models/layers/mlp.h"

#include "core/error.h"

namespace pathvlm::models {

MlpImpl::MlpImpl(int64_t width, int64_t hidden, const std::string& act) : quick_gelu_(act == "quick_gelu") {
  PATHVLM_CHECK(act == "gelu" || act == "quick_gelu", "mlp: activation '", act, "' is not one of gelu, quick_gelu");
  fc1 = register_module("fc1", Linear(width, hidden));
  fc2 = register_module("fc2", Linear(hidden, width));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1(x);
  h = quick_gelu_ ? h * torch::sigmoid(1.702 * h) : torch::gelu(h);
  return fc2(h);
}

}  // namespace pathvlm::models
