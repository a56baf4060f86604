// Activation checkpointing: run a piece of a model without keeping its activations, and recompute them in
// backward (the reentrant scheme of torch.utils.checkpoint). RNG-correct: the CPU and CUDA generator states
// and the autocast state of the forward are restored for the recomputation, so dropout masks are identical.
//
//   x = models::checkpoint([&](const torch::Tensor& h) { return block->forward(h); }, x);
//
// Parameters used inside `fn` get their gradients accumulated during the recomputation (their gradient hooks,
// e.g. the Reducer's, fire then, once per backward as usual). `fn` must be deterministic given the RNG state
// and must not modify its inputs in place. Under no-grad mode this is a plain call.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

namespace pathvlm::models {

using TensorsFn = std::function<std::vector<torch::Tensor>(const std::vector<torch::Tensor>&)>;

std::vector<torch::Tensor> checkpoint(TensorsFn fn, const std::vector<torch::Tensor>& inputs);
torch::Tensor checkpoint(std::function<torch::Tensor(const torch::Tensor&)> fn, const torch::Tensor& input);

// True when `name` is listed in train.activation_checkpointing (or the list holds "all").
bool checkpointing_enabled(const std::vector<std::string>& names, const std::string& name);

}  // namespace pathvlm::models
