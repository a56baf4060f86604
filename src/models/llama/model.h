// LLaMA-family causal language model (LLaMA 1/2, Vicuna, TinyLlama) on the shared layers, with Hugging Face's
// parameter names so HF checkpoints load by name:
//   model.embed_tokens.weight, model.layers.{i}.self_attn.{q,k,v,o}_proj.*, model.layers.{i}.mlp.{gate,up,down}_proj.*,
//   model.layers.{i}.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight (absent when tied).
//
//   models::LlamaForCausalLM lm(models::llama_preset("tiny"));
//   auto logits = lm->forward(tokens);                        // [B, T] int64 -> [B, T, vocab], causal
//   // incremental decoding (see src/generate): one KvCache per layer
//   auto caches = lm->make_caches();
//   models::LlamaInputs in; in.caches = &caches; in.attention_mask = keep;   // keep [B, S] (left padding)
//   auto prefill = lm->forward(prompt, in);  auto next = lm->forward(step_tokens, in);
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "models/layers/kv_cache.h"
#include "models/layers/linear.h"
#include "models/layers/rope.h"
#include "models/llama/config.h"

namespace pathvlm::models {

// Per-call extras of forward(); all optional.
struct LlamaInputs {
  // [B, T] or [T] int64 positions of this call's tokens (RoPE). Default: the cache length + 0..T-1, or, with a
  // [B, S] attention_mask, each row's count of kept tokens before it (HF's cumsum rule for left padding).
  torch::Tensor position_ids;
  // Either [B, S] bool/int keep flags of every key (S = cached + T; 0 = padding), combined with causality, or a
  // full [B, 1, T, S] bool keep mask used as is (packed documents: block-diagonal causal). Absent: causal only.
  torch::Tensor attention_mask;
  // One cache per layer (make_caches()); this call's keys and values are appended.
  std::vector<KvCache>* caches = nullptr;
};

struct LlamaOptions {
  // Recompute each decoder layer in backward (train.activation_checkpointing lists "layers").
  bool checkpoint_layers = false;
  // Draw the initial weights (normal(0, initializer_range), zero biases, unit norms). Loaders that overwrite
  // every tensor turn this off.
  bool init_weights = true;
  // Called with each top-level piece right after it is built, before the next one is allocated, with its
  // parameter-name prefix ("model.embed_tokens", "model.layers.3", "model.norm", "lm_head"). load_llama puts the
  // checkpoint's tensors there, so a load peaks at the loaded model plus one piece, never a whole fp32 model.
  std::function<void(const std::string& prefix, torch::nn::Module& piece)> on_built;
};

class LlamaModelImpl : public torch::nn::Module {
 public:
  LlamaModelImpl(const LlamaConfig& config, const LlamaOptions& options);
  // Input embeddings [B, T, H] (tokens embedded, or image rows spliced in by a multimodal model) -> final-norm
  // hidden states [B, T, H].
  torch::Tensor forward(const torch::Tensor& embeds, const LlamaInputs& inputs = {});

  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  torch::nn::AnyModule norm;

 private:
  LlamaConfig config_;
  LlamaOptions options_;
  RotaryEmbedding rope_;
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  explicit LlamaForCausalLMImpl(const LlamaConfig& config, const LlamaOptions& options = {});
  // tokens [B, T] int64 -> logits [B, T, vocab].
  torch::Tensor forward(const torch::Tensor& tokens, const LlamaInputs& inputs = {});
  // The same from input embeddings [B, T, H].
  torch::Tensor forward_embeds(const torch::Tensor& embeds, const LlamaInputs& inputs = {});
  torch::Tensor embed(const torch::Tensor& tokens);
  // Hidden states [.., H] -> logits [.., vocab] (the embedding matrix when tied).
  torch::Tensor head(const torch::Tensor& hidden);

  std::vector<KvCache> make_caches() const;
  const LlamaConfig& config() const { return config_; }

  LlamaModel model{nullptr};
  Linear lm_head{nullptr};  // null when tie_word_embeddings

 private:
  LlamaConfig config_;
};
TORCH_MODULE(LlamaForCausalLM);

}  // namespace pathvlm::models
