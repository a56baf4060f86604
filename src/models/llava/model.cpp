#include "models/llava/model.h"

#include <algorithm>

#include "core/error.h"

namespace pathvlm::models {

namespace {

bool keeps_cls(const LlavaConfig& config) {
  PATHVLM_CHECK(config.vision_feature_select == "patch" || config.vision_feature_select == "full",
                "llava: vision_feature_select '", config.vision_feature_select, "' is not one of patch, full");
  return config.vision_feature_select == "full";
}

}  // namespace

LlavaModelImpl::LlavaModelImpl(const LlavaConfig& config, const ClipModel& clip, const LlamaForCausalLM& language_model)
    : LlavaModelImpl(config, LlavaVisionTower(clip, config.vision_feature_layer, keeps_cls(config)), language_model) {}

LlavaModelImpl::LlavaModelImpl(const LlavaConfig& config, const LlavaVisionTower& tower,
                               const LlamaForCausalLM& language_model)
    : config_(config) {
  PATHVLM_CHECK(tower->feature_layer() == config.vision_feature_layer && tower->keep_cls() == keeps_cls(config),
                "llava: the vision tower selects hidden state ", tower->feature_layer(),
                tower->keep_cls() ? " with" : " without", " the class token, not what the config says (",
                config.vision_feature_layer, ", ", config.vision_feature_select, ")");
  vision_tower = register_module("vision_tower", tower);
  add_projector_and_language_model(vision_tower->hidden_size(), language_model);
}

LlavaModelImpl::LlavaModelImpl(const LlavaConfig& config, int64_t image_tokens, int64_t feature_width,
                               const LlamaForCausalLM& language_model)
    : config_(config), image_tokens_(image_tokens) {
  PATHVLM_CHECK(image_tokens > 0 && feature_width > 0, "llava: ", image_tokens, " feature rows of width ",
                feature_width, " per image");
  add_projector_and_language_model(feature_width, language_model);
}

void LlavaModelImpl::add_projector_and_language_model(int64_t feature_width, const LlamaForCausalLM& language_model) {
  const auto& lm_weight = language_model->model->embed_tokens->weight;
  multi_modal_projector = register_module(
      "multi_modal_projector", LlavaProjector(config_.projector, feature_width, language_model->config().hidden_size));
  multi_modal_projector->to(lm_weight.device(), lm_weight.scalar_type());
  this->language_model = register_module("language_model", language_model);
}

torch::Tensor LlavaModelImpl::image_features(const torch::Tensor& pixels) {
  PATHVLM_CHECK(vision_tower, "llava: this model has no image tower; give it features");
  return vision_tower(pixels);
}

torch::Tensor LlavaModelImpl::project(const torch::Tensor& features) {
  PATHVLM_CHECK(features.dim() == 3 && features.size(2) == vision_hidden(), "llava: expected image features [N, T, ",
                vision_hidden(), "], got ", features.sizes());
  return multi_modal_projector(features);
}

SplicedInputs LlavaModelImpl::splice(const torch::Tensor& input_ids, const torch::Tensor& labels,
                                     const torch::Tensor& attention_mask, const torch::Tensor& image_rows,
                                     SplicePadding padding, int64_t max_length) {
  // The sentinel's own embedding row is never read: any id in the vocabulary can stand in for the lookup.
  const auto ids = input_ids.masked_fill(input_ids == kImageSentinel, 0);
  std::vector<torch::Tensor> images;
  if (image_rows.defined()) {
    PATHVLM_CHECK(image_rows.dim() == 3, "llava: expected image rows [N, T, ", text_hidden(), "], got ",
                  image_rows.sizes());
    images = image_rows.unbind(0);
  }
  return splice_images(language_model->embed(ids), input_ids, labels, attention_mask, images, padding, max_length);
}

SplicedInputs LlavaModelImpl::prompt_embeds(const std::vector<std::vector<int64_t>>& prompts,
                                            const torch::Tensor& image_rows) {
  PATHVLM_CHECK(!prompts.empty(), "llava: no prompts");
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  const auto B = static_cast<int64_t>(prompts.size()), L = static_cast<int64_t>(longest);
  auto ids = torch::zeros({B, L}, torch::kLong);
  auto keep = torch::zeros({B, L}, torch::kBool);
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = prompts[static_cast<size_t>(b)];
    PATHVLM_CHECK(!p.empty(), "llava: prompt ", b, " has no tokens");
    const auto n = static_cast<int64_t>(p.size());
    ids[b].narrow(0, 0, n).copy_(torch::tensor(p, torch::kLong));
    keep[b].narrow(0, 0, n).fill_(true);
  }
  const auto device = language_model->model->embed_tokens->weight.device();
  return splice(ids.to(device), {}, keep.to(device), image_rows, SplicePadding::left);
}

LlavaLoss LlavaModelImpl::forward(const LlavaBatch& batch, int64_t max_length) {
  PATHVLM_CHECK(!(batch.pixels.defined() && batch.features.defined()),
                "llava: a batch carries either pixels or precomputed features, not both");
  PATHVLM_CHECK(batch.labels.defined(), "llava: the training loss needs labels");
  const auto& lm_weight = language_model->model->embed_tokens->weight;
  torch::Tensor features;
  if (batch.features.defined()) {
    features = batch.features;
  } else if (batch.pixels.defined() && batch.pixels.size(0) > 0) {
    features = image_features(batch.pixels);
  } else {
    features = torch::zeros({0, image_tokens(), vision_hidden()}, lm_weight.options().requires_grad(false));
  }
  const auto rows = project(features);
  auto in = splice(batch.input_ids, batch.labels, batch.attention_mask, rows, SplicePadding::right, max_length);
  auto embeds = in.embeds;
  // No images: the projector's (empty) output still joins the graph, so its parameters get zero gradients.
  if (rows.size(0) == 0 && rows.requires_grad()) embeds = embeds + rows.sum().to(embeds.scalar_type()) * 0;

  // Right padding: every valid row starts at position 0 and no valid query sees a padding key under causality, so
  // the plain causal pass (no mask, positions 0..L'-1) computes exactly what the mask and position_ids describe.
  const auto hidden = language_model->model->forward(embeds);
  PATHVLM_CHECK(hidden.size(1) > 0, "llava: the batch has no valid tokens");
  const auto steps = std::max<int64_t>(hidden.size(1) - 1, 0);
  const auto targets = in.labels.narrow(1, 1, steps);
  const auto supervised = targets != kIgnoreIndex;
  // The head runs on the supervised rows only: the [B, L', vocab] logits of a whole batch are never formed.
  const auto logits = language_model->head(hidden.narrow(1, 0, steps).index({supervised})).to(torch::kFloat);
  const auto wanted = targets.index({supervised});
  LlavaLoss loss;
  loss.sum = torch::nn::functional::cross_entropy(
      logits, wanted, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  loss.tokens = wanted.size(0);
  return loss;
}

}  // namespace pathvlm::models
