// Where the parts of a transformers LlavaForConditionalGeneration checkpoint are, by tensor name. transformers
// before 4.52 saved (and pathvlm's LlavaModel and export use) the first layout; 4.52 and later save the second:
//
//   part            before 4.52                    4.52+, 5.x
//   language model  language_model.model.*         model.language_model.*
//   head            language_model.lm_head.weight  lm_head.weight
//   vision tower    vision_tower.vision_model.*    model.vision_tower.vision_model.*
//   projector       multi_modal_projector.*        model.multi_modal_projector.*
//
// A LlamaForCausalLM's own names (model.layers.N.*, lm_head.weight) become stored names with language_model_name().
#pragma once
#include <functional>
#include <optional>
#include <string>

namespace pathvlm::models {

struct HfLlavaLayout {
  std::string language_model;  // replaces a LlamaForCausalLM name's leading "model."
  std::string lm_head;         // replaces its leading "lm_head."
  std::string vision_tower;    // before vision_model.*
  std::string projector;       // before linear_{1,2}.*

  // The stored name of a LlamaForCausalLM parameter (model.* or lm_head.*).
  std::string language_model_name(const std::string& name) const {
    if (name.rfind("model.", 0) == 0) return language_model + name.substr(6);
    if (name.rfind("lm_head.", 0) == 0) return lm_head + name.substr(8);
    return name;
  }
  bool in_vision_tower(const std::string& name) const { return name.rfind(vision_tower, 0) == 0; }
  bool in_projector(const std::string& name) const { return name.rfind(projector, 0) == 0; }

  static HfLlavaLayout before_4_52() {
    return {"language_model.model.", "language_model.lm_head.", "vision_tower.", "multi_modal_projector."};
  }
  static HfLlavaLayout from_4_52() {
    return {"model.language_model.", "lm_head.", "model.vision_tower.", "model.multi_modal_projector."};
  }
  // The layout of a checkpoint, told by where its token embedding is; nullopt when it has neither.
  static std::optional<HfLlavaLayout> of(const std::function<bool(const std::string&)>& contains) {
    for (auto layout : {before_4_52(), from_4_52()})
      if (contains(layout.language_model_name("model.embed_tokens.weight"))) return layout;
    return std::nullopt;
  }
};

}  // namespace pathvlm::models
