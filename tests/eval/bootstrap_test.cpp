// Bootstrap intervals of classification metrics (eval/bootstrap): numpy's percentile, worked by hand; intervals that
// collapse on a perfect classifier, hold the point estimate, narrow with more samples, and repeat for a seed.
#include "eval/bootstrap.h"

#include <gtest/gtest.h>

#include "eval/zeroshot.h"

using namespace pathvlm;

namespace {

TEST(Bootstrap, PercentileInterpolatesAsNumpy) {
  // numpy.percentile([4, 1, 3, 2], q): positions q / 100 * 3 in the sorted values.
  EXPECT_DOUBLE_EQ(eval::percentile({4, 1, 3, 2}, 0), 1.0);
  EXPECT_DOUBLE_EQ(eval::percentile({4, 1, 3, 2}, 100), 4.0);
  EXPECT_DOUBLE_EQ(eval::percentile({4, 1, 3, 2}, 50), 2.5);
  EXPECT_DOUBLE_EQ(eval::percentile({4, 1, 3, 2}, 2.5), 1.075);
  EXPECT_DOUBLE_EQ(eval::percentile({7}, 97.5), 7.0);
}

// Logits whose argmax is right for a share `correct` of n samples of 3 classes.
std::pair<torch::Tensor, torch::Tensor> predictions(int64_t n, double correct, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  const auto labels = torch::arange(n, torch::kInt64).remainder(3);
  auto predicted = labels.clone();
  const auto wrong = torch::rand({n}, gen) >= correct;
  predicted.index_put_({wrong}, (labels.index({wrong}) + 1).remainder(3));
  auto logits = torch::randn({n, 3}, gen, torch::kFloat64) * 0.1;
  logits.scatter_add_(1, predicted.unsqueeze(1), torch::ones({n, 1}, torch::kFloat64));
  return {logits, labels};
}

TEST(Bootstrap, IntervalsAroundTheEstimateNarrowingWithMoreSamples) {
  const auto [perfect_logits, perfect_labels] = predictions(60, 1.0, 1);
  const auto perfect = eval::bootstrap_intervals(perfect_logits, perfect_labels, 200, 3);
  EXPECT_EQ(perfect.at("top1").low, 1.0);
  EXPECT_EQ(perfect.at("top1").high, 1.0);
  EXPECT_EQ(perfect.at("top1").draws, 200);

  double previous_width = 1.0;
  for (int64_t n : {60, 600, 6000}) {
    SCOPED_TRACE(n);
    const auto [logits, labels] = predictions(n, 0.7, 2);
    const auto point = eval::metrics_from_logits(logits, labels);
    const auto intervals = eval::bootstrap_intervals(logits, labels, 300, 5);
    for (const auto& [name, value] : eval::metric_values(point, "")) {
      EXPECT_LE(intervals.at(name).low, value) << name;
      EXPECT_GE(intervals.at(name).high, value) << name;
    }
    const auto& top1 = intervals.at("top1");
    EXPECT_LT(top1.high - top1.low, previous_width);
    EXPECT_GT(top1.high - top1.low, 0.0);
    previous_width = top1.high - top1.low;
    // The same seed draws the same samples.
    EXPECT_EQ(eval::bootstrap_intervals(logits, labels, 300, 5).at("kappa").low, intervals.at("kappa").low);
  }
  EXPECT_LT(previous_width, 0.04);  // ~ 4 x sqrt(0.7 x 0.3 / 6000) = 0.023
}

}  // namespace
