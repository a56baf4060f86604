// Cross-modal retrieval metrics (image<->text, slide<->report): R@1/5/10, median and mean rank, both ways.
#pragma once
#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace pathvlm::eval {

struct RetrievalDirection {
  double r1 = 0, r5 = 0, r10 = 0;  // fraction of queries whose match ranks within the top k
  double median_rank = 0;          // 1-based (open_clip: floor(median of 0-based ranks) + 1)
  double mean_rank = 0;            // 1-based
};

struct RetrievalMetrics {
  std::string image_name = "image", text_name = "text";  // what the two sides are called in logs and metric keys
  int64_t pairs = 0;
  RetrievalDirection image_to_text, text_to_image;
};

// Cosine similarities closer than this count as ties. Equal inputs embedded in different batches (another batch
// size, another split of the set over ranks) differ by float rounding, ~1e-7; real differences are far larger.
constexpr double kRetrievalTieTolerance = 1e-5;

// Pair i of `image` [N, D] matches pair i of `text` [N, D]; cosine similarity. A match's rank counts the
// candidates scoring higher by more than kRetrievalTieTolerance: ties count in its favour, so the metrics do not
// depend on the order of the pairs, nor on how ranks shared them before gathering.
// `image_name` / `text_name` name the sides in the outputs ("slide", "report": slide_to_report_R@1).
RetrievalMetrics retrieval_metrics(const torch::Tensor& image, const torch::Tensor& text,
                                   const std::string& image_name = "image", const std::string& text_name = "text");

// One line for logs, and {prefix + "image_to_text_R@1", ...} (with the side names) for metrics sinks.
std::string format_metrics(const RetrievalMetrics& m);
std::vector<std::pair<std::string, double>> metric_values(const RetrievalMetrics& m, const std::string& prefix);

}  // namespace pathvlm::eval
