// TITAN's slide encoder (MahmoodLab/TITAN, `encode_slide_from_patch_features`): a slide's CONCH v1.5 tile features
// -> one 768-wide slide embedding, as TRIDENT's `titan` slide encoder writes it.
//   grid     = the tiles' cells on the slide's grid: (coords - their minimum) // patch_size_level0; the features of
//              tiles sharing a cell summed, cells whose summed features are all zero dropped as background
//   tokens   = [class token; GELU(patch_embed(cell features))], cells in row-major order of (x cell, y cell)
//   blocks   = pre-norm ViT blocks (timm's: LayerNorm eps 1e-6, GELU MLP) whose attention adds a 2-D ALiBi bias,
//              -slope_h * |cell_i - cell_j| (Euclidean, in cells) between patch tokens, 0 to and from the class token
//   pooled   = attn_pool_contrastive(norm(tokens)): CoCa's pooler, one query over every token (8 heads)
// The contrastive projection (`vision_encoder.proj`, for TITAN's text side) is not applied: the embedding is TITAN's
// `encode_slide_from_patch_features` output. Inference, one slide per call.
//
//   auto titan = models::load_titan("TITAN/");                            // models/titan/weights.h
//   auto embedding = titan->forward(features, coords, /*patch_size_level0=*/1024);   // [N,768], [N,2] -> [768]
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "models/conch/model.h"
#include "models/layers/linear.h"

namespace pathvlm::models {

struct TitanConfig {
  int64_t input_dim = 768;     // tile feature width (CONCH v1.5's)
  int64_t width = 768;
  int64_t depth = 6;
  int64_t heads = 12;
  int64_t mlp_hidden = 3072;
  int64_t pooler_heads = 8;
  void validate(const std::string& where) const;
};

// The tiles on TITAN's grid: `features` [n,D] float32 summed per occupied cell and `cells` [n,2] int64 (x cell,
// y cell), background cells (all-zero features) dropped, in row-major order.
struct TitanGrid {
  torch::Tensor features, cells;
};
TitanGrid titan_grid(const torch::Tensor& features, const torch::Tensor& coords, int64_t patch_size_level0);

// ALiBi's head slopes (Press et al.; TITAN's get_slopes): 2^(-8 i / n) for i = 1..n when n is a power of two, else
// those of the power of two below n followed by every other slope of the one above.
std::vector<double> alibi_slopes(int64_t heads);

// softmax(q k^T / sqrt(d) - slope_h * dist(i, j)) v for q, k, v [H, 1 + n, d] (the class token first), dist the
// Euclidean distance of patch tokens' `cells` [n, 2] and 0 for a pair with the class token; `slopes` [H]. The
// bias is built for `chunk` query rows at a time, so memory grows with H * chunk * (1 + n), not the square.
torch::Tensor alibi_attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const torch::Tensor& cells, const torch::Tensor& slopes, int64_t chunk);

class TitanSlideEncoderImpl : public torch::nn::Module {
 public:
  explicit TitanSlideEncoderImpl(const TitanConfig& config);
  // features [N, input_dim], coords [N, 2] level-0 tile corners (int), tiles patch_size_level0 wide -> [width].
  torch::Tensor forward(const torch::Tensor& features, const torch::Tensor& coords, int64_t patch_size_level0);
  const TitanConfig& config() const { return config_; }
  // Query rows per attention chunk; 0 (the default): as many as keep one chunk's scores near 16 MiB.
  void set_attention_chunk(int64_t rows) { attention_chunk_ = rows; }

  Linear patch_embed{nullptr};
  torch::Tensor cls_token;  // [1, 1, width]
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  AttentionalPooler attn_pool_contrastive{nullptr};

 private:
  TitanConfig config_;
  torch::Tensor slopes_;  // [heads], a buffer so it follows the module's device
  int64_t attention_chunk_ = 0;
};
TORCH_MODULE(TitanSlideEncoder);

}  // namespace pathvlm::models
