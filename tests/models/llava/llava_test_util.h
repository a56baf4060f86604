// Tiny LLaVA models for the tests: the CLIP tiny preset (64 px images, 16 px patches: 16 patch rows, width 128, 4
// blocks; a small text tower, which LLaVA drops) and the tests' tiny LLaMA (hidden 32) with weights far from their
// initialisation, so every parameter moves the loss.
#pragma once
#include <torch/torch.h>

#include <algorithm>
#include <string>
#include <vector>

#include "models/llama/llama_test_util.h"
#include "models/llava/model.h"

namespace pathvlm::testing {

inline models::ClipModelConfig tiny_clip_config() {
  models::ClipModelConfig c;
  c.preset = "tiny";
  c.vocab_size = 100;
  c.context_length = 8;
  return c;
}

inline models::LlavaModel tiny_llava(const std::string& projector, const std::string& select, uint64_t seed,
                                     int64_t vocab_size = 61, const std::string& image_aspect_ratio = "square",
                                     const std::string& model_type = "llama") {
  auto llama_config = tiny_llama_config();
  llama_config.vocab_size = vocab_size;
  llama_config.model_type = model_type;
  llama_config.qkv_bias = model_type == "qwen2";
  auto lm = random_llama(llama_config, seed);
  torch::manual_seed(seed + 1);
  models::ClipModel clip(tiny_clip_config());
  models::LlavaConfig config;
  config.projector = projector;
  config.vision_feature_select = select;
  config.image_aspect_ratio = image_aspect_ratio;
  return models::LlavaModel(config, clip, lm);
}

// Normalised-looking pixels [n, 3, 64, 64].
inline torch::Tensor tiny_pixels(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randn({n, 3, 64, 64});
}

// Rows of int64 ids / labels / keep flags right-padded into [B, L] tensors (pad id 0, label kIgnoreIndex).
struct PaddedRows {
  torch::Tensor ids, labels, keep;
};

inline PaddedRows right_pad(const std::vector<std::vector<int64_t>>& ids, const std::vector<std::vector<int64_t>>& labels) {
  size_t longest = 0;
  for (const auto& r : ids) longest = std::max(longest, r.size());
  const auto B = static_cast<int64_t>(ids.size()), L = static_cast<int64_t>(longest);
  PaddedRows out{torch::zeros({B, L}, torch::kLong), torch::full({B, L}, models::kIgnoreIndex, torch::kLong),
                 torch::zeros({B, L}, torch::kBool)};
  for (int64_t b = 0; b < B; ++b) {
    const auto n = static_cast<int64_t>(ids[b].size());
    out.ids[b].narrow(0, 0, n).copy_(torch::tensor(ids[b], torch::kLong));
    out.labels[b].narrow(0, 0, n).copy_(torch::tensor(labels[b], torch::kLong));
    out.keep[b].narrow(0, 0, n).fill_(true);
  }
  return out;
}

}  // namespace pathvlm::testing
