#include "models/llava/vision_tower.h"

#include "core/error.h"

namespace pathvlm::models {

LlavaVisionTowerImpl::LlavaVisionTowerImpl(const ClipModel& clip, int feature_layer, bool keep_cls)
    : clip_config_(clip->config()), feature_layer_(feature_layer), keep_cls_(keep_cls) {
  const int layers = clip_config_.vision_layers;
  PATHVLM_CHECK(feature_layer >= -(layers + 1) && feature_layer <= layers, "llava vision tower: vision_feature_layer ",
                feature_layer, " is outside the ", layers + 1, " hidden states of the CLIP image tower (-", layers + 1,
                "..", layers, ")");
  vision_model = register_module("vision_model", clip->vision_model);
  for (auto& p : parameters()) p.set_requires_grad(false);
  Module::train(false);
}

void LlavaVisionTowerImpl::train(bool /*on*/) { Module::train(false); }

int64_t LlavaVisionTowerImpl::num_tokens() const {
  const int64_t grid = clip_config_.image_size / clip_config_.patch_size;
  return grid * grid + (keep_cls_ ? 1 : 0);
}

torch::Tensor LlavaVisionTowerImpl::forward(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  auto hidden = vision_model->hidden_state(pixels, feature_layer_);
  return keep_cls_ ? hidden : hidden.narrow(1, 1, hidden.size(1) - 1);
}

}  // namespace pathvlm::models
