// LLaVA's own checkpoints as a starting point: the directories LLaVA's training code saves and its model zoo
// publishes (liuhaotian/llava-v1.5-7b, microsoft/llava-med-v1.5-mistral-7b, Quilt-LLaVA). Their config.json is the
// language model's (LLaMA or Mistral keys at the top) plus LLaVA's mm_* keys, and their tensors are the language
// model's own names (model.layers.*, lm_head.weight) plus the projector, model.mm_projector.*, and often a copy of
// the frozen tower, model.vision_tower.*.
//
//   auto llava = models::read_original_llava_checkpoint("llava-med-v1.5-mistral-7b/");
//   if (llava) renames = llava->projector_renames();   // train.init_from map entries for its projector
//
// models::parse_hf_llama_config reads such a config.json as the LLaMA / Mistral it holds, and models::load_llama
// passes over the multimodal tensors, so the directory is also a language model by itself.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pathvlm::models {

struct OriginalLlavaCheckpoint {
  std::string dir;
  std::string model_type;             // as written: llava (LLaVA before 1.2), llava_llama or llava_mistral
  std::string projector;              // mm_projector_type: linear (LLaVA's default) or mlp2x_gelu
  int64_t vision_width = 0;           // mm_hidden_size: the tower width the projector takes
  int vision_feature_layer = -1;      // mm_vision_select_layer (LLaVA's default -1)
  std::string vision_feature_select;  // ours: patch, or full for LLaVA's cls_patch
  std::string image_aspect_ratio;     // square (LLaVA's default) or pad
  std::string vision_tower;           // mm_vision_tower: the tower it was trained with, as LLaVA names it

  // train.init_from renames that put its projector on ours (multi_modal_projector.linear_{1,2}); they go before
  // the language model's own "model. -> ..." rename, whose prefix also matches.
  std::vector<std::string> projector_renames() const;
};

// The LLaVA checkpoint in `dir`, or nullopt when its config.json is not LLaVA's own (a plain LLaMA, or no
// config.json at all). Refuses, naming the file and the key, what pathvlm's LLaVA does not reproduce: image
// start/end tokens (mm_use_im_start_end), LLaVA-NeXT's any-resolution tiling (image_aspect_ratio anyres,
// mm_patch_merge_type other than flat), other projectors and other feature selections.
std::optional<OriginalLlavaCheckpoint> read_original_llava_checkpoint(const std::string& dir);

}  // namespace pathvlm::models
