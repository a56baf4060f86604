// Config section `clip`: the CLIP task (model, tile data, loss, tower locking, evaluation). Light header.
//
//   clip:
//     model: {preset: ViT-B-16}                      # sizes (ignored when `pretrained` is set)
//     pretrained: weights/openai-clip-vit-base-patch16
//     vocab: weights/bpe_simple_vocab_16e6.txt.gz
//     data: {train: shards/train, zeroshot: shards/heldout, image_size: 224}
//     eval: {classes: configs/clip/zeroshot_demo.yaml}
#pragma once
#include <string>

#include "core/config.h"
#include "train/clip/data_config.h"
#include "models/clip/config.h"

namespace pathvlm::train {

struct ClipEvalConfig {
  std::string classes = "";
  int64_t batch_size = 64;
  int64_t max_samples = 0;
  bool confusion = true;
  template <class V>
  void visit(V& v) {
    v.field("classes", classes,
            "zero-shot YAML (templates + class names, in shard label order) or a CONCH prompt JSON for the "
            "clip.data.zeroshot tiles");
    v.field("batch_size", batch_size, "images per rank per forward during evaluation", cfg::Min(1));
    v.field("max_samples", max_samples, "evaluate at most this many tiles of each set (0: all)", cfg::Min(0));
    v.field("confusion", confusion, "print the zero-shot confusion matrix after each evaluation");
  }
};

struct ClipTaskConfig {
  models::ClipModelConfig model;
  data::ClipDataConfig data;
  std::string pretrained = "";
  std::string vocab = "";
  std::string loss = "clip";
  bool lock_image = false;
  int lock_image_unlocked_blocks = 0;
  bool lock_text = false;
  int lock_text_unlocked_layers = 0;
  ClipEvalConfig eval;

  template <class V>
  void visit(V& v) {
    v.section("model", model, "CLIP sizes for a model trained from scratch");
    v.section("data", data, "tile shards and image preprocessing");
    v.field("pretrained", pretrained,
            "initial weights: HF CLIP directory, open_clip .safetensors, run checkpoint or export (empty: random "
            "init from clip.model); the sizes come from the weights, clip.model.hidden_act where they do not say");
    v.field("vocab", vocab,
            "CLIP BPE merges (bpe_simple_vocab_16e6.txt.gz) or HF tokenizer directory (empty: the tokenizer "
            "files of `pretrained`)");
    v.field("loss", loss, "contrastive loss: clip = symmetric InfoNCE, siglip = sigmoid loss with learnable bias",
            cfg::OneOf{"clip", "siglip"});
    v.field("lock_image", lock_image, "freeze the image tower (open_clip --lock-image)");
    v.field("lock_image_unlocked_blocks", lock_image_unlocked_blocks,
            "with lock_image: last ViT blocks left trainable (>= 1 also keeps post_layernorm and visual_projection)",
            cfg::Min(0));
    v.field("lock_text", lock_text, "freeze the text tower (open_clip --lock-text)");
    v.field("lock_text_unlocked_layers", lock_text_unlocked_layers,
            "with lock_text: last text blocks left trainable (>= 1 also keeps final_layer_norm and text_projection)",
            cfg::Min(0));
    v.section("eval", eval, "zero-shot classification and retrieval during training and in `pathvlm eval`");
  }
};

}  // namespace pathvlm::train
