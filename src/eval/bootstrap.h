// Confidence intervals of classification metrics by the bootstrap, as TITAN's and UNI's evaluations report them: the
// test samples drawn with replacement `resamples` times, every metric computed on each draw, and its interval the
// percentiles (1 - confidence) / 2 and (1 + confidence) / 2 of those values (numpy's linear interpolation).
//
//   auto intervals = eval::bootstrap_intervals(logits, labels, /*resamples=*/1000, /*seed=*/0);
//   intervals.at("balanced_accuracy").low;
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pathvlm::eval {

struct MetricInterval {
  double low = 0, high = 0;
  int64_t draws = 0;  // the draws that had the metric (roc_auc is absent from one missing a class)
};

// Keys as metric_values gives them (top1, balanced_accuracy, ..., roc_auc); the draws are a pure function of `seed`.
std::map<std::string, MetricInterval> bootstrap_intervals(const torch::Tensor& logits, const torch::Tensor& labels,
                                                          int64_t resamples, uint64_t seed, double confidence = 0.95);

// numpy.percentile(values, q) with its default linear interpolation; q in [0, 100], values not empty.
double percentile(std::vector<double> values, double q);

}  // namespace pathvlm::eval
