// NonFiniteSteps against a plain host model of the same bookkeeping: random runs of finite and non-finite steps
// (nan or inf in the loss or the gradient norm), read at random sync points, over several seeds.
#include "train/nonfinite_steps.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

using namespace pathvlm::train;

TEST(NonFiniteSteps, MatchesTheHostBookkeepingForRandomRuns) {
  for (uint32_t seed = 1; seed <= 5; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    NonFiniteSteps device_counts(torch::kCPU);
    NonFiniteSteps::Seen expected;  // the host model
    const int64_t restored_total = seed % 2 ? 3 : 0, restored_in_row = seed % 2 ? 1 : 0;
    device_counts.restore(restored_total, restored_in_row);
    expected.total = restored_total;
    expected.in_row = expected.worst_in_row = restored_in_row;
    for (int64_t step = 1; step <= 200; ++step) {
      const double r = unit(rng);
      // Bursts: a bad step is likelier right after a bad one, so runs of several occur.
      const bool bad = r < (expected.in_row > 0 ? 0.6 : 0.15);
      double loss = 2.0 + unit(rng), norm = unit(rng);
      if (bad) {
        const double poison = unit(rng) < 0.5 ? std::numeric_limits<double>::quiet_NaN()
                                              : std::numeric_limits<double>::infinity();
        (unit(rng) < 0.5 ? loss : norm) = poison;
      }
      const auto flag = device_counts.record(torch::tensor(static_cast<float>(loss)),
                                             torch::tensor(norm, torch::kDouble), step);
      EXPECT_EQ(flag.scalar_type(), torch::kFloat);
      EXPECT_EQ(flag.item<float>(), bad ? 1.0f : 0.0f) << "seed " << seed << " step " << step;
      if (bad) {
        ++expected.total, ++expected.since_read, ++expected.in_row;
        expected.last_step = step;
      } else {
        expected.in_row = 0;
      }
      expected.worst_in_row = std::max(expected.worst_in_row, expected.in_row);
      if (unit(rng) < 0.2 || step == 200) {
        const auto seen = device_counts.read();
        EXPECT_EQ(seen.total, expected.total) << "seed " << seed << " step " << step;
        EXPECT_EQ(seen.since_read, expected.since_read) << "seed " << seed << " step " << step;
        EXPECT_EQ(seen.in_row, expected.in_row) << "seed " << seed << " step " << step;
        EXPECT_EQ(seen.worst_in_row, expected.worst_in_row) << "seed " << seed << " step " << step;
        EXPECT_EQ(seen.last_step, expected.last_step) << "seed " << seed << " step " << step;
        if (seen.last_step == step) {
          EXPECT_FALSE(std::isfinite(seen.last_loss) && std::isfinite(seen.last_grad_norm));
        }
        expected.since_read = 0;
        expected.worst_in_row = expected.in_row;  // a run continues across a read
      }
    }
  }
}
