// Contrastive losses over ranks; see clip_loss.h for the gradient convention.
#include "losses/contrastive.h"

#include <cmath>
#include <cstdint>
#include <tuple>
#include <vector>

#include "core/error.h"

namespace pathvlm::losses {
namespace {

// The Comm travels through the autograd context as an integer: IValue has no slot for a raw pointer,
// and the Comm outlives every graph built during a step.
class GatherWithGrad : public torch::autograd::Function<GatherWithGrad> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, dist::Comm* comm) {
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    ctx->saved_data["rows"] = x.size(0);
    auto in = x.contiguous();
    auto sizes = in.sizes().vec();
    sizes[0] *= comm->world_size();
    auto out = torch::empty(sizes, in.options());
    comm->allgather(in, out);
    return out;
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto* comm = reinterpret_cast<dist::Comm*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    const int64_t rows = ctx->saved_data["rows"].toInt();
    // Every rank's loss depends on every rank's rows: sum the gradients, keep our own slice.
    auto g = grads[0].contiguous().clone();
    comm->allreduce(g, dist::ReduceOp::Sum);
    return {g.narrow(0, comm->rank() * rows, rows), torch::Tensor()};
  }
};

int64_t rank_of(dist::Comm* comm) { return comm ? comm->rank() : 0; }

void check_pair(const torch::Tensor& image, const torch::Tensor& text, const char* loss) {
  PATHVLM_CHECK(image.dim() == 2 && text.dim() == 2, loss, ": features must be [batch, dim], got image ",
                image.sizes(), " and text ", text.sizes());
  PATHVLM_CHECK(image.sizes() == text.sizes(), loss, ": image features ", image.sizes(),
                " and text features ", text.sizes(), " differ in shape");
  PATHVLM_CHECK(image.size(0) > 0, loss, ": empty batch");
}

// Gathers image and text features in one collective (one all-reduce in backward, same order on every rank).
std::pair<torch::Tensor, torch::Tensor> gather_pair(const torch::Tensor& image, const torch::Tensor& text,
                                                    dist::Comm* comm) {
  const int64_t d = image.size(1);
  auto both = gather_with_grad(torch::cat({image, text}, 1), comm);
  return {both.narrow(1, 0, d), both.narrow(1, d, d)};
}

}  // namespace

torch::Tensor gather_with_grad(const torch::Tensor& x, dist::Comm* comm) {
  if (!comm || comm->world_size() == 1) return x;
  return GatherWithGrad::apply(x, comm);
}

torch::Tensor clip_loss(const torch::Tensor& image_in, const torch::Tensor& text_in, const torch::Tensor& log_scale,
                        dist::Comm* comm) {
  check_pair(image_in, text_in, "clip loss");
  // Logits and softmax in fp32 whatever the towers ran in.
  auto image = image_in.to(torch::kFloat), text = text_in.to(torch::kFloat);
  auto [all_image, all_text] = gather_pair(image, text, comm);
  const int64_t b = image.size(0);
  auto scale = log_scale.to(torch::kFloat).exp();
  auto logits_per_image = scale * image.matmul(all_text.t());
  auto logits_per_text = scale * text.matmul(all_image.t());
  auto labels = torch::arange(b, torch::TensorOptions().dtype(torch::kLong).device(image.device())) + rank_of(comm) * b;
  return (torch::nn::functional::cross_entropy(logits_per_image, labels) +
          torch::nn::functional::cross_entropy(logits_per_text, labels)) /
         2;
}

torch::Tensor siglip_loss(const torch::Tensor& image_in, const torch::Tensor& text_in, const torch::Tensor& log_scale,
                          const torch::Tensor& bias, dist::Comm* comm) {
  check_pair(image_in, text_in, "siglip loss");
  auto image = image_in.to(torch::kFloat), text = text_in.to(torch::kFloat);
  auto all_text = gather_pair(image, text, comm).second;
  const int64_t b = image.size(0);
  auto logits = log_scale.to(torch::kFloat).exp() * image.matmul(all_text.t()) + bias.to(torch::kFloat);
  // y = -1 everywhere except +1 on this rank's diagonal block.
  auto signs = -torch::ones_like(logits);
  signs.narrow(1, rank_of(comm) * b, b).diagonal().fill_(1.0);
  return -torch::log_sigmoid(signs * logits).sum() / b;
}

torch::Tensor feature_cache_step(size_t micro_batches, const MicroEncoder& encode, const FeatureLoss& loss_of,
                                 const std::function<void(size_t micro)>& before_backward) {
  PATHVLM_CHECK(micro_batches >= 1, "feature-cache accumulation: needs at least one micro-batch");
  if (micro_batches == 1) {
    auto [image, text] = encode(0);
    auto loss = loss_of(image, text, true);
    before_backward(0);
    loss.backward();
    return loss.detach();
  }
  std::vector<torch::Tensor> images(micro_batches), texts(micro_batches);
  {
    torch::NoGradGuard no_grad;
    for (size_t j = 0; j < micro_batches; ++j) std::tie(images[j], texts[j]) = encode(j);
  }
  torch::Tensor step_loss;
  for (size_t j = 0; j < micro_batches; ++j) {
    const bool last = j + 1 == micro_batches;
    auto cached_image = images[j], cached_text = texts[j];
    std::tie(images[j], texts[j]) = encode(j);  // the live slot, with grad
    // The temperature's gradient is taken once, in the last pass: every trainable parameter then gets a
    // gradient in the synchronising backward, as the Reducer requires.
    auto loss = loss_of(torch::cat(images), torch::cat(texts), last);
    before_backward(j);
    loss.backward();
    step_loss = loss.detach();  // the same value in every pass
    images[j] = cached_image, texts[j] = cached_text;  // drop the live slot before encoding the next one
  }
  return step_loss;
}

double clip_initial_log_scale() { return std::log(1.0 / 0.07); }
double siglip_initial_log_scale() { return std::log(10.0); }
double siglip_initial_bias() { return -10.0; }
double max_log_scale() { return std::log(100.0); }

}  // namespace pathvlm::losses
