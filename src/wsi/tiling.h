// Tile grids at a target magnification over the tissue of a slide, and the per-slide coords .h5 that CLAM
// and TRIDENT readers load (`coords` int64 [N,2], level-0 top-left x,y). Its attributes make both read exactly the
// region pathvlm reads: `patch_size` pixels at `patch_level` (CLAM's Whole_Slide_Bag_FP), and TRIDENT's
// patch_size * level0_magnification / target_magnification = patch_size_level0 at the level it picks. The nominal
// tile (tiling.patch_size at tiling.magnification, which the read region is resized to) is `target_patch_size` at
// `magnification`; see docs/formats.md.
//
//   GridGeometry g = plan_grid(slide, mpp, cfg.tiling);        // read level, level-0 tile size and step
//   torch::Tensor xy = select_tiles(mask, g, cfg.tiling);      // row-major over the slide, kept by tissue
//   write_coords_h5("patches/a.h5.tmp", tiles);                 // then commit_file() renames it
//   SlideTiles back = read_coords_h5("patches/a.h5");
#pragma once
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "wsi/slide_batch.h"
#include "wsi/tiling_config.h"
#include "wsi/tissue.h"

namespace pathvlm::h5 {
class Group;
}

namespace pathvlm::wsi {

class Slide;

struct GridGeometry {
  double mpp = 0;                   // level-0 microns per pixel (as measured, not bucketed)
  double level0_magnification = 0;  // nominal, bucketed from mpp as TRIDENT does
  double target_magnification = 0;
  int patch_size = 0;               // tile edge at the target magnification
  int overlap = 0;                  // in target pixels
  int64_t patch_size_level0 = 0;    // tile edge in level-0 pixels: read_size * read_downsample
  int64_t step_level0 = 0;          // grid stride in level-0 pixels
  int read_level = 0;               // pyramid level tiles are read from
  double read_downsample = 1;       // that level's downsample
  int64_t read_size = 0;            // tile edge at read_level; resized to patch_size when different
  int64_t level0_width = 0, level0_height = 0;
  int64_t read_level_width = 0, read_level_height = 0;  // read_level's dimensions (CLAM's level_dim)
};

// Plans the grid for `slide` whose level-0 pixel is `mpp` microns: the read level is the coarsest at or above
// the target resolution, read_size = round(patch_size * level0_mag / target_mag / read_downsample), and the
// level-0 footprint is what that read covers. A target magnification above the slide's own is an Error naming
// the slide.
GridGeometry plan_grid(const Slide& slide, double mpp, const TilingConfig& config);
GridGeometry plan_grid(int64_t level0_width, int64_t level0_height, const std::vector<double>& level_downsamples,
                       double mpp, const TilingConfig& config, const std::string& slide_name);

// Grid positions (level-0 top-left) that pass the tissue test, int64 [N,2] of (x, y). tiling.grid = slide: row-major,
// tiles fully inside the slide; clam: CLAM's process_contour over each region of a segment_tissue_like_clam mask.
torch::Tensor select_tiles(const TissueMask& mask, const GridGeometry& grid, const TilingConfig& config);

// Point in polygon (even-odd rule), exposed for tests.
bool point_in_polygon(const Polygon& polygon, double x, double y);

// One slide's tiling result as stored in its coords .h5.
struct SlideTiles {
  std::string slide_id;
  std::string slide_path;
  GridGeometry grid;
  torch::Tensor coords;   // int64 [N,2]
  std::string settings;   // YAML of the settings that produced it (resume checks it)
};

void write_coords_h5(const std::string& path, const SlideTiles& tiles);
// The `coords` dataset with its attributes, in `group` (per-slide features files carry it too).
void write_coords_dataset(h5::Group& group, const SlideTiles& tiles);
// Reads pathvlm's, TRIDENT's or CLAM's coords file (told apart by their attributes) into pathvlm's geometry.
SlideTiles read_coords_h5(const std::string& path);
// The `settings` attribute of a coords or features file, "" when the file is unreadable or lacks it.
std::string read_settings_attr(const std::string& path);

// QA thumbnail: `image` (uint8 [h,w,3], `downsample_x/y` level-0 pixels per pixel, e.g. from read_downsampled)
// with the tissue outlines (green), kept holes (blue) and kept tiles (dark outlines) drawn on it. Needs OpenCV.
torch::Tensor draw_qa_thumbnail(const torch::Tensor& image, double downsample_x, double downsample_y,
                                const TissueMask& mask, const torch::Tensor& coords, const GridGeometry& grid);

// The whole `pathvlm tile` run: for each slide, open -> mpp -> segment -> grid -> tissue test ->
// <out>/patches/<id>.h5 (+ <out>/qa/<id>.png), `workers` slides at a time. Outputs are written to temp files
// and renamed; a slide whose coords file exists with the same settings is skipped, stale temp files are redone.
// Failures are recorded in the outcomes (the caller writes failures.csv) and the batch goes on.
std::vector<SlideOutcome> tile_slides(const std::vector<SlideEntry>& slides, const TileJobConfig& config,
                                      const std::string& out_dir, int workers);

// The tile config from a YAML document (file + overrides): the tissue preset it names is applied first and every
// key given explicitly overrides it. Throws on unknown keys and bad values, naming them.
TileJobConfig read_tile_config(const cfg::Document& doc);

// The settings text stored in each coords file: the config as YAML plus the slide's mpp override.
std::string tiling_settings(const TileJobConfig& config, double mpp_override);

}  // namespace pathvlm::wsi
