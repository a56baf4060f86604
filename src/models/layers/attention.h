// Multi-head self-attention through compat::scaled_dot_product_attention (the fused kernel on libtorch 2.x),
// with grouped-query attention, optional RoPE on q/k, an optional mask and a KV cache for incremental decoding.
// The projections' registered names are options so that checkpoints load by name: CLIP keeps HF's
// self_attn.{q,k,v,out}_proj, LLaMA uses self_attn.{q,k,v,o}_proj.
//
//   models::Attention attn(models::AttentionOptions(512, 8).kv_heads(2).bias(false).causal(true));
//   auto y = attn(x);                                   // x [B, L, width] -> [B, L, width]
//   models::AttentionInputs in; in.rope = &cos_sin; in.cache = &cache;
//   auto y_step = attn(x_step, in);
#pragma once
#include <torch/torch.h>

#include <array>
#include <optional>
#include <string>

#include "models/layers/kv_cache.h"
#include "models/layers/linear.h"
#include "models/layers/norm.h"
#include "models/layers/rope.h"

namespace pathvlm::models {

struct AttentionOptions {
  AttentionOptions(int64_t width, int64_t heads) : width_(width), heads_(heads) {}
  TORCH_ARG(int64_t, width);
  TORCH_ARG(int64_t, heads);
  // Key/value heads (GQA); 0 = heads. Each K/V head serves heads / kv_heads consecutive query heads.
  TORCH_ARG(int64_t, kv_heads) = 0;
  // 0 = width / heads.
  TORCH_ARG(int64_t, head_dim) = 0;
  TORCH_ARG(bool, bias) = true;
  // The output projection's bias, where `bias` is on (Qwen2 has biases on q/k/v only).
  TORCH_ARG(bool, out_bias) = true;
  // > 0: each head's q and k RMS-normalised over head_dim with this eps before the rotation (Qwen3's q_norm and
  // k_norm, one weight of head_dim each, shared by the heads).
  TORCH_ARG(double, qk_norm_eps) = 0.0;
  // Each query sees only keys at its own position or before (the default of forward; AttentionInputs may
  // override it per call).
  TORCH_ARG(bool, causal) = false;
  TORCH_ARG(std::string, q_name) = "q_proj";
  TORCH_ARG(std::string, k_name) = "k_proj";
  TORCH_ARG(std::string, v_name) = "v_proj";
  TORCH_ARG(std::string, out_name) = "out_proj";
  // q, k and v from one GEMM over their weights concatenated per call (one kernel and one read of x instead of
  // three), a LoRA adapter's term added to its projection's part, when x has at least `width` rows (so the copy
  // of the weights is small next to the product). The parameters stay separate, so checkpoints keep their names
  // and LoRA can target each projection.
  TORCH_ARG(bool, fused_qkv) = true;
};

// Per-call extras of forward(); all optional.
struct AttentionInputs {
  // Overrides AttentionOptions::causal (CLIP's shared block type is causal in the text tower only).
  std::optional<bool> causal;
  // Additive (float) or keep (bool, true = attend) mask broadcastable to [B, heads, L, S], S = keys attended.
  torch::Tensor mask;
  // Rotation applied to q and k of this call's tokens (positions of these L tokens).
  const RopeCosSin* rope = nullptr;
  // This call's K/V are appended to the cache and the queries attend over all cached keys; with causal,
  // query i sits at position cache_length_before + i.
  KvCache* cache = nullptr;
};

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const AttentionOptions& options);
  torch::Tensor forward(const torch::Tensor& x, const AttentionInputs& inputs = {});
  // q, k and v of x, each [B, L, its heads * head_dim].
  std::array<torch::Tensor, 3> project_qkv(const torch::Tensor& x);

  AttentionOptions options;
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  // with qk_norm_eps only
};
TORCH_MODULE(Attention);

// [B, kv_heads, S, D] -> [B, kv_heads * repeats, S, D], each K/V head repeated for its group of query heads
// (HF's repeat_kv). repeats == 1 returns the tensor itself.
torch::Tensor repeat_kv_heads(const torch::Tensor& kv, int64_t repeats);

}  // namespace pathvlm::models
