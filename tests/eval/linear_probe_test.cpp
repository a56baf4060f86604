// The linear probe (eval/linear_probe): sklearn's L2 logistic regression fitted to the optimum the numpy reference
// reaches by Newton's method (logistic_reference.py), for two classes (one logistic weight vector) and three
// (softmax); the C of lowest validation log loss; TITAN's sweep of C. tests/cli/probe_test.cpp runs `pathvlm probe`.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <unistd.h>

#include "eval/linear_probe.h"
#include "eval/linear_probe_util.h"

using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

TEST(LinearProbe, TitansSweepOfC) {
  const auto costs = eval::titan_costs();
  ASSERT_EQ(costs.size(), 45u);
  EXPECT_NEAR(costs.front(), 1e5, 1e-6);
  EXPECT_NEAR(costs.back(), 1e-6, 1e-18);
  EXPECT_NEAR(costs[22], 1.0 / std::sqrt(10.0), 1e-12);  // the middle: 1/C = 10^0.5
  for (size_t i = 1; i < costs.size(); ++i) EXPECT_NEAR(costs[i - 1] / costs[i], std::pow(10.0, 11.0 / 44), 1e-9);
}

TEST(LinearProbe, FitsSklearnsOptimumAndKeepsTheCOfLowestValidationLoss) {
  const auto dir = std::filesystem::temp_directory_path() / ("pathvlm_probe_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::vector<double> costs{100.0, 1.0, 0.05, 0.002, 1e-4};
  for (int64_t classes : {2, 3}) {
    SCOPED_TRACE(std::to_string(classes) + " classes");
    const auto d = probe_data(classes, 11 + classes);
    const auto expected = logistic_reference(dir.string(), d, costs);
    ASSERT_EQ(expected.val_log_loss.size(), costs.size());
    eval::LogisticOptions options;
    const auto sweep = eval::sweep_logistic_regression(d.train_x, d.train_y, d.val_x, d.val_y, classes, costs, options);
    ASSERT_EQ(sweep.points.size(), costs.size());
    for (size_t i = 0; i < costs.size(); ++i) {
      EXPECT_EQ(sweep.points[i].C, costs[i]);
      EXPECT_TRUE(sweep.points[i].converged) << "C " << costs[i];
      EXPECT_NEAR(sweep.points[i].val_log_loss, expected.val_log_loss[i], 1e-6) << "C " << costs[i];
    }
    EXPECT_EQ(sweep.best, expected.best);
    // The reference's best is neither end of the sweep, so the choice is a real one.
    EXPECT_GT(expected.best, 0u);
    EXPECT_LT(expected.best, costs.size() - 1);
    const auto probabilities = torch::softmax(sweep.model.logits(d.test_x), 1);
    EXPECT_LT((probabilities - expected.test_probabilities).abs().max().item<double>(), 1e-5);
    EXPECT_EQ(sweep.model.weight.size(0), classes == 2 ? 1 : classes);

    // Each fit alone, from zero, reaches the same optimum as within the warm-started sweep.
    options.C = costs[expected.best];
    const auto alone = eval::fit_logistic_regression(d.train_x.to(torch::kFloat32), d.train_y, classes, options);
    EXPECT_LT((torch::softmax(alone.logits(d.test_x), 1) - probabilities).abs().max().item<double>(), 1e-5);
  }
  std::filesystem::remove_all(dir);
}

TEST(LinearProbe, LogLossAndRefusals) {
  // Uniform logits over 4 classes: log 4 whatever the labels.
  EXPECT_NEAR(eval::log_loss(torch::zeros({3, 4}), torch::tensor({0, 3, 1}, torch::kInt64)), std::log(4.0), 1e-12);
  const auto x = torch::randn({4, 2});
  const auto y = torch::tensor({0, 1, 0, 2}, torch::kInt64);
  eval::LogisticOptions o;
  EXPECT_NE(error_of([&] { eval::fit_logistic_regression(x, y, 2, o); }).find("labels must be in [0, 2)"),
            std::string::npos);
  o.C = 0;
  EXPECT_NE(error_of([&] { eval::fit_logistic_regression(x, y, 3, o); }).find("C must be positive"),
            std::string::npos);
}

}  // namespace
