#include "eval/knn.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace pathvlm::eval {

torch::Tensor knn_predict(const torch::Tensor& support_embeddings, const torch::Tensor& support_labels,
                          const torch::Tensor& query_embeddings, int64_t k) {
  PATHVLM_CHECK(support_embeddings.dim() == 2 && query_embeddings.dim() == 2 &&
                    support_embeddings.size(1) == query_embeddings.size(1),
                "knn: embeddings must be [S, D] and [Q, D], got ", support_embeddings.sizes(), " and ",
                query_embeddings.sizes());
  PATHVLM_CHECK(support_labels.dim() == 1 && support_labels.size(0) == support_embeddings.size(0),
                "knn: ", support_embeddings.size(0), " support embeddings but labels of shape ",
                support_labels.sizes());
  PATHVLM_CHECK(!support_labels.is_floating_point() && !support_labels.is_complex(),
                "knn: support labels must be integers, got ", support_labels.scalar_type());
  const int64_t num_support = support_embeddings.size(0);
  PATHVLM_CHECK(k >= 1 && k <= num_support, "knn: k must be in [1, ", num_support, "] (the support rows), got ", k);

  namespace F = torch::nn::functional;
  const auto normalized = [](const torch::Tensor& x) {
    return F::normalize(x.to(torch::kFloat32), F::NormalizeFuncOptions().dim(1));
  };
  const torch::Tensor similarity =
      torch::matmul(normalized(query_embeddings), normalized(support_embeddings).t().to(query_embeddings.device()))
          .to(torch::kCPU)
          .contiguous();
  const torch::Tensor labels = support_labels.to(torch::kCPU, torch::kInt64).contiguous();
  const auto sim = similarity.accessor<float, 2>();
  const auto label = labels.accessor<int64_t, 1>();

  torch::Tensor predicted = torch::empty({query_embeddings.size(0)}, torch::kInt64);
  auto out = predicted.accessor<int64_t, 1>();
  std::vector<int64_t> order(static_cast<size_t>(num_support));
  for (int64_t q = 0; q < similarity.size(0); ++q) {
    std::iota(order.begin(), order.end(), int64_t{0});
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
      return sim[q][a] != sim[q][b] ? sim[q][a] > sim[q][b] : a < b;
    });
    std::map<int64_t, std::pair<int64_t, double>> votes;  // label -> (votes, summed similarity), smallest first
    for (int64_t i = 0; i < k; ++i) {
      auto& v = votes[label[order[static_cast<size_t>(i)]]];
      ++v.first;
      v.second += sim[q][order[static_cast<size_t>(i)]];
    }
    auto best = votes.begin();
    for (auto it = votes.begin(); it != votes.end(); ++it)
      if (it->second.first > best->second.first ||
          (it->second.first == best->second.first && it->second.second > best->second.second))
        best = it;
    out[q] = best->first;
  }
  return predicted;
}

double knn_accuracy(const torch::Tensor& predictions, const torch::Tensor& labels) {
  PATHVLM_CHECK(predictions.dim() == 1 && labels.sizes() == predictions.sizes(), "knn: predictions of shape ",
                predictions.sizes(), " and labels of shape ", labels.sizes(), " differ");
  if (predictions.numel() == 0) return 0.0;
  return predictions.to(torch::kCPU, torch::kInt64).eq(labels.to(torch::kCPU, torch::kInt64)).to(torch::kFloat64)
      .mean()
      .item<double>();
}

}  // namespace pathvlm::eval
