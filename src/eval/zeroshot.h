// Zero-shot classification from class names + prompt templates, and classification metrics. Shared by every
// task that embeds images (tiles, slides) and texts into one space.
//
// Zero-shot YAML (configs/clip/zeroshot_demo.yaml):
//   templates: ["an H&E image of {}.", "a histopathology tile showing {}."]
//   classes:
//     - name: tumor                                  # shown in reports; shard label = list position
//       synonyms: [tumor epithelium, adenocarcinoma] # optional: prompts use these (default: the name)
//     - stroma                                       # a bare string is a class with only its name
// CONCH's prompt files (mahmoodlab/CONCH prompts/crc100k_prompts_all_per_class.json) load as they are: the first
// prompt set {"0": {"classnames": {"ADI": ["adipose", "fat"], ...}, "templates": ["an H&E image of CLASSNAME.", ...]}},
// classes in the file's order (CRC-100K's folder order), CLASSNAME standing for "{}".
#pragma once
#include <torch/torch.h>

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::eval {

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

// Reads and checks a zero-shot YAML or CONCH prompt file; errors name the file and the entry.
ZeroShotSpec load_zeroshot_spec(const std::string& path);

// Embeds a list of texts into [n, D] (projected, unnormalised is fine).
using TextEmbedder = std::function<torch::Tensor(const std::vector<std::string>&)>;

// [C, D] class weights: per class the mean of its L2-normalised prompt embeddings, renormalised.
torch::Tensor zeroshot_classifier(const ZeroShotSpec& spec, const TextEmbedder& embed_texts);

// Logits of images against the classifier: `scale` x cosine, [N, C] (open_clip's zero-shot scale is 100; CONCH's
// run_zeroshot takes its exp(logit_scale)).
torch::Tensor zeroshot_logits(const torch::Tensor& image_embeddings, const torch::Tensor& classifier,
                              double scale = 100.0);

// MI-Zero's top-j pooling (CONCH's topj_pooling): a bag's score per class from its instances' scores [T, C], the
// mean of the class's j highest (all T when the bag has fewer) -> [C]. Each class ranks the instances on its own.
torch::Tensor topj_pooled(const torch::Tensor& instance_scores, int64_t j);

struct ClassificationMetrics {
  int64_t samples = 0;
  double top1 = 0;               // accuracy
  double balanced_accuracy = 0;  // mean recall over the classes present in the labels
  double weighted_f1 = 0;        // per-class F1 weighted by support
  // Cohen's kappa, and with quadratic weights (Gleason grades, ISUP groups), as sklearn's cohen_kappa_score computes
  // them: over the classes that occur in the labels or predictions, 0 where sklearn gives nan (one class only).
  double kappa = 0, weighted_kappa = 0;
  // ROC AUC of the softmax probabilities, one-vs-one macro for more than two classes (sklearn's roc_auc_score with
  // multi_class="ovo", as CONCH reports it); only from logits (metrics_from_logits), and only when every class has
  // a sample (sklearn refuses otherwise).
  std::optional<double> roc_auc;
  std::vector<std::vector<int64_t>> confusion;  // [true class][predicted class]
};

// Throws unless every label is a class index in [0, num_classes), naming `data` (where the labels come from), `classes`
// (what lists the classes), the bad labels and how many records carry them; -1 is a record without a label.
void check_class_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& data,
                        const std::string& classes);

// `predictions`, `labels`: int64 [N] with values in [0, num_classes).
ClassificationMetrics classification_metrics(const torch::Tensor& predictions, const torch::Tensor& labels,
                                             int64_t num_classes);
// The same from logits [N, C]: predictions their argmax, and roc_auc from their softmax.
ClassificationMetrics metrics_from_logits(const torch::Tensor& logits, const torch::Tensor& labels);

// sklearn's roc_auc_score of `probabilities` [N, C] against labels in [0, C): for each pair of classes the mean of
// the AUC of each one's probability within the pair's samples (ties count one half), averaged over the pairs; for two
// classes that is the AUC of the second's probability. nullopt when a class has no sample.
std::optional<double> roc_auc_ovo(const torch::Tensor& probabilities, const torch::Tensor& labels);

// "top1 0.9 balanced_acc ...", the confusion matrix as text, and {prefix + "top1", ...} for metrics sinks.
std::string format_metrics(const ClassificationMetrics& m);
std::string format_confusion(const ClassificationMetrics& m, const std::vector<std::string>& class_names);
std::vector<std::pair<std::string, double>> metric_values(const ClassificationMetrics& m, const std::string& prefix);

}  // namespace pathvlm::eval
