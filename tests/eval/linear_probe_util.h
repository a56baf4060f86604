// Overlapping Gaussian classes for the linear probe's tests (eval/linear_probe, `pathvlm probe`), and what the numpy
// reference (logistic_reference.py: sklearn's objective solved by Newton's method, TITAN's choice of C) makes of them.
#pragma once
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "io/safetensors.h"
#include "test_util.h"

namespace pathvlm::testing {

struct ProbeData {
  int64_t classes = 0;
  torch::Tensor train_x, train_y, val_x, val_y, test_x, test_y;
};

// 5-d embeddings; class c's mean is c along one axis and -c / 2 along another, with unit noise, so no C separates
// the train split and every fit has a finite optimum.
inline ProbeData probe_data(int64_t classes, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  auto draw = [&](int64_t n, torch::Tensor& x, torch::Tensor& y) {
    y = torch::arange(n, torch::kInt64).remainder(classes);
    auto means = torch::zeros({n, 5}, torch::kFloat64);
    means.select(1, 0).copy_(y.to(torch::kFloat64));
    means.select(1, 3).copy_(-0.5 * y.to(torch::kFloat64));
    x = means + torch::randn({n, 5}, gen, torch::kFloat64) + 0.3;
  };
  ProbeData d;
  d.classes = classes;
  draw(60, d.train_x, d.train_y);
  draw(30, d.val_x, d.val_y);
  draw(24, d.test_x, d.test_y);
  return d;
}

struct ReferenceProbe {
  std::vector<double> val_log_loss;
  size_t best = 0;
  torch::Tensor test_probabilities;  // float64 [test, classes]
};

inline ReferenceProbe logistic_reference(const std::string& dir, const ProbeData& d, const std::vector<double>& costs) {
  const std::string file = dir + "/probe_data.safetensors";
  safetensors::save(file, {{"train_x", d.train_x}, {"train_y", d.train_y}, {"val_x", d.val_x}, {"val_y", d.val_y},
                           {"test_x", d.test_x}, {"costs", torch::tensor(costs, torch::kFloat64)},
                           {"classes", torch::full({1}, d.classes, torch::kInt64)}});
  std::string output;
  const int status = run_command(std::string("/usr/bin/python3 ") + PATHVLM_SOURCE_DIR +
                                     "/tests/eval/logistic_reference.py " + file,
                                 output);
  EXPECT_EQ(status, 0) << output;
  ReferenceProbe r;
  if (status != 0) return r;
  const auto j = nlohmann::json::parse(output);
  r.val_log_loss = j["val_log_loss"].get<std::vector<double>>();
  r.best = j["best"].get<size_t>();
  const auto rows = j["test_probabilities"];
  r.test_probabilities = torch::empty({static_cast<int64_t>(rows.size()), d.classes}, torch::kFloat64);
  for (size_t i = 0; i < rows.size(); ++i)
    for (int64_t c = 0; c < d.classes; ++c) r.test_probabilities[i][c] = rows[i][c].get<double>();
  return r;
}

}  // namespace pathvlm::testing
