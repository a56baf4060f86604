// Contrastive losses for CLIP training across ranks: symmetric InfoNCE (open_clip's local-loss form with
// gather-with-grad) and the SigLIP sigmoid loss.
//
//   auto feats = gather_with_grad(torch::cat({img, txt}, 1), comm);   // done inside the losses
//   auto loss = clip_loss(img_normed, txt_normed, model.logit_scale, comm);
//   loss.backward();   // then average parameter gradients over ranks (the Reducer does)
//
// Gradient convention: each rank's loss is the mean over its *local* rows against *all* ranks' columns.
// The gather's backward all-reduces (sums) the incoming gradient, so a rank's feature gradient is the
// gradient of the *sum* of all ranks' losses; after the usual average of parameter gradients over ranks,
// parameters get exactly the gradient of one process holding the global batch (tests/clip/loss_*.cpp).
#pragma once
#include <torch/torch.h>

#include <functional>
#include <utility>

#include "dist/comm.h"

namespace pathvlm::losses {

// Concatenation over ranks of `x` along dim 0 (every rank passes the same shape), differentiable:
// backward sums the incoming gradient over ranks and returns this rank's rows. `comm` may be null
// (one process): then `x` itself is returned.
torch::Tensor gather_with_grad(const torch::Tensor& x, dist::Comm* comm);

// Symmetric InfoNCE. `image`, `text`: [B, D] L2-normalised features of this rank's B pairs;
// `log_scale`: the learnable log temperature (exp'd here). Rows are this rank's, columns all ranks';
// the positive of local row i is global column rank*B + i. Returns (CE_image + CE_text) / 2.
torch::Tensor clip_loss(const torch::Tensor& image, const torch::Tensor& text, const torch::Tensor& log_scale,
                        dist::Comm* comm);

// SigLIP: -sum_ij logsigmoid(y_ij * (exp(log_scale) * <img_i, txt_j> + bias)) / B over this rank's image
// rows i and all ranks' text columns j, y = +1 on the positive pair and -1 elsewhere.
torch::Tensor siglip_loss(const torch::Tensor& image, const torch::Tensor& text, const torch::Tensor& log_scale,
                          const torch::Tensor& bias, dist::Comm* comm);

// Contrastive-correct gradient accumulation over k micro-batches (open_clip's --accum-freq feature cache):
// pass 1 encodes every micro-batch without grad; pass 2 re-encodes micro-batch j with grad and back-props
// the loss over all k micro-batches' features (the other k-1 taken from the cache). The summed gradients
// equal those of one pass over the whole batch, at about two forwards per sample; k = 1 is one plain pass.
//   encode(j)                        -> (image, text) L2-normalised features of micro-batch j
//   loss_of(image, text, scale_grad) -> loss over the concatenated features; the temperature (and bias)
//                                       must carry gradient only when scale_grad (true once per step: on
//                                       the last micro-batch, whose backward is the synchronising one)
//   before_backward(j)               -> called before each backward (arm gradient sync on the last one)
// Returns the step's loss, detached.
using MicroEncoder = std::function<std::pair<torch::Tensor, torch::Tensor>(size_t micro)>;
using FeatureLoss = std::function<torch::Tensor(const torch::Tensor& image, const torch::Tensor& text, bool scale_grad)>;
torch::Tensor feature_cache_step(size_t micro_batches, const MicroEncoder& encode, const FeatureLoss& loss_of,
                                 const std::function<void(size_t micro)>& before_backward);

// Initial values of the learnable temperature / bias (open_clip): CLIP ln(1/0.07); SigLIP ln(10), -10.
double clip_initial_log_scale();
double siglip_initial_log_scale();
double siglip_initial_bias();
// Upper clamp of the log temperature after every optimizer step: ln(100).
double max_log_scale();

}  // namespace pathvlm::losses
