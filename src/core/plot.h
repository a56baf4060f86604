// Line charts as PNG files, with no plotting library: loss curves of a run, one metric across the runs of a sweep.
//
//   PlotSpec spec{"eval/accuracy", "step", "accuracy", {{"lr=1e-4", steps, acc}, {"lr=3e-4", steps2, acc2}}};
//   write_line_plot_png(spec, run_dir + "/accuracy.png");
//
// Text is drawn with a built-in 5x7 bitmap font (ASCII); the PNG is encoded with zlib. Stays torch-free.
#pragma once
#include <string>
#include <vector>

namespace pathvlm {

struct PlotSeries {
  std::string label;
  std::vector<double> x, y;
};

struct PlotSpec {
  std::string title, x_label, y_label;
  std::vector<PlotSeries> series;
  int width = 800, height = 500;
};

// A line chart (axes with numeric tick labels, one colour per series, a legend) as a PNG file, written atomically
// (temp file + rename). Empty series are skipped; NaN/inf points are skipped. Throws pathvlm::Error naming the path.
void write_line_plot_png(const PlotSpec& spec, const std::string& path);

// The colour series `i` is drawn in (RGB), cycling through a 10-colour palette; what the legend shows.
struct PlotColor {
  unsigned char r, g, b;
};
PlotColor plot_series_color(size_t i);

}  // namespace pathvlm
