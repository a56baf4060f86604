// Softmax attention over long bags without the L x S score matrix: memory grows linearly with the bag.
//
//   auto out = models::slide::chunked_attention(q, k, v, key_mask, /*chunk=*/1024);   // CPU (any device)
//   auto out = models::slide::memory_linear_attention(q, k, v, key_mask, 1024);       // fused SDPA on CUDA + 2.x
//
// q [B, H, L, d], k and v [B, H, S, d], key_mask [B, S] bool (true = attend; undefined = all keys).
// out [B, H, L, d] = softmax(q k^T / sqrt(d), masked keys excluded) v, in q's dtype. A query whose keys are all
// masked gets zeros from chunked_attention (NaN from the fused kernel; the slide encoders never ask for one).
//
// chunked_attention is a custom autograd function in the flash-attention style: the forward keeps a running
// max and sum per query row over key chunks (online softmax) for each chunk of queries, and saves only q, k,
// v, the output and the per-row log-sum-exp; the backward recomputes each chunk's probabilities from those.
// Peak extra memory is O(B H chunk^2), forward and backward. Accumulation is in fp32 (fp64 for fp64 inputs).
#pragma once
#include <torch/torch.h>

namespace pathvlm::models::slide {

torch::Tensor chunked_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                const torch::Tensor& key_mask, int64_t chunk);

// The fused scaled_dot_product_attention (memory-efficient kernel, key-padding mask as [B, 1, 1, S]) for CUDA
// tensors on libtorch 2.x; chunked_attention everywhere else (libtorch 1.13's SDPA is the dense formula).
torch::Tensor memory_linear_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                                      const torch::Tensor& key_mask, int64_t chunk);

}  // namespace pathvlm::models::slide
