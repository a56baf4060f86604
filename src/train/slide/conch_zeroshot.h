// CONCH v1 zero-shot classification of whole slides from their tile features (`pathvlm eval --task slide --model
// CONCH/`), as CONCH's run_mizero (MI-Zero) scores them:
//   tiles  = normalise(features @ visual.proj_contrast)   features already projected (embed pool=proj): normalise
//   scores = tiles @ classifier^T                         cosine with each class's prompt embedding
//   slide  = per class the mean of its j best tile scores, for each j asked (eval::topj_pooled)
// The classifier is eval::zeroshot_classifier of CONCH's text tower (its zero_shot_classifier).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "eval/zeroshot.h"
#include "models/conch/text.h"

namespace pathvlm::train {

class ConchSlideZeroShot {
 public:
  // CONCH v1 at `path` (its tokenizer file `vocab`, else the model directory's tokenizer.json), for tile features
  // that are `projected` or not, on `device`.
  ConchSlideZeroShot(const std::string& path, const std::string& vocab, bool projected, torch::Device device);

  int64_t feature_dim() const;  // the width the tile features must have
  double logit_scale() const { return logit_scale_; }  // exp(logit_scale): run_mizero's softmax temperature
  torch::nn::Module& modules() { return *modules_; }
  // The classes' prompts embedded; before slide_scores.
  void set_classes(const eval::ZeroShotSpec& spec, int64_t batch_size);
  // One slide's tile features [T, feature_dim()] -> pooled class scores [topj.size(), classes].
  torch::Tensor slide_scores(const torch::Tensor& features, const std::vector<int64_t>& topj) const;

 private:
  torch::Device device_;
  std::shared_ptr<torch::nn::Module> modules_;
  models::ConchText text_{nullptr};
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  torch::Tensor projection_;  // [pooled, embed]; undefined for projected features
  torch::Tensor classifier_;  // [classes, embed]
  double logit_scale_ = 0;
};

}  // namespace pathvlm::train
