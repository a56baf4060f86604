// Whole-slide throughput, per core: raw OpenSlide region reads (the bound), tiling (segmentation + grid +
// tissue test + coords file), tile reading + preprocessing for the encoder, and encoder tiles/s (CUDA + bf16
// when present). Prints markdown rows for benchmarks/RESULTS.md.
//
//   bench_tiling [--slides DIR] [--count 4] [--width 8192] [--height 6144] [--preset ViT-B-16] [--batch 256]
//                [--iters 20]
// Without --slides it writes synthetic slides (pathvlm synth slides) into a temp folder first.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>

#include "bench_args.h"
#include "core/compat.h"
#include "core/error.h"
#include "wsi/embed.h"
#include "data/image.h"
#include "wsi/slide.h"
#include "wsi/slide_batch.h"
#include "synth/slide_synth.h"
#include "wsi/tiling.h"
#include "wsi/tissue.h"
#include "models/clip/model.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using bench::arg;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void row(const std::string& what, double per_s, const std::string& unit, const std::string& note) {
  std::printf("| %s | %.1f %s | %s |\n", what.c_str(), per_s, unit.c_str(), note.c_str());
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  torch::set_num_threads(1);  // per-core numbers
  const int iters = std::stoi(arg(argc, argv, "--iters", "20"));
  const int batch = std::stoi(arg(argc, argv, "--batch", "256"));
  const std::string preset = arg(argc, argv, "--preset", "ViT-B-16");
  std::printf("| measurement | rate | setup |\n|---|---|---|\n");

  if (wsi::openslide_built_in() && wsi::tissue_segmentation_built_in()) {
    std::string slides_dir = arg(argc, argv, "--slides", "");
    const auto tmp = fs::temp_directory_path() / ("pathvlm_bench_tiling_" + std::to_string(::getpid()));
    if (slides_dir.empty()) {
      PATHVLM_CHECK(synth::slide_synth_built_in(), "no --slides and no libtiff for synthetic slides");
      synth::SynthSlidesConfig sc;
      sc.count = std::stoi(arg(argc, argv, "--count", "4"));
      sc.width = std::stoi(arg(argc, argv, "--width", "8192"));
      sc.height = std::stoi(arg(argc, argv, "--height", "6144"));
      sc.levels = 4;
      slides_dir = (tmp / "slides").string();
      auto s0 = Clock::now();
      synth::synth_slides(slides_dir, sc);
      row("synth slides: slides/s (1 thread)", sc.count / seconds_since(s0), "slides/s",
          std::to_string(sc.width) + "x" + std::to_string(sc.height) + ", " + std::to_string(sc.levels) + " levels, JPEG");
    }
    auto slides = wsi::list_slides(slides_dir);
    TileJobConfig config;
    wsi::apply_tissue_preset(config.tissue, "synthetic");
    config.tiling.qa_max_size = 0;
    const std::string setup = std::to_string(slides.size()) + " slides from " + slides_dir + ", 256 px at 20x, 1 thread";

    // Tiling: segmentation + grid + tissue test + coords file, one slide at a time on one thread.
    auto t0 = Clock::now();
    auto outcomes = wsi::tile_slides(slides, config, (tmp / "tiles").string(), 1);
    const double tiling_s = seconds_since(t0);
    int64_t tiles = 0;
    for (const auto& o : outcomes) tiles += o.tiles;
    row("tile: slides/s per core", slides.size() / tiling_s, "slides/s", setup);
    row("tile: tiles/s per core (grid + tissue test)", tiles / tiling_s, "tiles/s", setup);

    // Raw OpenSlide reads of the kept tiles at their read level (the bound), then read + resize + normalise.
    int64_t read = 0, prepared = 0;
    double raw_s = 0, prep_s = 0;
    for (const auto& s : slides) {
      const std::string coords_file = (tmp / "tiles" / "patches" / (s.id + ".h5")).string();
      if (!fs::exists(coords_file)) continue;
      auto t = wsi::read_coords_h5(coords_file);
      auto slide = wsi::Slide::open(s.path);
      auto xy = t.coords.accessor<int64_t, 2>();
      std::vector<uint8_t> buffer(static_cast<size_t>(t.grid.read_size * t.grid.read_size * 3));
      auto r0 = Clock::now();
      for (int64_t i = 0; i < t.coords.size(0); ++i, ++read) {
        slide.read_region(xy[i][0], xy[i][1], t.grid.read_level, t.grid.read_size, t.grid.read_size, buffer.data());
      }
      raw_s += seconds_since(r0);
      auto p0 = Clock::now();
      for (int64_t i = 0; i < t.coords.size(0); ++i, ++prepared) {
        auto rgb = slide.read_region(xy[i][0], xy[i][1], t.grid.read_level, t.grid.read_size, t.grid.read_size);
        auto x = data::normalize_openai(data::resize_bicubic(rgb, 224, 224));
      }
      prep_s += seconds_since(p0);
    }
    if (read) row("raw OpenSlide read_region of the tiles per core", read / raw_s, "tiles/s", setup);
    if (prepared) row("read + resize 224 + normalise per core", prepared / prep_s, "tiles/s", setup);
    fs::remove_all(tmp);
  } else {
    std::printf("| tiling | not built (needs OpenSlide + OpenCV) | |\n");
  }

  // Encoder throughput on random weights (speed does not depend on the values).
  models::ClipModelConfig mc;
  mc.preset = preset;
  models::ClipModel model(models::resolve_clip_config(mc));
  const bool cuda = torch::cuda::is_available();
  torch::Device device = cuda ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  if (!cuda) torch::set_num_threads(static_cast<int>(std::thread::hardware_concurrency()));
  model->to(device);
  model->eval();
  const int s = model->config().image_size;
  const int b = cuda ? batch : std::min(batch, 8);
  auto pixels = torch::randn({b, 3, s, s}, torch::TensorOptions().device(device));
  torch::NoGradGuard no_grad;
  compat::CudaAutocastGuard autocast(cuda, torch::kBFloat16);
  for (int i = 0; i < (cuda ? 3 : 1); ++i) model->encode_image(pixels);
  if (cuda) torch::cuda::synchronize();
  const int n = cuda ? iters : 2;
  auto e0 = Clock::now();
  for (int i = 0; i < n; ++i) model->encode_image(pixels);
  if (cuda) torch::cuda::synchronize();
  const double enc_s = seconds_since(e0);
  row("embed: " + preset + " encode_image", n * b / enc_s, "tiles/s",
      std::string(cuda ? "CUDA bf16 autocast" : "CPU fp32, all cores") + ", batch " + std::to_string(b) + ", " +
          std::to_string(s) + " px");
  return 0;
}
