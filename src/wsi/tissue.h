// Tissue segmentation on a downsampled level, CLAM style: HSV saturation -> median blur -> fixed or Otsu
// threshold -> morphological closing -> contours with holes -> area filters counted in reference tiles.
//
//   TissueConfig cfg;  apply_tissue_preset(cfg, "tcga");
//   TissueMask m = segment_tissue(slide, cfg);     // regions in level-0 coordinates + a raster mask
//   double iou = mask_iou(m.mask, truth);          // both uint8 [h,w], nonzero = tissue
//
// Needs OpenCV (PATHVLM_HAVE_OPENCV); without it segment_* throw a clear "not built in" error.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "wsi/tissue_config.h"

namespace pathvlm::wsi {

class Slide;

bool tissue_segmentation_built_in();

struct Point {
  double x = 0, y = 0;
};
using Polygon = std::vector<Point>;

// One connected tissue region: its outline and the holes kept inside it, in level-0 pixel coordinates.
struct TissueRegion {
  Polygon outline;
  std::vector<Polygon> holes;
  double area_level0 = 0;  // outline area minus kept holes, in level-0 square pixels
};

struct TissueMask {
  std::vector<TissueRegion> regions;  // largest first (segment_tissue_like_clam: OpenCV's contour order)
  torch::Tensor mask;                 // uint8 [h,w] at the segmentation resolution: 1 = tissue
  torch::Tensor image;                // uint8 [h,w,3] the segmented image (for QA thumbnails)
  double downsample_x = 1, downsample_y = 1;  // level-0 pixels per mask pixel
  int source_level = 0;                       // pyramid level the image was read from
};

// Overwrites the segmentation parameters of `config` with a named preset (clam, tcga, bwh_biopsy,
// bwh_resection, synthetic); an unknown name is an Error listing the known ones.
void apply_tissue_preset(TissueConfig& config, const std::string& name);

// The slide at about `downsample` (TissueConfig::seg_downsample): the nearest pyramid level at or above that
// resolution, box-reduced by an integer factor in blocks when the level is finer, so a single-level slide
// never needs a whole gigapixel level in memory. uint8 [h,w,3]; `downsample_x/y` receive the exact factors.
torch::Tensor read_downsampled(Slide& slide, double downsample, double& downsample_x, double& downsample_y,
                               int& source_level);

TissueMask segment_tissue(Slide& slide, const TissueConfig& config);
// Segmentation as CLAM's create_patches_fp does it, for tiling.grid = clam: the pyramid level OpenSlide picks for
// seg_downsample (get_best_level_for_downsample), read whole; CLAM's fixed area thresholds (max_area_share unused);
// outlines at level 0 as CLAM scales them (each contour pixel's index times the level's per-axis downsample,
// truncated to an integer); regions in OpenCV's contour order, not by size.
TissueMask segment_tissue_like_clam(Slide& slide, const TissueConfig& config);
// Segments an RGB uint8 [h,w,3] image whose pixels are `downsample_x/y` level-0 pixels wide.
TissueMask segment_image(const torch::Tensor& rgb, double downsample_x, double downsample_y,
                         const TissueConfig& config);

// Intersection over union of two same-sized masks (nonzero = tissue); 1 when both are empty.
double mask_iou(const torch::Tensor& a, const torch::Tensor& b);

}  // namespace pathvlm::wsi
