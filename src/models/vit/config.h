// The shape of a VisionTransformer (models/vit/model.h) and how it is read from a timm hub checkpoint: the sizes
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
  bool fc_norm = false;                // the final LayerNorm after an avg pooling (timm's fc_norm), else on every token
  double norm_eps = 1e-6;              // timm's LayerNorm
  std::array<double, 3> mean{0.485, 0.456, 0.406};  // its pretrained_cfg's pixel normalisation (ImageNet's default)
  std::array<double, 3> std{0.229, 0.224, 0.225};
  // How its evaluation transform resizes images to image_size (PIL's filter: "bicubic", "bilinear", or another name
  // the config gives, which is refused where images are resized): timm's pretrained_cfg.interpolation (timm's default
  // bicubic), transformers' preprocessor_config resample.
  std::string interpolation = "bicubic";

  int grid() const { return image_size / patch_size; }
  int prefix_tokens() const { return (class_token ? 1 : 0) + reg_tokens; }
  int position_embeddings() const { return grid() * grid() + (no_embed_class ? 0 : prefix_tokens()); }
  int features() const { return global_pool == "token+avg" ? 2 * width : width; }
  // Names the problem in `where`'s words when the sizes or choices do not fit together.
  void validate(const std::string& where) const;
};

// A tensor's shape by name, nullopt when the checkpoint lacks it.
using TensorShapeOf = std::function<std::optional<std::vector<int64_t>>(const std::string& name)>;

// The config of the timm ViT whose tensors `shape_of` describes; `config_json` is its config.json text ("" when there
// is none). Errors name `at` (the config.json) or `where` (the weights) and the key or tensor.
VitConfig timm_vit_config(const TensorShapeOf& shape_of, const std::string& config_json, const std::string& at,
                          const std::string& where);

// A transformers ViT checkpoint (ViTModel: model_type "vit"; Dinov2Model: "dinov2"; Dinov2WithRegistersModel:
// "dinov2_with_registers") as models/vit/hf_weights.h loads it.
struct HfVitLayout {
  VitConfig config;        // image_size: the input size of its preprocessor_config.json
  std::string model_type;  // vit, dinov2, dinov2_with_registers
  std::string prefix;      // of every tensor name: "", or a task head's base model ("vit.", "dinov2.", ...)
  int position_grid = 0;   // side of the checkpoint's position-embedding grid; DINOv2 resamples it to config.grid()
  // Tensor names of one block (after "<prefix>encoder.layer.N.") that differ between ViTModel and DINOv2.
  std::string norm1, norm2, fc1, fc2;
};

// The layout of the transformers ViT whose tensors `shape_of` describes, from its config.json text and its
// preprocessor_config.json text (the pixel mean/std and input size; "" when there is none, an error: no ViT's pixel
// statistics are safe to guess). Errors name `at` / `preprocessor_at` (the files) or `where` (the weights).
HfVitLayout hf_vit_config(const TensorShapeOf& shape_of, const std::string& config_json,
                          const std::string& preprocessor_json, const std::string& at,
                          const std::string& preprocessor_at, const std::string& where);

}  // namespace pathvlm::models
