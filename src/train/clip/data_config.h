// Data loading settings of the clip task (nested by the clip task as `clip.data`).
#pragma once
#include <string>
#include <vector>

#include "core/config.h"
#include "core/error.h"

namespace pathvlm::data {

struct ClipDataConfig {
  std::string train = "";
  std::string val = "";
  std::string zeroshot = "";
  int image_size = 224;
  int workers = 2;
  int prefetch = 4;
  std::vector<double> crop_scale = {0.9, 1.0};
  std::vector<double> crop_ratio = {0.75, 1.3333333333333333};
  std::vector<double> image_mean = {0.48145466, 0.4578275, 0.40821073};
  std::vector<double> image_std = {0.26862954, 0.26130258, 0.27577711};
  double hflip_prob = 0;
  double vflip_prob = 0;
  std::vector<double> color_jitter = {};
  double color_jitter_prob = 0;
  double gray_scale_prob = 0;
  bool pin_memory = true;
  double max_bad_fraction = 0.01;
  int64_t max_image_pixels = 178956970;  // data::kDefaultMaxImagePixels (this header stays light)

  template <class V>
  void visit(V& v) {
    v.field("train", train,
            "training tiles: a manifest.json from `pathvlm shards build`, its folder, or one .h5 shard; several "
            "joined by '::' (as open_clip's --train-data joins sources)");
    v.field("val", val, "validation tiles for retrieval metrics (same forms as train; empty = none)");
    v.field("zeroshot", zeroshot, "labelled tiles (shard /labels) for zero-shot classification (same forms; empty = none)");
    v.field("image_size", image_size, "square input size of the image tower (pixels)", cfg::Range(16, 4096));
    v.field("workers", workers, "background threads that decode and augment batches", cfg::Range(1, 256));
    v.field("prefetch", prefetch, "ready batches kept ahead of the training loop", cfg::Range(1, 1024));
    v.field("crop_scale", crop_scale, "RandomResizedCrop area fraction [lo, hi] (open_clip: 0.9-1.0)",
            cfg::Range(0.0, 1.0));
    v.field("crop_ratio", crop_ratio, "RandomResizedCrop aspect ratio range [lo, hi]", cfg::Range(0.1, 10.0));
    v.field("image_mean", image_mean, "per-channel normalisation mean (OpenAI CLIP's by default)", cfg::Range(0.0, 1.0));
    v.field("image_std", image_std, "per-channel normalisation std (OpenAI CLIP's by default)", cfg::Range(1e-6, 10.0));
    v.field("hflip_prob", hflip_prob,
            "chance a training tile is mirrored left-right after the crop (torchvision RandomHorizontalFlip; PLIP's "
            "recipe; tissue has no orientation)",
            cfg::Range(0.0, 1.0));
    v.field("vflip_prob", vflip_prob,
            "chance a training tile is flipped upside down after the crop (RandomVerticalFlip)", cfg::Range(0.0, 1.0));
    v.field("color_jitter", color_jitter,
            "training colour jitter [brightness, contrast, saturation, hue] as torchvision's ColorJitter on PIL "
            "images, e.g. [0.4, 0.4, 0.4, 0.1] (open_clip --aug-cfg color_jitter; stain and scanner variation); "
            "empty = off",
            cfg::Range(0.0, 10.0));
    v.field("color_jitter_prob", color_jitter_prob, "chance a training tile gets the colour jitter (open_clip: 0.8)",
            cfg::Range(0.0, 1.0));
    v.field("gray_scale_prob", gray_scale_prob,
            "chance a training tile is made gray, after the jitter (open_clip --aug-cfg gray_scale_prob)",
            cfg::Range(0.0, 1.0));
    v.field("pin_memory", pin_memory, "pinned host batches for non-blocking copies when training on CUDA");
    v.field("max_bad_fraction", max_bad_fraction,
            "share of the training tiles that may be bad (undecodable image, empty or non-UTF-8 caption): each is "
            "replaced by the next good record and listed in <run>/bad_records.csv; training stops once more are bad",
            cfg::Range(0.0, 1.0));
    v.field("max_image_pixels", max_image_pixels,
            "largest image (width x height) decoded; a larger one is a bad record (decompression bombs)",
            cfg::Min(1));
  }

  void validate(const std::string& where) const {
    PATHVLM_CHECK(color_jitter.empty() || color_jitter.size() == 4, where,
                  ": color_jitter needs 4 values (brightness, contrast, saturation, hue), got ", color_jitter.size());
    PATHVLM_CHECK(color_jitter.empty() || color_jitter[3] <= 0.5, where, ": color_jitter's hue must be <= 0.5, got ",
                  color_jitter.empty() ? 0.0 : color_jitter[3]);
    PATHVLM_CHECK(color_jitter.empty() || color_jitter_prob > 0, where,
                  ": color_jitter is set but color_jitter_prob is 0, so it would never apply (open_clip uses 0.8)");
    PATHVLM_CHECK(!color_jitter.empty() || color_jitter_prob == 0, where,
                  ": color_jitter_prob is set but color_jitter is empty (e.g. [0.4, 0.4, 0.4, 0.1])");
  }
};

}  // namespace pathvlm::data
