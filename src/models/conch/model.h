// CONCH's image tower as CLAM and TRIDENT take tile features from it: mahmoodlab/CONCH (v1: a CoCa whose image
// tower is a ViT-B/16 at 448 px) and CONCH v1.5 (TITAN's tile encoder: a ViT-L/16 with LayerScale at 448 px).
//   tokens   = the timm ViT trunk's normalised tokens, class token first
//   features = ln_contrast(attn_pool_contrast(tokens))   one learned query attending over every token
// that is open_clip's encode_image(proj_contrast=False, normalize=False): 512 features for v1, 768 for v1.5, the
// rows CLAM's `conch_v1` and TRIDENT's `conch_v1` / `conch_v15` write. v1 also has the contrastive projection into
// the space its text tower shares (set_projected: encode_image(proj_contrast=True, normalize=False)). Inference only
// (`pathvlm embed`).
//
//   auto conch = models::load_conch("CONCH/");             // models/conch/weights.h
//   auto features = conch->forward(normalised_pixels);    // [B,3,448,448] -> [B,512]
#pragma once
#include <torch/torch.h>

#include "models/layers/linear.h"
#include "models/vit/model.h"

namespace pathvlm::models {

// `queries` learned tokens of `width` reading `context` tokens of `context_width` by multi-head attention, both sides
// layer-normalised first (CoCa's attentional pooler).
struct AttentionalPoolerOptions {
  int64_t width = 512, context_width = 768, heads = 8, queries = 1;
  bool bias = true;  // on q/k/v and the output projection (nn.MultiheadAttention's); v1.5's pooler has none
};

class AttentionalPoolerImpl : public torch::nn::Module {
 public:
  explicit AttentionalPoolerImpl(const AttentionalPoolerOptions& options);
  torch::Tensor forward(const torch::Tensor& context);  // [B,T,context_width] -> [B,queries,width]

  torch::Tensor query;  // [queries, width]
  torch::nn::LayerNorm ln_q{nullptr}, ln_k{nullptr};
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};

 private:
  AttentionalPoolerOptions options_;
};
TORCH_MODULE(AttentionalPooler);

class ConchVisionImpl : public torch::nn::Module {
 public:
  // `projection`: the width of the contrastive projection (v1's 512), 0 for none (v1.5).
  ConchVisionImpl(const VitConfig& trunk, const AttentionalPoolerOptions& pooler, int64_t projection = 0);
  // As Vit::forward_tokens: the trunk's tokens, and hidden state `hidden_layer` from the same pass.
  torch::Tensor forward_tokens(const torch::Tensor& pixels, int hidden_layer = -1, torch::Tensor* hidden = nullptr) {
    return trunk->forward_tokens(pixels, hidden_layer, hidden);
  }
  torch::Tensor pool(const torch::Tensor& tokens);  // -> [B, features()]
  torch::Tensor forward(const torch::Tensor& pixels) { return pool(forward_tokens(pixels)); }
  // Whether pool() ends with the contrastive projection (an Error naming `where` when the model has none).
  void set_projected(bool projected, const std::string& where);
  int64_t features() const {
    return projected_ ? proj_contrast.size(1) : ln_contrast->options.normalized_shape()[0];
  }

  Vit trunk{nullptr};
  AttentionalPooler attn_pool_contrast{nullptr};
  torch::nn::LayerNorm ln_contrast{nullptr};
  torch::Tensor proj_contrast;  // [pooled width, projection], undefined without one

 private:
  bool projected_ = false;
};
TORCH_MODULE(ConchVision);

}  // namespace pathvlm::models
