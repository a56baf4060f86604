// A VisionTransformer as pathology tile encoders publish it: timm's (UNI, UNI2-h, Virchow / Virchow2, Prov-GigaPath,
// H-optimus) and transformers' ViTModel / Dinov2Model (Phikon, Phikon-v2, Midnight). Inference only (a frozen
// encoder for `pathvlm embed`):
//   tokens   = norm(blocks([class token, register tokens, patches] + position embeddings))
//   features = the pooled tokens: the class token ("token"), the patches' mean ("avg"; timm's fc_norm LayerNorm
//              after the pooling where the model has one), or both concatenated ("token+avg": what Virchow's and
//              Midnight's model cards take as the tile embedding)
// LayerScale is folded into the projections it scales when the weights load (models/vit/loading.h), so the blocks
// are the shared pre-norm TransformerBlock.
//
//   auto vit = models::load_timm_vit("UNI/");           // or load_hf_vit("phikon-v2/")
//   auto features = vit->forward(normalised_pixels);    // [B,3,224,224] -> [B,1024]
#pragma once
#include <torch/torch.h>

#include <string>

#include "models/vit/config.h"

namespace pathvlm::models {

class VitImpl : public torch::nn::Module {
 public:
  explicit VitImpl(const VitConfig& config);
  // Normalised pixels [B,3,S,S] -> the tokens after the last block, [B, prefix + patches, width], normalised unless
  // the pooling normalises. With `hidden`, also keeps hidden state `hidden_layer` there (see hidden_state) from the
  // same pass.
  torch::Tensor forward_tokens(const torch::Tensor& pixels, int hidden_layer = -1, torch::Tensor* hidden = nullptr);
  // Hidden state `layer` [B, prefix + patches, width], indexed as transformers' `hidden_states`: 0 = the embeddings
  // (prefix tokens and positions), k = after block k, negative from the end (-1 = the last block, before the final
  // norm; -2 = the penultimate, LLaVA's). Runs only the blocks it needs.
  torch::Tensor hidden_state(const torch::Tensor& pixels, int layer);
  // Tokens of forward_tokens -> features [B, config.features()].
  torch::Tensor pool(const torch::Tensor& tokens);
  torch::Tensor forward(const torch::Tensor& pixels) { return pool(forward_tokens(pixels)); }
  const VitConfig& config() const { return config_; }
  // Pools with `pool` ("token", "avg", "token+avg") instead of the checkpoint's; refused where it does not fit.
  void set_global_pool(const std::string& pool);

  torch::nn::Conv2d patch_embed{nullptr};
  torch::Tensor cls_token, reg_token, pos_embed;  // [1,1,W], [1,R,W], [1,position_embeddings,W]; undefined if absent
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};

 private:
  // Pixels -> the first hidden state: patch embeddings behind the class and register tokens, positions added.
  torch::Tensor embed(const torch::Tensor& pixels);

  VitConfig config_;
};
TORCH_MODULE(Vit);

}  // namespace pathvlm::models
