// `pathvlm tile`: whole slides -> tissue segmentation -> tile grids -> per-slide coords .h5 (+ QA thumbnails).
#include <chrono>
#include <iostream>
#include <thread>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/config.h"
#include "core/error.h"
#include "wsi/slide.h"
#include "wsi/slide_batch.h"
#include "wsi/tiling.h"
#include "wsi/tissue.h"

namespace pathvlm::cli {

int cmd_tile(const Args& args) {
  ArgParser p("pathvlm tile",
              "Segment tissue and lay tile grids on whole slides; writes <out>/patches/<slide>.h5 (CLAM/TRIDENT "
              "coords), <out>/qa/<slide>.png and <out>/failures.csv. Resumable: finished slides are skipped.");
  p.option("slides",
           "a folder of slides (what OpenSlide opens, and DICOM: one slide per series) or a CSV with a slide (or "
           "wsi/path) column and an optional mpp column",
           true);
  p.option("out", "output folder", true);
  p.option("config", "YAML with tissue: and tiling: sections (see `pathvlm tile --docs`)");
  p.option("preset", "tissue preset: clam, tcga, bwh_biopsy, bwh_resection, synthetic");
  p.option("magnification", "target magnification, e.g. 20");
  p.option("patch-size", "tile edge in pixels at the target magnification");
  p.option("overlap", "tile overlap in target pixels");
  p.option("tissue-test", "four_pt, four_pt_hard, center or fraction");
  p.option("grid", "slide (one grid over the slide) or clam (CLAM's per-region grids: the same coords as CLAM)");
  p.option("mpp-csv", "CSV (slide,mpp) of microns-per-pixel overrides");
  p.option("workers", "slides processed in parallel", false,
           std::to_string(std::max(1u, std::thread::hardware_concurrency())));
  p.standalone_flag("docs", "print every config key with its default and doc, then exit");
  p.positional("overrides", "key=value config overrides, e.g. tissue.sthresh=15", true, false);
  if (!p.parse(args)) return 0;
  if (p.get_flag("docs")) {
    std::cout << cfg::docs<TileJobConfig>();
    return 0;
  }
  PATHVLM_CHECK(wsi::openslide_built_in() && wsi::tissue_segmentation_built_in(),
                "`pathvlm tile` is not built in: it needs OpenSlide and OpenCV (libopenslide-dev, libopencv-dev), "
                "which this build lacks");

  std::vector<std::string> overrides;
  if (p.has("preset")) overrides.push_back("tissue.preset=" + p.get("preset"));
  if (p.has("magnification")) overrides.push_back("tiling.magnification=" + p.get("magnification"));
  if (p.has("patch-size")) overrides.push_back("tiling.patch_size=" + p.get("patch-size"));
  if (p.has("overlap")) overrides.push_back("tiling.overlap=" + p.get("overlap"));
  if (p.has("tissue-test")) overrides.push_back("tiling.tissue_test=" + p.get("tissue-test"));
  if (p.has("grid")) overrides.push_back("tiling.grid=" + p.get("grid"));
  for (const auto& o : p.positionals()) overrides.push_back(o);
  cfg::Document doc =
      p.has("config") ? cfg::Document::from_file(p.get("config")) : cfg::Document::from_string("", "<defaults>");
  doc.override_with(overrides);
  const TileJobConfig config = wsi::read_tile_config(doc);

  auto slides = wsi::list_slides(p.get("slides"));
  if (p.has("mpp-csv")) wsi::apply_mpp_csv(slides, p.get("mpp-csv"));
  PATHVLM_CHECK(!slides.empty(), "slides '", p.get("slides"), "': no slides found");
  const std::string out = p.get("out");
  const int workers = static_cast<int>(p.get_int("workers"));
  PATHVLM_CHECK(workers >= 1, "--workers must be at least 1");

  const auto start = std::chrono::steady_clock::now();
  auto outcomes = wsi::tile_slides(slides, config, out, workers);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  wsi::make_dirs(out);
  wsi::write_failures_csv(out + "/failures.csv", slides, outcomes);
  std::cout << wsi::format_summary(slides, outcomes, seconds);
  size_t failed = 0;
  for (const auto& o : outcomes) failed += o.status == wsi::SlideOutcome::Status::Failed;
  if (failed) std::cout << failed << " slide(s) failed; reasons in " << out << "/failures.csv\n";
  return failed == slides.size() ? 1 : 0;
}

}  // namespace pathvlm::cli
