#include "train/slide/conch_zeroshot.h"

#include "core/error.h"
#include "io/safetensors.h"
#include "models/conch/weights.h"

namespace pathvlm::train {

namespace F = torch::nn::functional;

ConchSlideZeroShot::ConchSlideZeroShot(const std::string& path, const std::string& vocab, bool projected,
                                       torch::Device device)
    : device_(device) {
  auto tower = models::load_conch_text(path);  // v1.5 has no text tower, and its error says so
  text_ = tower.model;
  logit_scale_ = tower.logit_scale;
  tokenizer_ = models::open_conch_tokenizer(path, vocab);
  modules_ = std::make_shared<torch::nn::Module>("Conch");
  modules_->register_module("text", text_);
  const int64_t embed = text_->config().embed_dim;
  if (!projected) {
    const auto ckpt = safetensors::Checkpoint::open(path);
    PATHVLM_CHECK(ckpt.contains("visual.proj_contrast"), "CONCH '", path, "' has no visual.proj_contrast to project ",
                  "its pooled tile features with");
    projection_ = ckpt.get("visual.proj_contrast").to(torch::kFloat);
    PATHVLM_CHECK(projection_.dim() == 2 && projection_.size(1) == embed, "CONCH '", path,
                  "': visual.proj_contrast is ", projection_.sizes(), ", not [pooled width, ", embed, "]");
    projection_ = projection_.to(device_);
  }
  modules_->to(device_);
}

int64_t ConchSlideZeroShot::feature_dim() const {
  return projection_.defined() ? projection_.size(0) : text_->config().embed_dim;
}

void ConchSlideZeroShot::set_classes(const eval::ZeroShotSpec& spec, int64_t batch_size) {
  classifier_ = eval::zeroshot_classifier(spec, [&](const std::vector<std::string>& texts) {
    std::vector<torch::Tensor> parts;
    for (size_t i = 0; i < texts.size(); i += static_cast<size_t>(batch_size)) {
      const auto end = texts.begin() + static_cast<std::ptrdiff_t>(std::min(texts.size(), i + batch_size));
      parts.push_back(text_->encode(*tokenizer_, {texts.begin() + static_cast<std::ptrdiff_t>(i), end}).cpu());
    }
    return torch::cat(parts).to(torch::kFloat);
  }).to(device_);
}

torch::Tensor ConchSlideZeroShot::slide_scores(const torch::Tensor& features, const std::vector<int64_t>& topj) const {
  PATHVLM_CHECK(classifier_.defined(), "ConchSlideZeroShot: set_classes first");
  auto tiles = features.to(device_, torch::kFloat);
  if (projection_.defined()) tiles = tiles.matmul(projection_);
  const auto scores = F::normalize(tiles, F::NormalizeFuncOptions().dim(1)).matmul(classifier_.t());
  std::vector<torch::Tensor> pooled;
  for (const int64_t j : topj) pooled.push_back(eval::topj_pooled(scores, j));
  return torch::stack(pooled);
}

}  // namespace pathvlm::train
