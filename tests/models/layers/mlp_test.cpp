// The MLPs: fc1 -> act -> fc2 (gelu, quick_gelu) and LLaMA's SwiGLU, against their formulas.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "models/layers/gated_mlp.h"
#include "models/layers/mlp.h"

using namespace pathvlm;

namespace {
torch::Tensor linear(const torch::Tensor& x, const models::Linear& l) {
  auto y = torch::matmul(x, l->weight.t());
  return l->bias.defined() ? y + l->bias : y;
}
}  // namespace

TEST(GatedMlp, SwigluShapeAndFormula) {
  torch::manual_seed(0);
  models::GatedMlp mlp(16, 40);
  std::vector<std::string> names;
  for (const auto& p : mlp->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"gate_proj.weight", "up_proj.weight", "down_proj.weight"}));
  EXPECT_EQ(mlp->up_proj->weight.sizes(), (std::vector<int64_t>{40, 16}));
  torch::NoGradGuard no_grad;
  auto x = torch::randn({2, 5, 16});
  auto y = mlp(x);
  ASSERT_EQ(y.sizes(), x.sizes());
  auto gate = linear(x, mlp->gate_proj);
  auto expected = linear(gate * torch::sigmoid(gate) * linear(x, mlp->up_proj), mlp->down_proj);
  EXPECT_LT((y - expected).abs().max().item<double>(), 1e-5);
}

TEST(Mlp, GeluAndQuickGelu) {
  torch::manual_seed(1);
  torch::NoGradGuard no_grad;
  auto x = torch::randn({3, 8});
  for (const std::string act : {"gelu", "quick_gelu"}) {
    models::Mlp mlp(8, 32, act);
    auto h = linear(x, mlp->fc1);
    h = act == "gelu" ? 0.5 * h * (1 + torch::erf(h / std::sqrt(2.0))) : h * torch::sigmoid(1.702 * h);
    EXPECT_LT((mlp(x) - linear(h, mlp->fc2)).abs().max().item<double>(), 1e-5) << act;
  }
  EXPECT_THROW(models::Mlp(8, 32, "relu"), Error);
}
