// The shape of a timm VisionTransformer (models/vit/model.h) and how it is read from a timm hub checkpoint: the sizes
// from the tensors (width, depth, patch, register tokens, MLP kind and width), config.json for what they cannot tell
// (the heads, else the usual count for the width; the pooling, `global_pool` "" meaning Virchow's class token + patch
// mean; `no_embed_class` where the position embeddings' length leaves it open; the pixel mean/std).
//
//   auto shape_of = [&](const std::string& name) -> std::optional<std::vector<int64_t>> { ... };
//   VitConfig c = timm_vit_config(shape_of, read_text_file("UNI/config.json"), "'UNI/config.json'", "timm ViT 'UNI'");
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace pathvlm::models {

struct VitConfig {
  int image_size = 224;
  int patch_size = 16;
  int width = 768;
  int depth = 12;
  int heads = 12;
  int mlp_hidden = 3072;      // the width fc2 reads
  std::string mlp = "gelu";   // "gelu": fc1 -> GELU -> fc2; "swiglu": fc2(silu(gate) * up) (SwiGLU, SwiGLUPacked)
  bool class_token = true;
  int reg_tokens = 0;
  bool no_embed_class = false;         // position embeddings for the patches only, none for the prefix tokens
  std::string global_pool = "token";  // "token", "avg" or "token+avg"
  double norm_eps = 1e-6;              // timm's LayerNorm
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // its pretrained_cfg's pixel normalisation (ImageNet's default)
  std::array<double, 3> std{0.229, 0.224, 0.225};

  int grid() const { return image_size / patch_size; }
  int prefix_tokens() const { return (class_token ? 1 : 0) + reg_tokens; }
  int position_embeddings() const { return grid() * grid() + (no_embed_class ? 0 : prefix_tokens()); }
  int features() const { return global_pool == "token+avg" ? 2 * width : width; }
  // "avg" pools before its LayerNorm (timm's fc_norm); the others normalise every token first.
  bool norm_after_pool() const { return global_pool == "avg"; }
  // Names the problem in `where`'s words when the sizes or choices do not fit together.
  void validate(const std::string& where) const;
};

// A tensor's shape by name, nullopt when the checkpoint lacks it.
using TensorShapeOf = std::function<std::optional<std::vector<int64_t>>(const std::string& name)>;

// The config of the timm ViT whose tensors `shape_of` describes; `config_json` is its config.json text ("" when there
// is none). Errors name `at` (the config.json) or `where` (the weights) and the key or tensor.
VitConfig timm_vit_config(const TensorShapeOf& shape_of, const std::string& config_json, const std::string& at,
                          const std::string& where);

}  // namespace pathvlm::models
