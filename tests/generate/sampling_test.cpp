// TokenSampler: greedy, the nucleus cut, the sampled frequencies and the seeded streams.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "generate/sampling.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;

namespace {

// log-probabilities 0.5, 0.3, 0.15, 0.05 over tokens 2, 0, 3, 1.
torch::Tensor four_token_logits() {
  return torch::tensor({0.3, 0.05, 0.5, 0.15}, torch::kDouble).log().to(torch::kFloat);
}

std::vector<double> frequencies(generate::TokenSampler& sampler, const torch::Tensor& logits, int draws) {
  std::vector<double> counts(static_cast<size_t>(logits.size(0)), 0.0);
  for (int i = 0; i < draws; ++i) counts[static_cast<size_t>(sampler.pick(logits))] += 1.0 / draws;
  return counts;
}

}  // namespace

TEST(TokenSampler, GreedyPicksTheArgmax) {
  generate::TokenSampler sampler(0, 0.0, 1.0);
  EXPECT_TRUE(sampler.greedy());
  EXPECT_EQ(sampler.pick(four_token_logits()), 2);
  EXPECT_EQ(sampler.pick(torch::tensor({1.0f, 7.0f, 7.0f})), 1);  // ties: the first, as argmax
}

TEST(TokenSampler, TemperatureOneFollowsTheSoftmax) {
  generate::TokenSampler sampler(11, 1.0, 1.0);
  const auto f = frequencies(sampler, four_token_logits(), 20000);
  EXPECT_NEAR(f[2], 0.5, 0.015);
  EXPECT_NEAR(f[0], 0.3, 0.015);
  EXPECT_NEAR(f[3], 0.15, 0.015);
  EXPECT_NEAR(f[1], 0.05, 0.01);
}

TEST(TokenSampler, TopPKeepsTheSmallestSetReachingTheMass) {
  // 0.5 + 0.3 reaches 0.75: tokens 2 and 0 only, renormalised to 0.625 / 0.375.
  generate::TokenSampler sampler(5, 1.0, 0.75);
  const auto f = frequencies(sampler, four_token_logits(), 20000);
  EXPECT_EQ(f[1], 0.0);
  EXPECT_EQ(f[3], 0.0);
  EXPECT_NEAR(f[2], 0.625, 0.015);
  EXPECT_NEAR(f[0], 0.375, 0.015);
}

TEST(TokenSampler, TinyTopPIsGreedy) {
  generate::TokenSampler sampler(3, 1.5, 1e-9);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(sampler.pick(four_token_logits()), 2);
}

TEST(TokenSampler, LowTemperatureSharpens) {
  generate::TokenSampler sampler(9, 0.1, 1.0);  // 0.5 vs 0.3 becomes 0.5^10 vs 0.3^10: ~99.4% token 2
  const auto f = frequencies(sampler, four_token_logits(), 5000);
  EXPECT_GT(f[2], 0.98);
}

TEST(TokenSampler, SeededStreamsRepeatAndDiffer) {
  const auto logits = torch::zeros({1000});
  auto draw = [&](uint64_t seed) {
    generate::TokenSampler sampler(seed, 1.0, 1.0);
    std::vector<int64_t> ids;
    for (int i = 0; i < 20; ++i) ids.push_back(sampler.pick(logits));
    return ids;
  };
  EXPECT_EQ(draw(42), draw(42));
  EXPECT_NE(draw(42), draw(43));
}

TEST(TokenSampler, RefusesBadSettings) {
  EXPECT_NE(error_of([] { generate::TokenSampler(0, -0.5, 1.0); }).find("temperature"), std::string::npos);
  EXPECT_NE(error_of([] { generate::TokenSampler(0, 1.0, 0.0); }).find("top_p"), std::string::npos);
  EXPECT_NE(error_of([] { generate::TokenSampler(0, 1.0, 1.5); }).find("top_p"), std::string::npos);
}
