// LlavaConfig: how a LLaVA-style model (LLaVA-1.5, PathAsst) joins a frozen CLIP image tower to a LLaMA through a
// trainable projector. The sizes come from the two models; this section only says how they are joined.
//
//   model:
//     projector: linear             # PathAsst's single FC; mlp2x_gelu = LLaVA-1.5's Linear-GELU-Linear
//     vision_feature_layer: -2      # HF hidden_states index: 0 = embeddings after pre_layrnorm, -1 = last block
//     vision_feature_select: patch  # patch: drop the CLS row (LLaVA's default); full: keep it
//     image_aspect_ratio: pad       # LLaVA-1.5's fine-tuning: images padded to a square before the crop
//
// Inside pathvlm a prompt marks each image with one id kImageSentinel (-200, LLaVA's IMAGE_TOKEN_INDEX), which the
// model expands into the image's projected rows; labels hold kIgnoreIndex (-100) where there is no loss. Exports
// replace the sentinel with a real `<image>` token (see weights.h).
#pragma once
#include <cstdint>
#include <string>

#include "core/config.h"

namespace pathvlm::models {

constexpr int64_t kImageSentinel = -200;
constexpr int64_t kIgnoreIndex = -100;

struct LlavaConfig {
  std::string projector = "mlp2x_gelu";
  int vision_feature_layer = -2;
  std::string vision_feature_select = "patch";
  std::string image_aspect_ratio = "square";

  template <class V>
  void visit(V& v) {
    v.field("projector", projector,
            "image-feature projector: linear (one FC, PathAsst) or mlp2x_gelu (Linear-GELU-Linear, LLaVA-1.5)",
            cfg::OneOf{"linear", "mlp2x_gelu"});
    v.field("vision_feature_layer", vision_feature_layer,
            "tower hidden state the features come from, HF indexing: 0 = embeddings (after a CLIP's pre_layrnorm), "
            "k = after block k, -1 = last block, -2 = penultimate (LLaVA)");
    v.field("vision_feature_select", vision_feature_select,
            "patch: the class token's row dropped (LLaVA's default; a ViT's register tokens stay, as in "
            "transformers); full: every row",
            cfg::OneOf{"patch", "full"});
    v.field("image_aspect_ratio", image_aspect_ratio,
            "square: an image's shortest side is resized to the tower's size and the rest center-cropped "
            "(CLIPImageProcessor); pad: it is first padded to a square with the tower's mean colour, so nothing is "
            "cropped away (LLaVA-1.5's image_aspect_ratio pad, exported as LlavaImageProcessor's do_pad)",
            cfg::OneOf{"square", "pad"});
  }

  bool pads_to_square() const { return image_aspect_ratio == "pad"; }
};

}  // namespace pathvlm::models
