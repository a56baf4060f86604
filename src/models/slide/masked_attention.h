// Multi-head attention of query tokens over a padded bag of key/value tokens, memory-linear in the bag
// (models/slide/chunked_attention.h): the tile transformer's self-attention (queries = keys = the tiles and the
// CLS token) and the Q-Former's cross-attention (learned queries over the tiles) and self-attention.
//
//   models::slide::MaskedAttention attn(/*width=*/256, /*heads=*/4, /*chunk=*/1024);
//   auto y = attn(x, x, mask);           // x [B, N, 256], mask [B, N] bool (true = real) -> [B, N, 256]
//   auto z = attn(queries, tiles, mask); // queries [B, Q, 256] -> [B, Q, 256]
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"

namespace pathvlm::models::slide {

class MaskedAttentionImpl : public torch::nn::Module {
 public:
  MaskedAttentionImpl(int64_t width, int64_t heads, int64_t chunk);
  // key_mask undefined = every key is real.
  torch::Tensor forward(const torch::Tensor& queries, const torch::Tensor& keys_values,
                        const torch::Tensor& key_mask = {});

  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  int64_t heads_, chunk_;
};
TORCH_MODULE(MaskedAttention);

}  // namespace pathvlm::models::slide
