// LLaVA checkpoints as a starting point, in the two forms they are published:
//  - original: what LLaVA's training code saves and its model zoo publishes (liuhaotian/llava-v1.5-7b,
//    microsoft/llava-med-v1.5-mistral-7b, Quilt-LLaVA). config.json is the language model's (LLaMA or Mistral keys
//    at the top) plus LLaVA's mm_* keys; the tensors are the language model's own names (model.layers.*,
//    lm_head.weight), the projector model.mm_projector.* and often a copy of the frozen tower, model.vision_tower.*.
//    The tower it was trained with is named (mm_vision_tower), not shipped.
//  - transformers: a LlavaForConditionalGeneration directory (llava-hf/llava-1.5-7b-hf, pathvlm's hf-llava export):
//    config.json with a text_config and a vision_config, the tower inside, the tensor names of hf_layout.h.
//
//   auto llava = models::read_llava_checkpoint("llava-med-v1.5-mistral-7b/");
//   if (llava) map = llava->init_renames(/*with_projector=*/true);   // train.init_from's map onto LlavaModel names
//
// models::parse_hf_llama_config reads either config.json as the language model it holds, and models::load_llama
// passes over the multimodal tensors, so the directory is also a language model by itself;
// models::load_clip_image_tower reads the tower of the transformers form.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "models/llava/hf_layout.h"

namespace pathvlm::models {

struct LlavaCheckpoint {
  enum class Format { original, transformers };
  Format format = Format::original;
  std::string dir;
  std::string model_type;             // as written: llava (LLaVA before 1.2, and transformers'), llava_llama, ...
  std::string projector;              // linear or mlp2x_gelu
  int64_t vision_width = 0;           // the tower width the projector takes
  int vision_feature_layer = -1;      // HF indexing: -1 last block, -2 penultimate
  std::string vision_feature_select;  // ours: patch, or full (LLaVA's cls_patch, transformers' full)
  std::string image_aspect_ratio;     // square or pad
  std::string vision_tower;           // the tower it was trained with: original as LLaVA names it; transformers `dir`
  HfLlavaLayout layout;               // transformers: where its parts are
  int64_t image_token_id = -1;        // transformers: <image>'s id in its vocabulary

  // "one of LLaVA's original checkpoints, llava_mistral" or "a transformers LlavaForConditionalGeneration".
  std::string description() const;
  // The config.json keys it says the tower layer, the feature selection and the tower width under, for errors.
  struct Keys {
    const char *feature_layer, *feature_select, *vision_width;
  };
  Keys keys() const;
  // train.init_from renames from its tensor names onto LlavaModel's: the language model always, the projector
  // when `with_projector`.
  std::vector<std::string> init_renames(bool with_projector) const;
  // The prefixes of its tensors the language model's init_from leaves out: the tower (loaded as the tower), and the
  // projector unless `with_projector` (one of another shape is not ours), or the identity second layer of a
  // single-FC projector.
  std::vector<std::string> init_skipped(bool with_projector) const;
};

// The LLaVA checkpoint in `dir`, or nullopt when its config.json is not LLaVA's (a plain LLaMA, or no config.json at
// all). Refuses, naming the file and the key, what pathvlm's LLaVA does not reproduce: image start/end tokens
// (mm_use_im_start_end), LLaVA-NeXT's any-resolution tiling (image_aspect_ratio anyres, mm_patch_merge_type other
// than flat), other projectors (transformers: an activation other than gelu, or linear with a second layer that is
// not the identity pathvlm's export writes; no biases), other feature selections, several feature layers.
std::optional<LlavaCheckpoint> read_llava_checkpoint(const std::string& dir);

}  // namespace pathvlm::models
