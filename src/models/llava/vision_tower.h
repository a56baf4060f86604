// LLaVA's vision tower: a CLIP image tower, frozen, that yields the features of one hidden state per image, as
// Hugging Face LlavaModel.get_image_features selects them (LLaVA's CLIPVisionTower.feature_select): the hidden state
// `feature_layer` (HF indexing, -2 = penultimate block, before post_layernorm), with the CLS row dropped ("patch")
// or kept ("full"). Its one child is `vision_model` (HF CLIPVisionModel's layout), so parameter names read
// vision_model.embeddings.*, vision_model.encoder.layers.N.*, ...
//
//   models::LlavaVisionTower tower(clip, -2, /*keep_cls=*/false);   // shares clip->vision_model's parameters
//   auto features = tower(pixels);                                   // [N,3,S,S] -> [N, (S/p)^2, width]
//
// Frozen for good: its parameters never require gradients, forward() runs under NoGradGuard, and train(true) leaves
// it in eval mode (LLaVA's tower: requires_grad_(False) and @torch.no_grad()).
#pragma once
#include <torch/torch.h>

#include "models/clip/model.h"

namespace pathvlm::models {

class LlavaVisionTowerImpl : public torch::nn::Module {
 public:
  // Takes the image tower of `clip` (its text tower is not kept).
  LlavaVisionTowerImpl(const ClipModel& clip, int feature_layer, bool keep_cls);
  // Normalised pixels [N,3,S,S] -> features [N, num_tokens(), hidden_size()], no autograd history.
  torch::Tensor forward(const torch::Tensor& pixels);
  void train(bool on = true) override;

  // Image rows per image: (S/p)^2, plus one with the CLS row kept.
  int64_t num_tokens() const;
  int64_t hidden_size() const { return clip_config_.vision_width; }
  int feature_layer() const { return feature_layer_; }
  bool keep_cls() const { return keep_cls_; }
  // The CLIP's config (the text-tower sizes in it describe the CLIP this tower came from).
  const ClipModelConfig& clip_config() const { return clip_config_; }

  ClipVisionTransformer vision_model{nullptr};

 private:
  ClipModelConfig clip_config_;
  int feature_layer_;
  bool keep_cls_;
};
TORCH_MODULE(LlavaVisionTower);

}  // namespace pathvlm::models
