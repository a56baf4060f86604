// RoPE against a hand re-derivation of the rotate-half formula: pair (x[i], x[i + D/2]) rotated by
// position * theta^(-2i/D).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "core/error.h"
#include "models/layers/rope.h"

using namespace pathvlm;

TEST(Rope, MatchesTheRotateHalfFormulaAtSeveralPositions) {
  const int64_t D = 8;
  const double theta = 500.0;
  models::RotaryEmbedding rope(D, theta);
  const std::vector<int64_t> positions = {0, 1, 5, 37};
  torch::manual_seed(0);
  auto x = torch::randn({2, 3, static_cast<int64_t>(positions.size()), D}, torch::kFloat64);
  auto cs = rope.cos_sin(torch::tensor(positions), torch::kFloat64);
  auto y = models::apply_rope(x, cs);
  for (size_t t = 0; t < positions.size(); ++t) {
    for (int64_t i = 0; i < D / 2; ++i) {
      // The angle in fp32 as the module computes it (HF does the same).
      const float inv_freq = static_cast<float>(1.0 / std::pow(theta, 2.0 * i / D));
      const double angle = static_cast<float>(positions[t]) * inv_freq;
      for (int64_t b = 0; b < 2; ++b) {
        for (int64_t h = 0; h < 3; ++h) {
          const double x1 = x[b][h][t][i].item<double>(), x2 = x[b][h][t][i + D / 2].item<double>();
          EXPECT_NEAR(y[b][h][t][i].item<double>(), x1 * std::cos(angle) - x2 * std::sin(angle), 1e-6)
              << "position " << positions[t] << " pair " << i;
          EXPECT_NEAR(y[b][h][t][i + D / 2].item<double>(), x2 * std::cos(angle) + x1 * std::sin(angle), 1e-6)
              << "position " << positions[t] << " pair " << i;
        }
      }
    }
  }
  // Position 0 is the identity.
  EXPECT_TRUE(torch::allclose(y.select(2, 0), x.select(2, 0)));
}

// Linear scaling divides the frequencies: position 4p with factor 4 is position p unscaled (exactly: both are
// scalings by powers of two), and the other positions fall between.
TEST(Rope, LinearScalingStretchesThePositions) {
  models::RotaryEmbedding plain(8, 10000.0), scaled(8, 10000.0, {"linear", 4.0});
  auto p = torch::arange(0, 40, 3);
  auto a = plain.cos_sin(p, torch::kFloat32), b = scaled.cos_sin(p * 4, torch::kFloat32);
  EXPECT_TRUE(torch::equal(a.cos, b.cos));
  EXPECT_TRUE(torch::equal(a.sin, b.sin));
  EXPECT_FALSE(torch::allclose(plain.cos_sin(p, torch::kFloat32).sin, scaled.cos_sin(p, torch::kFloat32).sin));
  EXPECT_THROW(models::RotaryEmbedding(8, 10000.0, {"linear", 0.0}), Error);
  EXPECT_THROW(models::RotaryEmbedding(8, 10000.0, {"linear", -2.0}), Error);
  EXPECT_THROW(models::RotaryEmbedding(8, 10000.0, {"yarn", 2.0}), Error);
}

TEST(Rope, PerSequencePositionsAndDtype) {
  models::RotaryEmbedding rope(4, 10000.0);
  auto x = torch::randn({2, 1, 3, 4});
  // Per-sequence position ids [B, T]: sequence 1 starts at 4.
  auto ids = torch::tensor({0, 1, 2, 4, 5, 6}, torch::kInt64).view({2, 3});
  auto batched = models::apply_rope(x, rope.cos_sin(ids, torch::kFloat32));
  auto seq1 = models::apply_rope(x.slice(0, 1), rope.cos_sin(torch::arange(4, 7), torch::kFloat32));
  EXPECT_TRUE(torch::allclose(batched.slice(0, 1), seq1));
  auto cs = rope.cos_sin(torch::arange(3), torch::kBFloat16);
  EXPECT_EQ(cs.cos.scalar_type(), torch::kBFloat16);
  EXPECT_EQ(cs.sin.sizes(), (std::vector<int64_t>{3, 4}));
  EXPECT_THROW(models::RotaryEmbedding(5, 10000.0), Error);
  EXPECT_THROW(models::apply_rope(torch::randn({1, 1, 3, 8}), cs), Error);
}
