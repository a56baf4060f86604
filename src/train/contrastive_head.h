// What the contrastive tasks (clip, slide) share: the learnable temperature (and SigLIP's bias) of a two-tower model,
// the loss they parametrise across ranks, and one optimizer step over micro-batches with the feature cache
// (losses/contrastive.h), so the step's loss is over the whole global batch.
//
//   head_ = ContrastiveHead(*model_, model_->logit_scale, cfg.loss, /*fresh=*/cfg.pretrained.empty());
//   StepOutput out = head_.step(micro, ctx, [&](const Batch& b) { return encode(b); });  // L2-normalised pairs
//
// The temperature is clamped to [0, ln 100] at the start of every step (the clamp that follows the previous
// optimizer step) and by clamp() before anything else reads it (evaluation, checkpoints, the export).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "train/task.h"

namespace pathvlm::train {

class ContrastiveHead {
 public:
  using PairEncoder = std::function<std::pair<torch::Tensor, torch::Tensor>(const Batch&)>;

  ContrastiveHead() = default;
  // `loss`: clip (symmetric InfoNCE) or siglip, which registers "logit_bias" on `model` and, when `fresh` (no
  // pretrained temperature), starts `log_scale` at SigLIP's value.
  ContrastiveHead(torch::nn::Module& model, torch::Tensor log_scale, const std::string& loss, bool fresh);

  // The loss of this rank's normalised pairs against all ranks'; the temperature (and bias) get gradient only when
  // `scale_grad`.
  torch::Tensor loss(const torch::Tensor& a, const torch::Tensor& b, bool scale_grad, dist::Comm* comm) const;
  void clamp() const;
  // Forward + backward of one optimizer step (Task::forward_backward), with logit_scale (and logit_bias) metrics.
  StepOutput step(const std::vector<Batch>& micro, StepContext& ctx, const PairEncoder& encode) const;

 private:
  std::string loss_ = "clip";
  torch::Tensor log_scale_, bias_;
};

}  // namespace pathvlm::train
