#include "eval/linear_probe.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"

namespace pathvlm::eval {

namespace {

// Logits of a binary model: class 0's fixed at 0, class 1's the model's one column.
torch::Tensor full_logits(const torch::Tensor& z, int64_t classes) {
  return classes == 2 ? torch::cat({torch::zeros_like(z), z}, 1) : z;
}

// sklearn's objective (linear_probe.h) at (weight, bias).
torch::Tensor objective(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes, double C,
                        const torch::Tensor& weight, const torch::Tensor& bias) {
  const auto logits = full_logits(torch::addmm(bias, x, weight.t()), classes);
  const auto n = static_cast<double>(x.size(0));
  return torch::nll_loss(torch::log_softmax(logits, 1), labels) + weight.pow(2).sum() / (2.0 * C * n);
}

}  // namespace

torch::Tensor LogisticModel::logits(const torch::Tensor& x) const {
  PATHVLM_CHECK(x.dim() == 2 && x.size(1) == weight.size(1), "logistic regression: expected inputs [N, ",
                weight.size(1), "], got ", x.sizes());
  return full_logits(torch::addmm(bias, x.to(torch::kFloat64), weight.t()), classes);
}

LogisticModel fit_logistic_regression(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes,
                                      const LogisticOptions& options, const LogisticModel* start) {
  PATHVLM_CHECK(x.dim() == 2 && x.size(0) > 0 && labels.dim() == 1 && labels.size(0) == x.size(0),
                "logistic regression: expected x [N, D] and labels [N] of N > 0, got ", x.sizes(), " and ",
                labels.sizes());
  PATHVLM_CHECK(classes >= 2, "logistic regression: needs at least 2 classes, got ", classes);
  PATHVLM_CHECK(labels.min().item<int64_t>() >= 0 && labels.max().item<int64_t>() < classes,
                "logistic regression: labels must be in [0, ", classes, ")");
  PATHVLM_CHECK(options.C > 0 && std::isfinite(options.C), "logistic regression: C must be positive, got ",
                options.C);
  PATHVLM_CHECK(options.max_iter > 0 && options.tolerance > 0, "logistic regression: max_iter and tolerance must ",
                "be positive");
  torch::InferenceMode not_inference(false);
  torch::AutoGradMode grad_mode(true);
  const auto inputs = x.to(torch::kFloat64, /*non_blocking=*/false, /*copy=*/true);
  const auto targets = labels.to(torch::kInt64);
  const int64_t rows = classes == 2 ? 1 : classes;
  const auto f64 = inputs.options();
  // L-BFGS runs on W / scale: where the penalty's curvature 1 / (C n) exceeds 1 it becomes 1, so strongly
  // regularised weights and the unpenalised intercepts are on comparable scales (a diagonal preconditioner).
  const double scale = std::min(1.0, std::sqrt(options.C * static_cast<double>(inputs.size(0))));
  auto scaled = torch::zeros({rows, inputs.size(1)}, f64), bias = torch::zeros({rows}, f64);
  if (start && start->weight.defined() && start->weight.sizes() == scaled.sizes()) {
    scaled.copy_(start->weight / scale);
    bias.copy_(start->bias);
  }
  scaled.requires_grad_(true);
  bias.requires_grad_(true);
  torch::optim::LBFGS optimizer({scaled, bias}, torch::optim::LBFGSOptions(1.0)
                                                    .max_iter(options.max_iter)
                                                    .max_eval(2 * options.max_iter)
                                                    .tolerance_grad(options.tolerance)
                                                    .tolerance_change(1e-20)
                                                    .history_size(20)
                                                    .line_search_fn("strong_wolfe"));
  int64_t evaluations = 0;
  const auto evaluate = [&] {
    optimizer.zero_grad();
    auto loss = objective(inputs, targets, classes, options.C, scaled * scale, bias);
    loss.backward();
    return loss;
  };
  optimizer.step([&] {
    ++evaluations;
    return evaluate();
  });
  evaluate();
  const double gradient = std::max(scaled.grad().abs().max().item<double>(), bias.grad().abs().max().item<double>());
  LogisticModel model;
  model.weight = (scaled.detach() * scale).clone();
  model.bias = bias.detach().clone();
  model.classes = classes;
  model.evaluations = evaluations;
  model.converged = gradient <= options.tolerance;
  return model;
}

double log_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  PATHVLM_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0) && logits.size(0) > 0,
                "log_loss: expected logits [N, C] and labels [N], got ", logits.sizes(), " and ", labels.sizes());
  return torch::nll_loss(torch::log_softmax(logits.to(torch::kFloat64), 1), labels.to(torch::kInt64)).item<double>();
}

std::vector<double> titan_costs() {
  constexpr int kValues = 45;
  const double low = std::log10(1e-5), high = std::log10(1e6);
  std::vector<double> costs;
  for (int i = 0; i < kValues; ++i) costs.push_back(1.0 / std::pow(10.0, low + (high - low) * i / (kValues - 1)));
  return costs;
}

ProbeSweep sweep_logistic_regression(const torch::Tensor& train_x, const torch::Tensor& train_y,
                                     const torch::Tensor& val_x, const torch::Tensor& val_y, int64_t classes,
                                     const std::vector<double>& costs, const LogisticOptions& options) {
  PATHVLM_CHECK(!costs.empty(), "linear probe: no values of C to try");
  std::vector<size_t> order(costs.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return costs[a] < costs[b]; });
  ProbeSweep sweep;
  sweep.points.resize(costs.size());
  std::vector<LogisticModel> fits(costs.size());
  const LogisticModel* previous = nullptr;
  for (size_t i : order) {
    auto o = options;
    o.C = costs[i];
    fits[i] = fit_logistic_regression(train_x, train_y, classes, o, previous);
    previous = &fits[i];
    sweep.points[i] = {costs[i], log_loss(fits[i].logits(val_x), val_y), fits[i].evaluations, fits[i].converged};
  }
  for (size_t i = 1; i < costs.size(); ++i)
    if (sweep.points[i].val_log_loss < sweep.points[sweep.best].val_log_loss) sweep.best = i;
  sweep.model = fits[sweep.best];
  return sweep;
}

}  // namespace pathvlm::eval
