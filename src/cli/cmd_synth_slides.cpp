// `pathvlm synth slides`: synthetic pyramidal TIFF slides with known tissue regions, reports and masks.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "synth/slide_synth.h"

namespace pathvlm::cli {

int cmd_synth_slides(const Args& args) {
  ArgParser p("pathvlm synth slides",
              "Write synthetic whole slides: <out>/<prefix>_NNN.tiff (pyramidal tiled TIFF, resolution tags give the "
              "mpp), masks/<prefix>_NNN.png (ground-truth tissue at the coarsest level), regions/<prefix>_NNN.json, "
              "reports.csv (slide_id,report), slides.csv (slide_id,path,mpp,label,...), zeroshot.yaml (class prompts for "
              "zero-shot slide classification) and instruct/ (LLaVA records for report generation and slide chat, "
              "evaluation questions, a tokenizer and a text corpus for the instruct task with a slide encoder).");
  p.option("out", "output folder", true);
  synth::SynthSlidesConfig c;
  p.option("count", "number of slides", false, std::to_string(c.count));
  p.option("width", "level-0 width in pixels", false, std::to_string(c.width));
  p.option("height", "level-0 height in pixels", false, std::to_string(c.height));
  p.option("levels", "pyramid levels (each halves the previous)", false, std::to_string(c.levels));
  p.option("mpp", "level-0 microns per pixel (0.25 = 40x)", false, "0.25");
  p.option("compression", "tile compression: jpeg or deflate", false, c.compression);
  p.option("jpeg-quality", "JPEG quality", false, std::to_string(c.jpeg_quality));
  p.option("tile-size", "TIFF tile edge in pixels (multiple of 16)", false, std::to_string(c.tile_size));
  p.option("min-regions", "fewest tissue regions per slide", false, std::to_string(c.min_regions));
  p.option("max-regions", "most tissue regions per slide", false, std::to_string(c.max_regions));
  p.option("seed", "random seed (the same seed gives the same slides)", false, "0");
  p.option("prefix", "slide ids are PREFIX_NNN (give splits different prefixes to use them side by side)", false,
           c.id_prefix);
  p.option("threads", "slides drawn at once (each its own seed: the files do not depend on it)", false,
           std::to_string(c.threads));
  if (!p.parse(args)) return 0;
  PATHVLM_CHECK(synth::slide_synth_built_in(), "`pathvlm synth slides` needs libtiff, which this build lacks");
  c.count = static_cast<int>(p.get_int("count"));
  c.width = static_cast<int>(p.get_int("width"));
  c.height = static_cast<int>(p.get_int("height"));
  c.levels = static_cast<int>(p.get_int("levels"));
  c.mpp = p.get_double("mpp");
  c.compression = p.get("compression");
  c.jpeg_quality = static_cast<int>(p.get_int("jpeg-quality"));
  c.tile_size = static_cast<int>(p.get_int("tile-size"));
  c.min_regions = static_cast<int>(p.get_int("min-regions"));
  c.max_regions = static_cast<int>(p.get_int("max-regions"));
  c.seed = static_cast<uint64_t>(p.get_int("seed"));
  c.id_prefix = p.get("prefix");
  c.threads = static_cast<int>(p.get_int("threads"));
  PATHVLM_CHECK(!c.id_prefix.empty() && c.id_prefix.find_first_of("/\\ ,") == std::string::npos,
                "--prefix '", c.id_prefix, "': give a non-empty name without slashes, spaces or commas");
  PATHVLM_CHECK(c.count >= 1, "--count must be at least 1");
  PATHVLM_CHECK(c.threads >= 1, "--threads must be at least 1");
  PATHVLM_CHECK(c.mpp > 0, "--mpp must be positive");
  PATHVLM_CHECK(c.jpeg_quality >= 1 && c.jpeg_quality <= 100, "--jpeg-quality must be in 1..100");
  const auto slides = synth::synth_slides(p.get("out"), c);
  for (const auto& s : slides) {
    std::cout << s.id << "  " << s.label << "  tissue " << static_cast<int>(s.tissue_fraction * 100 + 0.5) << "%  "
              << s.report << "\n";
  }
  std::cout << slides.size() << " slides in " << p.get("out") << "\n";
  return 0;
}

}  // namespace pathvlm::cli
