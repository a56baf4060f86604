// Linear probing of frozen embeddings (slide embeddings from TITAN or a slide model, tile embeddings), as TITAN's and
// UNI's evaluations run it: sklearn's LogisticRegression(solver="lbfgs", penalty="l2", fit_intercept=True) for each
// regularisation of a sweep, the one with the lowest validation log loss kept, then scored on the test split.
//
//   eval::LogisticOptions o;  o.C = 0.01;
//   auto fit = eval::fit_logistic_regression(train_x, train_y, classes, o);
//   auto probs = torch::softmax(fit.logits(test_x), 1);
//   auto sweep = eval::sweep_logistic_regression(train_x, train_y, val_x, val_y, classes, eval::titan_costs());
//
// The objective is sklearn's: (1/n) sum_i -log p(y_i | x_i) + ||W||^2 / (2 C n), the intercept unpenalised; a
// multinomial (softmax) model for more than two classes, a binary logistic one (one weight vector, class 1 against
// class 0) for two, as sklearn fits them. It is minimised in float64 by L-BFGS with a strong-Wolfe line search until
// the gradient's largest entry is below `tolerance`, the weights scaled by min(1, sqrt(C n)) so that strong
// regularisation does not slow it (sklearn stops at 1e-4 or after max_iter = 100 iterations, so its optimum is
// approximate where ours is converged; where both converge they agree).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::eval {

struct LogisticModel {
  torch::Tensor weight;  // float64 [K, D], or [1, D] for two classes (class 1's logit against class 0's 0)
  torch::Tensor bias;    // float64 [K] or [1]
  int64_t classes = 0;
  int64_t evaluations = 0;  // of the objective and its gradient (L-BFGS iterations and line-search steps)
  bool converged = false;  // whether the gradient reached the tolerance within max_iter

  // [N, classes] float64: softmax of them is the class probabilities (for two classes [0, z]).
  torch::Tensor logits(const torch::Tensor& x) const;
};

struct LogisticOptions {
  double C = 1.0;  // inverse regularisation strength (sklearn's C)
  int64_t max_iter = 1000;
  double tolerance = 1e-7;  // on the largest gradient entry of the objective above (float64 resolves ~1e-8)
};

// x [N, D] (any float type), labels int64 [N] in [0, classes), classes >= 2. `start`: a fit to continue from (a
// neighbouring C of a sweep); the optimum does not depend on it.
LogisticModel fit_logistic_regression(const torch::Tensor& x, const torch::Tensor& labels, int64_t classes,
                                      const LogisticOptions& options, const LogisticModel* start = nullptr);

// sklearn's log_loss: the mean negative log-likelihood of `labels` under softmax(`logits`).
double log_loss(const torch::Tensor& logits, const torch::Tensor& labels);

// TITAN's (and UNI's) regularisation sweep: C = 1/v for 45 values v log-spaced from 1e-5 to 1e6, in the order TITAN
// tries them (v increasing: C from 1e5 down to 1e-6).
std::vector<double> titan_costs();

struct SweepPoint {
  double C = 0;
  double val_log_loss = 0;
  int64_t evaluations = 0;
  bool converged = false;
};

struct ProbeSweep {
  std::vector<SweepPoint> points;  // in the order of `costs`
  size_t best = 0;                 // the first point of lowest validation log loss
  LogisticModel model;             // the fit at points[best].C
};

// Fits every C of `costs` on (train_x, train_y) and keeps the one with the lowest log loss on (val_x, val_y); ties go
// to the earlier in `costs`, as TITAN's loop keeps them. The fits run from the smallest C up, each starting from the
// one before (the strongly regularised problems converge fastest).
ProbeSweep sweep_logistic_regression(const torch::Tensor& train_x, const torch::Tensor& train_y,
                                     const torch::Tensor& val_x, const torch::Tensor& val_y, int64_t classes,
                                     const std::vector<double>& costs, const LogisticOptions& options);

}  // namespace pathvlm::eval
