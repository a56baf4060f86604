// CLIP: a ViT image tower and a causal text transformer projected into one embedding space.
//
// The registered module and parameter names are exactly those of Hugging Face `transformers.CLIPModel`,
// so a model's named_parameters() *is* an HF state dict:
//   vision_model.embeddings.{class_embedding, patch_embedding.weight, position_embedding.weight}
//   vision_model.pre_layrnorm.*  (sic, as HF spells it)   vision_model.post_layernorm.*
//   {vision,text}_model.encoder.layers.N.{self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2}.*
//   text_model.embeddings.{token_embedding, position_embedding}.weight   text_model.final_layer_norm.*
//   visual_projection.weight   text_projection.weight   logit_scale
//
//   ClipModel model(resolve_clip_config(cfg));
//   auto img = model->encode_image(pixels);   // [B,3,S,S] OpenAI-normalised -> [B,embed] (not normalised)
//   auto txt = model->encode_text(ids);       // [B,L] int64 CLIP BPE ids -> [B,embed]
#pragma once
#include <torch/torch.h>

#include "models/clip/config.h"
#include "models/layers/transformer_block.h"

namespace pathvlm::models {

// An encoder layer of either tower: the shared pre-norm block with HF CLIPEncoderLayer's children
// (self_attn.{q,k,v,out}_proj, layer_norm1, mlp.{fc1,fc2}, layer_norm2); causal in the text tower.
class ClipEncoderLayerImpl : public TransformerBlockImpl {
 public:
  ClipEncoderLayerImpl(int width, int heads, int mlp_dim, const std::string& act, double eps);
  torch::Tensor forward(const torch::Tensor& x, bool causal);
};
TORCH_MODULE(ClipEncoderLayer);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  ClipEncoderImpl(int layers, int width, int heads, int mlp_dim, const std::string& act, double eps);
  // Runs the first `num_layers` blocks (all when negative); each block recomputed in backward when
  // activation checkpointing is on and autograd is recording.
  torch::Tensor forward(const torch::Tensor& x, bool causal, int num_layers = -1);

  torch::nn::ModuleList layers{nullptr};
  bool checkpointing = false;
};
TORCH_MODULE(ClipEncoder);

class ClipVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  ClipVisionEmbeddingsImpl(int width, int image_size, int patch_size);
  torch::Tensor forward(const torch::Tensor& pixels);  // [B,3,S,S] -> [B,1+P,width]

  torch::Tensor class_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};

 private:
  int image_size_;
};
TORCH_MODULE(ClipVisionEmbeddings);

class ClipVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipVisionTransformerImpl(const ClipModelConfig& c);
  // HF's hidden_states[select_layer] [B,1+P,width]: 0 = embeddings after pre_layrnorm, k = after block k,
  // negative counts from the end (-1 = last block, before post_layernorm). Only the blocks needed run.
  torch::Tensor hidden_state(const torch::Tensor& pixels, int select_layer);

  ClipVisionEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(ClipVisionTransformer);

class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  ClipTextEmbeddingsImpl(int vocab_size, int width, int context_length);
  torch::Tensor forward(const torch::Tensor& ids);  // [B,L] -> [B,L,width]

  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipTextTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipTextTransformerImpl(const ClipModelConfig& c);
  // [B,L] int64 ids -> [B,text_width]: final_layer_norm at the eot token (the argmax id, as HF and open_clip
  // pool), before text_projection.
  torch::Tensor pooled(const torch::Tensor& ids);

  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(ClipTextTransformer);

class ClipModelImpl : public torch::nn::Module {
 public:
  // `config` is resolved here (presets filled in); config() returns the resolved one. Without init_weights the
  // parameters are left as allocated, for a loader that overwrites every one of them.
  explicit ClipModelImpl(const ClipModelConfig& config, bool init_weights = true);

  // [B,3,S,S] normalised pixels -> [B,embed]: post_layernorm(class token) @ visual_projection.
  torch::Tensor encode_image(const torch::Tensor& pixels);
  // [B,L] int64 ids (L <= context_length) -> [B,embed]: final_layer_norm at the eot token (the argmax id,
  // as HF and open_clip pool) @ text_projection.
  torch::Tensor encode_text(const torch::Tensor& ids);
  // Hidden states [B,1+P,vision_width] of the image tower, indexed like HF's `hidden_states`:
  // 0 = embeddings after pre_layrnorm, k = after block k, -1 = last (HF last_hidden_state, before
  // post_layernorm), -2 = the penultimate block's output (LLaVA's mm_vision_select_layer).
  torch::Tensor image_tokens(const torch::Tensor& pixels, int select_layer = -1);

  // Recompute each encoder block in backward instead of storing its activations (both towers).
  void set_activation_checkpointing(bool on);
  // Freezes the image tower and visual_projection except the last `unlocked_last_blocks` encoder blocks
  // and, when that is >= 1, everything after them (post_layernorm, visual_projection). open_clip's
  // --lock-image-unlocked-groups G >= 2 is unlocked_last_blocks = G - 1.
  void lock_image(int unlocked_last_blocks = 0);
  // The same for the text tower and text_projection (final_layer_norm and text_projection stay trainable
  // when unlocked_last_layers >= 1).
  void lock_text(int unlocked_last_layers = 0);

  const ClipModelConfig& config() const { return config_; }

  ClipVisionTransformer vision_model{nullptr};
  ClipTextTransformer text_model{nullptr};
  torch::nn::Linear visual_projection{nullptr}, text_projection{nullptr};
  torch::Tensor logit_scale;  // scalar, init ln(1/0.07); the loss uses exp(logit_scale)

 private:
  ClipModelConfig config_;
};
TORCH_MODULE(ClipModel);

// CLIP's parameter initialisation (normal std 0.02 embeddings, scaled std for projections as HF's
// CLIPPreTrainedModel._init_weights with initializer_factor 1) from torch's global generator.
void init_clip_weights(ClipModelImpl& model);
// The text half of it: a text tower and its projection (shared by models that pair the CLIP text tower with
// another encoder).
void init_clip_text_weights(ClipTextTransformerImpl& text, torch::nn::Linear& projection, const ClipModelConfig& c);

// Parameter count, optionally only the trainable ones.
int64_t count_parameters(torch::nn::Module& module, bool trainable_only = false);

}  // namespace pathvlm::models
