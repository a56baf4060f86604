// ClipModelConfig: the sizes of a CLIP (ViT image tower + causal text transformer), from a preset with
// any size overridable. A size of 0 means "the preset's value"; resolve_clip_config() fills them in.
//
//   clip:
//     model:
//       preset: ViT-B-16        # tiny | ViT-B-32 | ViT-B-16 | ViT-L-14
//       image_size: 256         # overrides the preset's 224
//
// Presets (OpenAI CLIP / open_clip model configs): ViT-B-32 and ViT-B-16 = vision 12 x 768 (12 heads),
// text 12 x 512 (8 heads), embed 512; ViT-L-14 = vision 24 x 1024 (16 heads), text 12 x 768 (12 heads),
// embed 768; all with context 77, vocab 49408, quick_gelu (what OpenAI weights need).
#pragma once
#include <string>

#include "core/config.h"

namespace pathvlm::models {

struct ClipModelConfig {
  std::string preset = "tiny";
  int embed_dim = 0;        // projection_dim
  int image_size = 0;
  int patch_size = 0;
  int vision_width = 0;
  int vision_layers = 0;
  int vision_heads = 0;
  int vision_mlp_dim = 0;
  int text_width = 0;
  int text_layers = 0;
  int text_heads = 0;
  int text_mlp_dim = 0;
  int context_length = 0;
  int vocab_size = 0;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;

  template <class V>
  void visit(V& v) {
    v.field("preset", preset, "size preset; the size keys below override it (0 = the preset's value)",
            cfg::OneOf{"tiny", "ViT-B-32", "ViT-B-16", "ViT-L-14"});
    v.field("embed_dim", embed_dim, "dimension of the shared image-text embedding (projection_dim)", cfg::Min(0));
    v.field("image_size", image_size, "input image side in pixels", cfg::Min(0));
    v.field("patch_size", patch_size, "ViT patch side in pixels (must divide image_size)", cfg::Min(0));
    v.field("vision_width", vision_width, "ViT hidden size", cfg::Min(0));
    v.field("vision_layers", vision_layers, "ViT transformer blocks", cfg::Min(0));
    v.field("vision_heads", vision_heads, "ViT attention heads (must divide vision_width)", cfg::Min(0));
    v.field("vision_mlp_dim", vision_mlp_dim, "ViT MLP hidden size (0 = 4 x vision_width)", cfg::Min(0));
    v.field("text_width", text_width, "text transformer hidden size", cfg::Min(0));
    v.field("text_layers", text_layers, "text transformer blocks", cfg::Min(0));
    v.field("text_heads", text_heads, "text attention heads (must divide text_width)", cfg::Min(0));
    v.field("text_mlp_dim", text_mlp_dim, "text MLP hidden size (0 = 4 x text_width)", cfg::Min(0));
    v.field("context_length", context_length, "text context length in tokens (sot and eot included)", cfg::Min(0));
    v.field("vocab_size", vocab_size, "text vocabulary size (49408 for the CLIP BPE)", cfg::Min(0));
    v.field("hidden_act", hidden_act, "MLP activation of both towers (quick_gelu for OpenAI weights)",
            cfg::OneOf{"quick_gelu", "gelu"});
    v.field("layer_norm_eps", layer_norm_eps, "LayerNorm epsilon", cfg::Range(1e-12, 1e-2));
  }
  // Resolves the preset and checks the sizes together (see resolve_clip_config); errors start with `where`.
  void validate(const std::string& where) const;
};

// Fills every 0 size from the preset and checks the result (divisibility, positivity, sizes a model can have);
// throws pathvlm::Error naming the key that is wrong.
ClipModelConfig resolve_clip_config(const ClipModelConfig& config);

// One-line summary: "CLIP image 224/16 12x768, text 77 12x512, embed 512, quick_gelu".
std::string describe(const ClipModelConfig& config);

// Model FLOPs of one training sample (forward + backward = 3 x forward) of a resolved config: every matmul
// of both towers (attention scores included, the text's causal half counted in full as is customary), the
// patch embedding and the projections; norms, activations and the loss are left out. The numerator of MFU.
double train_flops_per_sample(const ClipModelConfig& config);

}  // namespace pathvlm::models
