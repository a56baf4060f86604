#include "train/contrastive_head.h"

#include "dist/reducer.h"
#include "losses/contrastive.h"

namespace pathvlm::train {

ContrastiveHead::ContrastiveHead(torch::nn::Module& model, torch::Tensor log_scale, const std::string& loss, bool fresh)
    : loss_(loss), log_scale_(std::move(log_scale)) {
  if (loss_ != "siglip") return;
  torch::NoGradGuard no_grad;
  if (fresh) log_scale_.fill_(losses::siglip_initial_log_scale());
  bias_ = model.register_parameter("logit_bias", torch::tensor(losses::siglip_initial_bias(), torch::kFloat));
}

torch::Tensor ContrastiveHead::loss(const torch::Tensor& a, const torch::Tensor& b, bool scale_grad,
                                    dist::Comm* comm) const {
  auto scale = scale_grad ? log_scale_ : log_scale_.detach();
  if (loss_ == "siglip") return losses::siglip_loss(a, b, scale, scale_grad ? bias_ : bias_.detach(), comm);
  return losses::clip_loss(a, b, scale, comm);
}

void ContrastiveHead::clamp() const {
  torch::NoGradGuard no_grad;
  log_scale_.clamp_(0.0, losses::max_log_scale());
}

StepOutput ContrastiveHead::step(const std::vector<Batch>& micro, StepContext& ctx, const PairEncoder& encode) const {
  clamp();
  auto loss_value = losses::feature_cache_step(
      micro.size(), [&](size_t j) { return encode(micro[j]); },
      [&](const torch::Tensor& a, const torch::Tensor& b, bool scale_grad) { return loss(a, b, scale_grad, &ctx.comm); },
      [&](size_t j) { ctx.reducer.prepare_backward(/*sync=*/j + 1 == micro.size()); });
  ctx.reducer.finish_backward();
  StepOutput out;
  out.loss = loss_value;
  out.metrics["logit_scale"] = log_scale_.detach().exp().to(torch::kFloat);
  if (bias_.defined()) out.metrics["logit_bias"] = bias_.detach().to(torch::kFloat);
  return out;
}

}  // namespace pathvlm::train
