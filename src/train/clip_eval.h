// CLIP evaluation: zero-shot classification from class names + prompt templates, and image<->text
// retrieval. Every rank embeds its share, the features are all-gathered, and every rank computes the same
// metrics from the same tensors (no rank-0-only evaluation, no rank left waiting at a barrier).
//
// Zero-shot YAML (configs/clip/zeroshot_demo.yaml):
//   templates: ["an H&E image of {}.", "a histopathology tile showing {}."]
//   classes:
//     - name: tumor                                  # shown in reports; shard label = list position
//       synonyms: [tumor epithelium, adenocarcinoma] # optional: prompts use these (default: the name)
//     - stroma                                       # a bare string is a class with only its name
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "dist/comm.h"

namespace pathvlm::train {

struct ZeroShotClass {
  std::string name;
  std::vector<std::string> synonyms;  // the texts substituted into the templates (at least the name)
};

struct ZeroShotSpec {
  std::string source;  // the YAML file, for messages
  std::vector<std::string> templates;
  std::vector<ZeroShotClass> classes;

  // Every prompt of class c: each template with each synonym substituted for "{}".
  std::vector<std::string> prompts(size_t c) const;
  std::vector<std::string> class_names() const;
};

// Reads and checks a zero-shot YAML; errors name the file and the entry.
ZeroShotSpec load_zeroshot_spec(const std::string& path);

// Embeds a list of texts into [n, D] (projected, unnormalised is fine).
using TextEmbedder = std::function<torch::Tensor(const std::vector<std::string>&)>;

// [C, D] class weights: per class the mean of its L2-normalised prompt embeddings, renormalised.
torch::Tensor zeroshot_classifier(const ZeroShotSpec& spec, const TextEmbedder& embed_texts);

// Logits of images against the classifier: 100 x cosine, [N, C].
torch::Tensor zeroshot_logits(const torch::Tensor& image_embeddings, const torch::Tensor& classifier);

struct ClassificationMetrics {
  int64_t samples = 0;
  double top1 = 0;               // accuracy
  double balanced_accuracy = 0;  // mean recall over the classes present in the labels
  double weighted_f1 = 0;        // per-class F1 weighted by support
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
};

// `predictions`, `labels`: int64 [N] with values in [0, num_classes).
ClassificationMetrics classification_metrics(const torch::Tensor& predictions, const torch::Tensor& labels,
                                             int64_t num_classes);

struct RetrievalDirection {
  double r1 = 0, r5 = 0, r10 = 0;  // fraction of queries whose match ranks within the top k
  double median_rank = 0;          // 1-based (open_clip: floor(median of 0-based ranks) + 1)
  double mean_rank = 0;            // 1-based
};

struct RetrievalMetrics {
  int64_t pairs = 0;
  RetrievalDirection image_to_text, text_to_image;
};

// Pair i of `image` [N, D] matches pair i of `text` [N, D]; cosine similarity. A match's rank counts the
// candidates scoring strictly higher (ties count in its favour).
RetrievalMetrics retrieval_metrics(const torch::Tensor& image, const torch::Tensor& text);

// Concatenation over ranks of `x` along dim 0 where ranks may hold different row counts (eval shares).
// The result is identical on every rank. `comm` may be null (one process).
torch::Tensor gather_rows(const torch::Tensor& x, dist::Comm* comm);

// One-line renderings for logs, and flat key/value lists for metrics sinks ("zeroshot/top1", ...).
std::string format_metrics(const ClassificationMetrics& m);
std::string format_metrics(const RetrievalMetrics& m);
std::string format_confusion(const ClassificationMetrics& m, const std::vector<std::string>& class_names);
std::vector<std::pair<std::string, double>> metric_values(const ClassificationMetrics& m, const std::string& prefix);
std::vector<std::pair<std::string, double>> metric_values(const RetrievalMetrics& m, const std::string& prefix);

}  // namespace pathvlm::train
