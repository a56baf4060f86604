// k-nearest-neighbour classification on embeddings: the baseline few-shot prompting is compared with (the same
// support tiles, their image embeddings instead of a prompt).
//
//   torch::Tensor predicted = eval::knn_predict(support_embeddings, support_labels, query_embeddings, /*k=*/5);
//   double accuracy = eval::knn_accuracy(predicted, query_labels);
//
// Similarity is cosine (rows L2-normalised, in float32 whatever the inputs' dtype). The k nearest are the k most
// similar support rows, the smaller index first among equal similarities. Their labels vote; a tie in votes goes
// to the label with the larger summed similarity, then to the smaller label. Deterministic.
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace pathvlm::eval {

// support_embeddings [S, D], support_labels int [S], query_embeddings [Q, D] (any floating dtype and device),
// 1 <= k <= S. Returns int64 [Q] on the CPU.
torch::Tensor knn_predict(const torch::Tensor& support_embeddings, const torch::Tensor& support_labels,
                          const torch::Tensor& query_embeddings, int64_t k);

// The fraction of predictions equal to their labels (both [Q]); 0 for Q = 0.
double knn_accuracy(const torch::Tensor& predictions, const torch::Tensor& labels);

}  // namespace pathvlm::eval
