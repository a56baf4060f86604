// Config section `slide`: whole-slide <-> report alignment (PathAlign's first stage, CLIP's recipe on slides): a
// slide encoder over bags of tile features and a CLIP text tower over the reports, trained contrastively across
// ranks. Light header: no torch.
//
//   slide:
//     encoder: {kind: qformer, width: 256, queries: 16}     # abmil | transformer | qformer (src/models/slide)
//     text: {pretrained: runs/clip_demo, context_length: 256}
//     data: {train: [feats/train/shards], val: [feats/val/shards], labels: slides.csv, max_tiles: 512}
//     eval: {classes: zeroshot.yaml}
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/config.h"
#include "models/slide/config.h"

namespace pathvlm::train {

struct SlideTextConfig {
  std::string preset = "tiny";
  std::string pretrained = "";
  std::string vocab = "";
  int context_length = 256;
  std::string hidden_act = "gelu";
  template <class V>
  void visit(V& v) {
    v.field("preset", preset, "CLIP size preset of a text tower trained from scratch (ignored with `pretrained`)",
            cfg::OneOf{"tiny", "ViT-B-32", "ViT-B-16", "ViT-L-14"});
    v.field("pretrained", pretrained,
            "CLIP whose text tower, text projection and temperature start the report side: a `clip` run, checkpoint, "
            "export, HF directory or open_clip .safetensors (its 77 positions are stretched to context_length)");
    v.field("vocab", vocab,
            "CLIP BPE merges (bpe_simple_vocab_16e6.txt.gz) or an HF tokenizer directory (empty: the tokenizer files "
            "of `pretrained`)");
    v.field("context_length", context_length, "report tokens read (sot and eot included); longer reports are cut",
            cfg::Range(8, 4096));
    v.field("hidden_act", hidden_act, "MLP activation of a text tower trained from scratch",
            cfg::OneOf{"quick_gelu", "gelu"});
  }
};

struct SlideDataConfig {
  std::vector<std::string> train = {};
  std::vector<std::string> val = {};
  std::string labels = "";
  int64_t max_tiles = 1024;
  int64_t eval_max_tiles = 0;
  double max_bad_fraction = 0.0;
  int workers = 2;
  int prefetch = 4;
  template <class V>
  void visit(V& v) {
    v.field("train", train,
            "training slides: `slides` shards from `pathvlm embed` (manifest.json, its folder or an .h5) and/or CSV "
            "manifests (slide_id, features = a TRIDENT/CLAM .h5, report or report_file, optional label)");
    v.field("val", val, "held-out slides for retrieval and zero-shot evaluation, same forms");
    v.field("labels", labels,
            "CSV with slide_id and label columns: class names for zero-shot evaluation of slides whose source has "
            "none (e.g. `pathvlm synth slides`' slides.csv)");
    v.field("max_tiles", max_tiles,
            "training: tiles sampled per slide per step (seeded, resumable; all when a slide has fewer; 0 = all)",
            cfg::Min(0));
    v.field("eval_max_tiles", eval_max_tiles, "evaluation: tiles per slide, evenly spaced (0 = all)", cfg::Min(0));
    v.field("max_bad_fraction", max_bad_fraction,
            "share of listed slides that may be missing or unreadable (skipped and counted) before the run stops",
            cfg::Range(0.0, 1.0));
    v.field("workers", workers, "background threads that read bags", cfg::Range(1, 256));
    v.field("prefetch", prefetch, "ready batches kept ahead of the training loop", cfg::Range(1, 1024));
  }
};

struct SlideEvalConfig {
  std::string classes = "";
  int64_t batch_size = 8;
  bool confusion = true;
  std::vector<int64_t> topj = {1, 5, 10, 50, 100};
  std::string tile_features = "pooled";
  template <class V>
  void visit(V& v) {
    v.field("classes", classes,
            "zero-shot YAML (templates + class names) or a CONCH prompt JSON for slide.data.val; a slide's label "
            "names its class");
    v.field("batch_size", batch_size, "slides per rank per forward in evaluation", cfg::Min(1));
    v.field("confusion", confusion, "print the zero-shot confusion matrix after each evaluation");
    v.field("topj", topj,
            "CONCH v1 (eval --model CONCH/): a slide scores each class by the mean of its j best tiles, for each j "
            "here (MI-Zero, CONCH's defaults)",
            cfg::Min(1));
    v.field("tile_features", tile_features,
            "CONCH v1: what the slides' tile features are: pooled (TRIDENT's and CLAM's conch_v1, projected here) or "
            "projected (pathvlm embed pool=proj)",
            cfg::OneOf{"pooled", "projected"});
  }
};

struct SlideTaskConfig {
  models::slide::SlideEncoderConfig encoder;
  SlideTextConfig text;
  SlideDataConfig data;
  std::string loss = "clip";
  SlideEvalConfig eval;
  template <class V>
  void visit(V& v) {
    v.section("encoder", encoder, "the slide encoder over bags of tile features (input_dim comes from the data)");
    v.section("text", text, "the report side: a CLIP text tower");
    v.section("data", data, "slides, their tile features and reports");
    v.field("loss", loss, "contrastive loss: clip = symmetric InfoNCE, siglip = sigmoid loss with learnable bias",
            cfg::OneOf{"clip", "siglip"});
    v.section("eval", eval, "slide<->report retrieval and zero-shot slide classification");
  }
};

}  // namespace pathvlm::train
