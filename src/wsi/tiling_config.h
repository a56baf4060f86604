// Tile-grid settings and the root config of `pathvlm tile` (tissue segmentation + tiling).
#pragma once
#include <string>

#include "core/config.h"
#include "wsi/tissue_config.h"

namespace pathvlm {

struct TilingConfig {
  double magnification = 20;
  int patch_size = 256;
  int overlap = 0;
  std::string grid = "slide";
  std::string tissue_test = "four_pt";
  double min_tissue_fraction = 0.0;
  int qa_max_size = 1024;

  template <class V>
  void visit(V& v) {
    v.field("magnification", magnification,
            "target magnification of the tiles (20 = 0.5 um/px nominal); read from the best level and resized",
            cfg::Range(0.1, 200.0));
    v.field("patch_size", patch_size, "tile edge in pixels at the target magnification", cfg::Range(8, 8192));
    v.field("overlap", overlap, "overlap of neighbouring tiles in target pixels (step = patch_size - overlap)",
            cfg::Min(0));
    v.field("grid", grid,
            "where tiles may sit: slide (one row-major grid from the slide's corner, tiles inside the slide) or clam "
            "(CLAM's create_patches_fp exactly: segmentation on the level OpenSlide picks for tissue.seg_downsample "
            "with CLAM's fixed area thresholds, then each tissue region's bounding box stepped from its corner, "
            "tiles may cross the slide's edge; same coords as CLAM for the same parameters)",
            cfg::OneOf{"slide", "clam"});
    v.field("tissue_test", tissue_test,
            "which tiles are kept: four_pt (CLAM: any of 4 points at +-patch/4 around the centre in tissue, centre "
            "not in a hole), four_pt_hard (all 4), center, fraction (tissue share >= min_tissue_fraction)",
            cfg::OneOf{"four_pt", "four_pt_hard", "center", "fraction"});
    v.field("min_tissue_fraction", min_tissue_fraction,
            "for tissue_test=fraction: minimum share of the tile covered by tissue (0 = any tissue)",
            cfg::Range(0.0, 1.0));
    v.field("qa_max_size", qa_max_size, "approximate longest side of the QA thumbnail PNG in pixels (0 = no thumbnail)",
            cfg::Min(0));
  }
};

// `pathvlm tile --config FILE [key=value ...]`.
struct TileJobConfig {
  TissueConfig tissue;
  TilingConfig tiling;

  template <class V>
  void visit(V& v) {
    v.section("tissue", tissue, "tissue segmentation on a downsampled level (CLAM style)");
    v.section("tiling", tiling, "the tile grid at the target magnification and the tissue test");
  }
};

}  // namespace pathvlm
