// A Swin Transformer as timm 0.5 builds it (shifted-window attention with a relative position bias, patch merging at
// the end of each stage, the final norm's tokens averaged), with CTransPath's convolutional stem: the tile encoder of
// CTransPath, CHIEF and HistoGPT (TRIDENT's `ctranspath`, a swin_tiny_patch4_window7_224 from timm_ctp). Inference
// only (`pathvlm embed`):
//   tokens   = patch_norm(conv stem(pixels))                    [B, (S/4)², C]
//   stage i  = blocks (window attention, shifted every other block), then patch merging (width x2, side /2)
//   features = mean over tokens of norm(last stage)             [B, 8C]  (768 for Swin-T)
//
//   auto swin = models::load_swin("ctranspath/");       // models/swin/weights.h
//   auto features = swin->forward(normalised_pixels);   // [B,3,224,224] -> [B,768]
#pragma once
#include <torch/torch.h>

#include <array>
#include <string>
#include <vector>

#include "models/layers/linear.h"

namespace pathvlm::models {

struct SwinConfig {
  int image_size = 224;
  int embed_dim = 96;                    // the stem's width; stage i is embed_dim * 2^i wide
  std::vector<int> depths{2, 2, 6, 2};   // blocks per stage
  std::vector<int> heads{3, 6, 12, 24};  // attention heads per stage
  int window = 7;
  int mlp_ratio = 4;                                // each block's MLP width over its stage's
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // ImageNet's, as TRIDENT normalises CTransPath's input
  std::array<double, 3> std{0.229, 0.224, 0.225};
  std::string interpolation = "bilinear";  // the tile resize TRIDENT's `ctranspath` transform uses

  int width(size_t stage) const { return embed_dim << stage; }
  int side(size_t stage) const { return image_size / 4 >> stage; }  // the stage's token grid side
  int features() const { return width(depths.size() - 1); }
  // Names the problem in `where`'s words when the sizes do not fit together.
  void validate(const std::string& where) const;
};

// One block: x += proj(window attention(norm1(x))) over windows shifted by `shift`; x += mlp(norm2(x)).
class SwinBlockImpl : public torch::nn::Module {
 public:
  SwinBlockImpl(int width, int heads, int window, int shift, int side, int mlp_hidden);
  torch::Tensor forward(const torch::Tensor& x);  // [B, side², width]

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Linear qkv{nullptr}, proj{nullptr}, fc1{nullptr}, fc2{nullptr};
  torch::Tensor relative_position_bias_table;  // [(2 window - 1)², heads]
  torch::Tensor relative_position_index;       // [window², window²] rows of the table each query/key pair takes
  torch::Tensor attn_mask;                     // [windows, window², window²]: 0 or -100; undefined unshifted

 private:
  int heads_, window_, shift_, side_;
};
TORCH_MODULE(SwinBlock);

class SwinImpl : public torch::nn::Module {
 public:
  explicit SwinImpl(const SwinConfig& config);
  torch::Tensor forward(const torch::Tensor& pixels);  // normalised [B,3,S,S] -> [B, features()]
  const SwinConfig& config() const { return config_; }

  // CTransPath's ConvStem: conv3x3/2 -> BN -> ReLU -> conv3x3/2 -> BN -> ReLU -> conv1x1, then LayerNorm.
  torch::nn::Conv2d stem_conv1{nullptr}, stem_conv2{nullptr}, stem_proj{nullptr};
  torch::nn::BatchNorm2d stem_bn1{nullptr}, stem_bn2{nullptr};
  torch::nn::LayerNorm patch_norm{nullptr};
  std::vector<std::vector<SwinBlock>> stages;
  // Per stage but the last: LayerNorm(4 width) then a bias-free Linear(4 width -> 2 width) over 2x2 neighbours.
  std::vector<torch::nn::LayerNorm> merge_norms;
  std::vector<Linear> merge_reductions;
  torch::nn::LayerNorm norm{nullptr};

 private:
  SwinConfig config_;
};
TORCH_MODULE(Swin);

}  // namespace pathvlm::models
