// LLaVA weights out and in: a directory that transformers' LlavaForConditionalGeneration and AutoProcessor load as
// they are, and the projector alone in LLaVA's mm_projector layout (what LLaVA's phase 1 saves and phase 2 reads).
//
//   models::export_hf_llava(llava, "out/", torch::kBFloat16, 5ull << 30, "vicuna-7b-v1.5/");
//   //   LlavaForConditionalGeneration.from_pretrained("out/"); AutoProcessor.from_pretrained("out/")
//   models::export_projector(llava, "runs/p1/mm_projector.safetensors", torch::kBFloat16);
//   models::load_projector(llava, "llava-v1.5-7b-pretrain/mm_projector.safetensors");
//
// The export (anchors-export.md 1.2-1.6):
//   - tensors in the key layout of transformers before 4.52, which 4.52+ and 5.x rename on load:
//     vision_tower.vision_model.* (a ViT tower: vision_tower.embeddings.*, encoder.layer.N.*, layernorm.*, as
//     Dinov2Model names them), multi_modal_projector.linear_{1,2}.{weight,bias}, language_model.model.*,
//     language_model.lm_head.weight (absent when tied); model.safetensors or shards + index (safetensors::save_sharded);
//   - `<image>` appended to the vocabulary: image_token_index = the LLaMA's vocab_size V, embed_tokens and lm_head get
//     one more row, the mean of the others (its logit is the mean logit, so it never wins a greedy pick);
//   - a `linear` projector (one FC, which HF's projector cannot express) as linear_1 = the FC, projector_hidden_act
//     "linear" (identity) and linear_2 = identity matrix with a zero bias: the same numbers exactly;
//   - config.json (model_type llava: vision_config clip_vision_model, or dinov2 / dinov2_with_registers for a ViT
//     tower (models/vit/hf_weights.h); text_config llama, image_token_index,
//     image_seq_length, projector_hidden_act, vision_feature_layer, vision_feature_select_strategy default|full,
//     multimodal_projector_bias, pad_token_id), generation_config.json;
//   - tokenizer.model + tokenizer_config.json (LlamaTokenizer, legacy, `<image>` a special added token with id V,
//     pad_token = the unknown token as LLaVA v1 trains), special_tokens_map.json, added_tokens.json;
//   - preprocessor_config.json (CLIPImageProcessor at the tower's size with its mean/std; LlavaImageProcessor with
//     do_pad when the model pads images to a square, image_aspect_ratio pad) and processor_config.json
//     (LlavaProcessor: image_token, num_additional_image_tokens = the class token and any register tokens,
//     patch_size, vision_feature_select_strategy).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "models/llava/model.h"

namespace pathvlm::models {

// `tokenizer_source`: the language model's tokenizer (tokenizer.model or tokenizer.json) or a directory holding it;
// its vocabulary must be the model's vocab_size (a tokenizer.json's: at most), and <image> takes the next id, unless
// its files already give <image> an id (a LLaVA directory's: tokenizer_config.json, added_tokens.json), which is
// kept with its row. A model with LoRA adapters is refused (merge them first: models::merge_lora).
void export_hf_llava(LlavaModel& model, const std::string& out_dir, torch::ScalarType dtype, uint64_t max_shard_bytes,
                     const std::string& tokenizer_source);

// The projector alone in LLaVA's names: model.mm_projector.{weight,bias} (linear) or
// model.mm_projector.{0,2}.{weight,bias} (mlp2x_gelu), in `dtype`.
void export_projector(LlavaModel& model, const std::string& file, torch::ScalarType dtype);

// Loads a projector file (LLaVA's names with any prefix before "mm_projector.", as LLaVA's own loader matches them)
// into the model's projector, in its dtype and device. Errors name the file: pickles (.bin, with the conversion
// command), no mm_projector tensors, a projector of the other type, wrong shapes.
void load_projector(LlavaModel& model, const std::string& file);

}  // namespace pathvlm::models
