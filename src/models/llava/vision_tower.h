// LLaVA's vision tower: a frozen image encoder that yields the features of one hidden state per image, as Hugging
// Face LlavaModel.get_image_features selects them (LLaVA's CLIPVisionTower.feature_select): the hidden state
// `feature_layer` (HF indexing, -2 = penultimate block, before the final norm), with its first row (the class token)
// dropped ("patch") or kept ("full"). Register tokens, where a ViT has them, stay, as transformers keeps them.
//
// Two kinds of encoder:
//  - a CLIP image tower (LLaVA-1.5, PathAsst): child `vision_model` (HF CLIPVisionModel's layout), so parameter names
//    read vision_model.embeddings.*, vision_model.encoder.layers.N.*, ...;
//  - a ViT tile encoder (PathChat's UNI; Phikon, Virchow, H-optimus, ...: models/vit): child `vit`, timm's names.
//
//   models::LlavaVisionTower tower(clip, -2, /*keep_cls=*/false);   // shares clip->vision_model's parameters
//   models::LlavaVisionTower uni(models::load_timm_vit("UNI/"), -2, false);
//   auto features = tower(pixels);                                   // [N,3,S,S] -> [N, num_tokens(), hidden_size()]
//
// Frozen for good: its parameters never require gradients, forward() runs under NoGradGuard, and train(true) leaves
// it in eval mode (LLaVA's tower: requires_grad_(False) and @torch.no_grad()).
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>

#include "models/clip/model.h"
#include "models/vit/model.h"

namespace pathvlm::models {

// What the rest of LLaVA needs to know of a tower, whichever kind it is.
struct VisionTowerShape {
  std::string kind;  // "CLIP image tower" or "ViT"
  int image_size = 0, patch_size = 0, layers = 0, width = 0;
  int prefix_tokens = 1;              // rows before the patches: the class token, then any register tokens
  std::array<double, 3> mean{}, std{};  // the pixel normalisation its input takes
  std::string interpolation = "bicubic";  // how images are resized to its input (a ViT's own: VitConfig)

  int grid() const { return image_size / patch_size; }
  // Rows of every hidden state: the prefix and the patches.
  int64_t hidden_rows() const { return static_cast<int64_t>(grid()) * grid() + prefix_tokens; }
};

class LlavaVisionTowerImpl : public torch::nn::Module {
 public:
  // Takes the image tower of `clip` (its text tower is not kept).
  LlavaVisionTowerImpl(const ClipModel& clip, int feature_layer, bool keep_cls);
  // Takes `vit` (its final norm and pooling go unused); it must have a class token for "patch" to drop.
  LlavaVisionTowerImpl(const Vit& vit, int feature_layer, bool keep_cls);
  // Normalised pixels [N,3,S,S] -> features [N, num_tokens(), hidden_size()], no autograd history.
  torch::Tensor forward(const torch::Tensor& pixels);
  void train(bool on = true) override;

  // Image rows per image: the hidden state's rows, less the class token's unless it is kept.
  int64_t num_tokens() const { return shape_.hidden_rows() - (keep_cls_ ? 0 : 1); }
  int64_t hidden_size() const { return shape_.width; }
  int feature_layer() const { return feature_layer_; }
  bool keep_cls() const { return keep_cls_; }
  const VisionTowerShape& shape() const { return shape_; }
  // Takes its input normalised with `mean` / `std` instead of its own (a model card that asks for others).
  void normalise_with(const std::array<double, 3>& mean, const std::array<double, 3>& std);
  // The CLIP's config (the text-tower sizes in it describe the CLIP this tower came from); CLIP towers only.
  const ClipModelConfig& clip_config() const;

  ClipVisionTransformer vision_model{nullptr};  // a CLIP tower's, else null
  Vit vit{nullptr};                             // a ViT tower's, else null

 private:
  void freeze(int feature_layer);

  VisionTowerShape shape_;
  ClipModelConfig clip_config_;
  int feature_layer_;
  bool keep_cls_;
};
TORCH_MODULE(LlavaVisionTower);

}  // namespace pathvlm::models
