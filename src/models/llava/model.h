// A LLaVA-style multimodal LLM (LLaVA-1.5, PathAsst; PathChat with a ViT tile encoder): a frozen image tower (a
// CLIP's or a ViT, vision_tower.h), a trainable projector and a LLaMA, with the parameter names of Hugging Face
// LlavaForConditionalGeneration's checkpoints before 4.52 (which later versions rename on load; anchors-export.md
// 1.2):
//   vision_tower.vision_model.*   multi_modal_projector.linear_{1,2}.*
//   language_model.model.*        language_model.lm_head.weight
// (a ViT tower's are vision_tower.vit.*, timm's names; the export writes them as transformers' Dinov2Model's).
//
//   models::LlavaModel llava(config, models::load_clip("pathclip/"), models::load_llama("vicuna-7b/", dtype, device));
//   models::LlavaBatch batch{input_ids, labels, attention_mask, pixels};   // input_ids hold kImageSentinel per image
//   auto loss = llava->forward(batch, /*max_length=*/2048);
//   (loss.sum / loss.tokens).backward();          // or all-reduce sum and tokens first for a global mean
//
//   // generation: left-padded prompt embeddings, then generate::generate_from_embeds (src/generate)
//   auto prompt = llava->prompt_embeds(prompts, llava->project(llava->image_features(pixels)));
//
// Images come as normalised pixels (the tower runs, under NoGradGuard) or as precomputed tower features
// [N, T, vision_hidden] (cached; the projector runs on them directly, with the same result). A model built without
// a tower takes features only: the `instruct` task's slides, whose rows a frozen slide encoder makes outside it.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "models/clip/model.h"
#include "models/llama/model.h"
#include "models/llava/config.h"
#include "models/llava/projector.h"
#include "models/llava/splice.h"
#include "models/llava/vision_tower.h"

namespace pathvlm::models {

// One training micro-batch. Exactly one of `pixels` and `features` may be defined (neither: text only).
struct LlavaBatch {
  torch::Tensor input_ids;       // [B, L] int64; one kImageSentinel per image, images in row order
  torch::Tensor labels;          // [B, L] int64; kIgnoreIndex where there is no loss (not shifted)
  torch::Tensor attention_mask;  // [B, L] keep flags of the valid tokens (right padding)
  torch::Tensor pixels;          // [N, 3, S, S] normalised images, or undefined
  torch::Tensor features;        // [N, T, vision_hidden] tower features (cached), or undefined
};

// Shifted causal cross-entropy summed over the supervised tokens (labels != kIgnoreIndex after the shift), in
// fp32, and their count: a caller averages over the whole global batch with sum / tokens after reducing both.
struct LlavaLoss {
  torch::Tensor sum;  // scalar, differentiable
  int64_t tokens = 0;
};

class LlavaModelImpl : public torch::nn::Module {
 public:
  // Takes `clip`'s image tower (its text tower is dropped) and `language_model` as they are (shared, not copied).
  LlavaModelImpl(const LlavaConfig& config, const ClipModel& clip, const LlamaForCausalLM& language_model);
  // Takes `tower` (a CLIP's or a ViT's, selecting config's vision_feature_layer and vision_feature_select).
  LlavaModelImpl(const LlavaConfig& config, const LlavaVisionTower& tower, const LlamaForCausalLM& language_model);
  // No tower: every image arrives as `image_tokens` feature rows of width `feature_width`.
  LlavaModelImpl(const LlavaConfig& config, int64_t image_tokens, int64_t feature_width,
                 const LlamaForCausalLM& language_model);

  // Pixels [N, 3, S, S] -> tower features [N, T, vision_hidden] (the selected layer and CLS rule), no grad. Needs
  // the tower.
  torch::Tensor image_features(const torch::Tensor& pixels);
  // Tower features [N, T, vision_hidden] -> image rows [N, T, text_hidden].
  torch::Tensor project(const torch::Tensor& features);
  // Embeds `input_ids` and splices `image_rows` [N, T, text_hidden] (undefined or N = 0: none) in; see splice.h.
  SplicedInputs splice(const torch::Tensor& input_ids, const torch::Tensor& labels, const torch::Tensor& attention_mask,
                       const torch::Tensor& image_rows, SplicePadding padding, int64_t max_length = 0);
  // Token-id prompts (kImageSentinel per image) -> left-padded embeddings and keep flags for generation.
  SplicedInputs prompt_embeds(const std::vector<std::vector<int64_t>>& prompts, const torch::Tensor& image_rows);
  // The training loss of a batch (right padding; sequences cut to max_length after the images are expanded,
  // 0 = no cut). On a batch without images the projector still joins the graph with a zero contribution, so its
  // parameters get (zero) gradients as data-parallel training expects of every trainable parameter.
  LlavaLoss forward(const LlavaBatch& batch, int64_t max_length = 0);

  const LlavaConfig& config() const { return config_; }
  // Image rows per image (T) and the two hidden sizes.
  int64_t image_tokens() const { return vision_tower ? vision_tower->num_tokens() : image_tokens_; }
  int64_t vision_hidden() const { return multi_modal_projector->vision_hidden(); }
  int64_t text_hidden() const { return language_model->config().hidden_size; }

  LlavaVisionTower vision_tower{nullptr};  // null in a model built without a tower
  LlavaProjector multi_modal_projector{nullptr};
  LlamaForCausalLM language_model{nullptr};

 private:
  void add_projector_and_language_model(int64_t feature_width, const LlamaForCausalLM& language_model);

  LlavaConfig config_;
  int64_t image_tokens_ = 0;
};
TORCH_MODULE(LlavaModel);

}  // namespace pathvlm::models
