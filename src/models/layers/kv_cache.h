// The keys and values one attention layer has seen so far during incremental decoding, so that each new step
// projects only its own tokens and attends over the whole prefix. One cache per layer and sequence batch.
//
//   std::vector<models::KvCache> caches(num_layers);
//   for each step: inputs.cache = &caches[i]; h = layer->forward(h_step, inputs);
#pragma once
#include <torch/torch.h>

#include <utility>

namespace pathvlm::models {

class KvCache {
 public:
  // Appends this step's keys and values [B, kv_heads, L, head_dim] (after RoPE, before the GQA repeat) and
  // returns everything cached so far, [B, kv_heads, S, head_dim].
  std::pair<torch::Tensor, torch::Tensor> append(const torch::Tensor& keys, const torch::Tensor& values);

  // Cached steps (tokens) so far: the position of the next token.
  int64_t length() const { return keys_.defined() ? keys_.size(2) : 0; }
  void clear();

 private:
  torch::Tensor keys_, values_;
};

}  // namespace pathvlm::models
