// Synthetic whole slides for demos and tests: pyramidal tiled TIFFs (JPEG or deflate tiles, resolution tags so
// OpenSlide reports microns per pixel) with tissue regions of known classes, painted with the texture generator
// of `synth tiles` on a white glass background, plus a report per slide that describes what is in it (varied
// wording), the ground-truth tissue mask and the regions as JSON.
//
//   SynthSlidesConfig c;  c.count = 4;  c.width = 2048;  c.height = 1536;
//   auto slides = synth_slides("demo/slides", c);
//   // demo/slides/slide_000.tiff, masks/slide_000.png, regions/slide_000.json, reports.csv, slides.csv,
//   // zeroshot.yaml (report-style class prompts; slides.csv's label names the class), instruct/ (report and chat
//   // records about the slides, evaluation questions, a tokenizer and a text corpus: slide_instruct.h)
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace pathvlm::synth {

bool slide_synth_built_in();  // needs libtiff (PATHVLM_HAVE_LIBTIFF)

struct SynthSlidesConfig {
  int count = 4;
  int width = 2048, height = 1536;  // level 0
  int levels = 3;                   // each level halves the previous one
  double mpp = 0.25;                // level-0 microns per pixel (40x)
  std::string compression = "jpeg";  // jpeg | deflate
  int jpeg_quality = 90;
  int tile_size = 256;
  int min_regions = 2, max_regions = 4;
  double hole_probability = 0.3;    // chance that a region has a glass hole (lumen) in it
  uint64_t seed = 0;
  std::string id_prefix = "slide";  // slide ids <prefix>_NNN: other prefixes keep splits apart in one id space
  int threads = 2;                  // slides drawn at once (the files do not depend on it)
};

struct SynthRegion {
  int tissue_class = 0;             // synth::TissueClass
  std::string class_key;
  int64_t x0 = 0, y0 = 0, x1 = 0, y1 = 0;  // level-0 bounding box
  double area_fraction = 0;         // share of this slide's tissue pixels that show this class
  bool has_hole = false;
};

struct SynthSlide {
  std::string id, tiff_path, mask_path;
  std::vector<SynthRegion> regions;
  std::string report;
  std::string label;                // class key covering the most tissue
  double tissue_fraction = 0;       // share of the slide covered by tissue
};

// Writes one slide: `index` and config.seed fix everything. `mask` receives the ground-truth tissue mask at the
// coarsest level's resolution (uint8 [h,w], 1 = tissue) when not null.
SynthSlide write_synthetic_slide(const std::string& tiff_path, int index, const SynthSlidesConfig& config,
                                 torch::Tensor* mask = nullptr);

// Writes config.count slides into `out_dir` (see the header comment); returns them in order.
std::vector<SynthSlide> synth_slides(const std::string& out_dir, const SynthSlidesConfig& config);

// The request of the report records `synth slides` writes (instruct/reports.json), and `pathvlm generate --slide`'s
// default prompt.
inline constexpr const char* kSlideReportPrompt = "Write the pathology report for this slide.";

// The tissue classes of `regions` with their summed share of the tissue, (share, class), largest share first.
std::vector<std::pair<double, int>> synth_class_shares(const std::vector<SynthRegion>& regions);

// A pathology-style report of the slide's regions, worded differently per seed.
std::string synth_report(const std::vector<SynthRegion>& regions, uint64_t seed);

}  // namespace pathvlm::synth
