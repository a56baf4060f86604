// RMSNorm: fp32 arithmetic for half-precision inputs, cast back to the input dtype; make_norm's kinds.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "models/layers/norm.h"

using namespace pathvlm;

TEST(RmsNorm, ComputesInFp32ForBf16Input) {
  torch::manual_seed(0);
  models::RmsNorm norm(16, 1e-6);
  {
    torch::NoGradGuard no_grad;
    norm->weight.uniform_(0.5, 1.5);
  }
  norm->to(torch::kBFloat16);
  auto x = (torch::randn({3, 16}, torch::kFloat64) * 5).to(torch::kBFloat16);
  auto y = norm(x);
  EXPECT_EQ(y.scalar_type(), torch::kBFloat16);
  // Re-derived in double from the bf16 input, rounded to bf16 once, then times the bf16 weight.
  auto xd = x.to(torch::kFloat64);
  auto normed = (xd / torch::sqrt(xd.pow(2).mean(-1, true) + 1e-6)).to(torch::kBFloat16);
  auto expected = norm->weight * normed;
  EXPECT_TRUE(torch::equal(y, expected)) << (y.to(torch::kFloat64) - expected.to(torch::kFloat64)).abs().max();

  // fp16 squares of 300 overflow fp16 (max 65504); in fp32 they do not.
  models::RmsNorm half_norm(4, 1e-6);
  half_norm->to(torch::kHalf);
  auto big = torch::full({1, 4}, 300.0, torch::kHalf);
  auto out = half_norm(big);
  EXPECT_EQ(out.scalar_type(), torch::kHalf);
  EXPECT_TRUE(torch::allclose(out.to(torch::kFloat32), torch::ones({1, 4}), 1e-3, 1e-3)) << out;
}

TEST(Norm, MakeNormBuildsTheKind) {
  auto ln = models::make_norm(models::NormKind::layer_norm, 8, 1e-5);
  auto rms = models::make_norm(models::NormKind::rms_norm, 8, 1e-5);
  EXPECT_EQ(ln.ptr()->named_parameters().size(), 2u);  // weight, bias
  EXPECT_EQ(rms.ptr()->named_parameters().size(), 1u);  // weight
  auto x = torch::randn({2, 8}) + 3.0;
  // LayerNorm removes the mean, RMSNorm does not.
  EXPECT_LT(ln.forward(x).mean(-1).abs().max().item<double>(), 1e-5);
  EXPECT_GT(rms.forward(x).mean(-1).abs().min().item<double>(), 0.5);
}
