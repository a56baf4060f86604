#include "eval/bootstrap.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "eval/zeroshot.h"

namespace pathvlm::eval {

double percentile(std::vector<double> values, double q) {
  PATHVLM_CHECK(!values.empty() && q >= 0 && q <= 100, "percentile: ", values.size(), " values, q ", q);
  std::sort(values.begin(), values.end());
  const double position = q / 100.0 * static_cast<double>(values.size() - 1);
  const auto below = static_cast<size_t>(std::floor(position));
  const size_t above = std::min(below + 1, values.size() - 1);
  return values[below] + (position - static_cast<double>(below)) * (values[above] - values[below]);
}

std::map<std::string, MetricInterval> bootstrap_intervals(const torch::Tensor& logits, const torch::Tensor& labels,
                                                          int64_t resamples, uint64_t seed, double confidence) {
  PATHVLM_CHECK(resamples > 0 && confidence > 0 && confidence < 1, "bootstrap: ", resamples,
                " resamples at confidence ", confidence);
  PATHVLM_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0) && labels.size(0) > 0,
                "bootstrap: expected logits [N, C] and labels [N], got ", logits.sizes(), " and ", labels.sizes());
  auto generator = at::detail::createCPUGenerator(seed);
  const int64_t n = labels.size(0);
  std::map<std::string, std::vector<double>> values;
  for (int64_t r = 0; r < resamples; ++r) {
    const auto draw = torch::randint(n, {n}, generator, torch::kInt64);
    const auto metrics = metrics_from_logits(logits.index_select(0, draw), labels.index_select(0, draw));
    for (const auto& [name, value] : metric_values(metrics, "")) values[name].push_back(value);
  }
  std::map<std::string, MetricInterval> intervals;
  for (const auto& [name, draws] : values) {
    intervals[name] = {percentile(draws, 50 * (1 - confidence)), percentile(draws, 50 * (1 + confidence)),
                       static_cast<int64_t>(draws.size())};
  }
  return intervals;
}

}  // namespace pathvlm::eval
