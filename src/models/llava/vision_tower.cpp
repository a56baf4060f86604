#include "models/llava/vision_tower.h"

#include "core/error.h"
#include "core/pixel_statistics.h"

namespace pathvlm::models {

LlavaVisionTowerImpl::LlavaVisionTowerImpl(const ClipModel& clip, int feature_layer, bool keep_cls)
    : clip_config_(clip->config()), feature_layer_(feature_layer), keep_cls_(keep_cls) {
  const auto& c = clip_config_;
  shape_ = {"CLIP image tower", c.image_size, c.patch_size, c.vision_layers, c.vision_width, 1, kOpenAiMean,
            kOpenAiStd, "bicubic"};
  vision_model = register_module("vision_model", clip->vision_model);
  freeze(feature_layer);
}

LlavaVisionTowerImpl::LlavaVisionTowerImpl(const Vit& vit, int feature_layer, bool keep_cls)
    : feature_layer_(feature_layer), keep_cls_(keep_cls) {
  const auto& c = vit->config();
  PATHVLM_CHECK(c.class_token || keep_cls, "llava vision tower: this ViT has no class token, so "
                "vision_feature_select patch (which drops the first row, the class token) does not fit it: use full");
  shape_ = {"ViT", c.image_size, c.patch_size, c.depth, c.width, c.prefix_tokens(), c.mean, c.std, c.interpolation};
  this->vit = register_module("vit", vit);
  freeze(feature_layer);
}

void LlavaVisionTowerImpl::freeze(int feature_layer) {
  const int layers = shape_.layers;
  PATHVLM_CHECK(feature_layer >= -(layers + 1) && feature_layer <= layers, "llava vision tower: vision_feature_layer ",
                feature_layer, " is outside the ", layers + 1, " hidden states of the ", shape_.kind, " (-",
                layers + 1, "..", layers, ")");
  for (auto& p : parameters()) p.set_requires_grad(false);
  Module::train(false);
}

void LlavaVisionTowerImpl::train(bool /*on*/) { Module::train(false); }

void LlavaVisionTowerImpl::normalise_with(const std::array<double, 3>& mean, const std::array<double, 3>& std) {
  shape_.mean = mean;
  shape_.std = std;
}

const ClipModelConfig& LlavaVisionTowerImpl::clip_config() const {
  PATHVLM_CHECK(vision_model, "llava vision tower: a ", shape_.kind, " has no CLIP config");
  return clip_config_;
}

torch::Tensor LlavaVisionTowerImpl::forward(const torch::Tensor& pixels) {
  torch::NoGradGuard no_grad;
  auto hidden =
      vision_model ? vision_model->hidden_state(pixels, feature_layer_) : vit->hidden_state(pixels, feature_layer_);
  return keep_cls_ ? hidden : hidden.narrow(1, 1, hidden.size(1) - 1);
}

}  // namespace pathvlm::models
