// Tissue segmentation settings (CLAM's segmentTissue parameters; presets from CLAM's presets/*.csv plus one for
// `pathvlm synth slides`).
#pragma once
#include <string>

#include "core/config.h"

namespace pathvlm {

struct TissueConfig {
  std::string preset = "clam";
  double seg_downsample = 64;
  int sthresh = 8;
  bool otsu = false;
  int mthresh = 7;
  int close = 4;
  double a_t = 100;
  double a_h = 16;
  int max_n_holes = 8;
  int ref_patch = 512;
  double max_area_share = 0.01;

  template <class V>
  void visit(V& v) {
    v.field("preset", preset,
            "named parameter set applied first; keys given explicitly override it (clam = CLAM's defaults)",
            cfg::OneOf{"clam", "tcga", "bwh_biopsy", "bwh_resection", "synthetic"});
    v.field("seg_downsample", seg_downsample,
            "segment at this downsample (nearest pyramid level, box-reduced when finer); small slides are "
            "segmented finer so the segmentation image keeps about 1024 px on its long side",
            cfg::Min(1.0));
    v.field("sthresh", sthresh, "saturation threshold (0-255) when otsu is off", cfg::Range(0, 255));
    v.field("otsu", otsu, "threshold saturation with Otsu's method instead of sthresh");
    v.field("mthresh", mthresh, "median blur kernel size (odd; 1 = no blur)", cfg::Range(1, 255));
    v.field("close", close, "morphological closing kernel size in pixels (0 = none)", cfg::Range(0, 255));
    v.field("a_t", a_t, "minimum tissue area (holes subtracted) in ref_patch x ref_patch level-0 tiles",
            cfg::Min(0.0));
    v.field("a_h", a_h, "minimum hole area in ref_patch x ref_patch level-0 tiles", cfg::Min(0.0));
    v.field("max_n_holes", max_n_holes, "keep at most this many largest holes per tissue region", cfg::Min(0));
    v.field("ref_patch", ref_patch, "edge in level-0 pixels of the unit tile that a_t and a_h count", cfg::Min(1));
    v.field("max_area_share", max_area_share,
            "the minimum tissue area never exceeds this share of the slide's area (a_h shrinks alike): CLAM's a_t "
            "counts level-0 pixels sized for gigapixel slides, so on slides or crops a few thousand pixels wide it "
            "would drop all tissue; inactive on large slides (clam preset: above about 51k x 51k level-0 px); 0 = "
            "CLAM's fixed thresholds (preset synthetic: 0)",
            cfg::Range(0.0, 1.0));
  }
};

}  // namespace pathvlm
