// Line charts as PNG, decoded back with the project's own image decoder (libpng).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <limits>

#include "core/error.h"
#include "core/plot.h"
#include "data/image.h"

namespace fs = std::filesystem;
using namespace pathvlm;

namespace {

fs::path scratch(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_plot_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

// Pixels of `img` [H,W,3] exactly of colour `c`.
int64_t count_color(const torch::Tensor& img, PlotColor c) {
  auto match = (img.select(2, 0) == c.r) & (img.select(2, 1) == c.g) & (img.select(2, 2) == c.b);
  return match.sum().item<int64_t>();
}

}  // namespace

TEST(Plot, WritesAPngWithEachSeriesInItsColourAndSkipsEmptyAndNonFinite) {
  auto dir = scratch("lines");
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  PlotSpec spec;
  spec.title = "train/loss";
  spec.x_label = "step";
  spec.y_label = "loss";
  spec.width = 640;
  spec.height = 360;
  spec.series.push_back({"lr=1e-4", {0, 10, 20, 30}, {6.0, 4.0, nan, 2.5}});
  spec.series.push_back({"empty", {}, {}});
  spec.series.push_back({"lr=3e-4", {0, 10, 20, 30, 40}, {6.0, 3.0, 2.0, inf, 1.5}});
  const auto path = (dir / "loss.png").string();
  write_line_plot_png(spec, path);

  auto img = data::read_image(path);
  ASSERT_EQ(img.size(0), 360);
  ASSERT_EQ(img.size(1), 640);
  EXPECT_GT(count_color(img, plot_series_color(0)), 100);  // a 2-pixel line across most of the width
  EXPECT_GT(count_color(img, plot_series_color(2)), 100);
  EXPECT_EQ(count_color(img, plot_series_color(1)), 0);     // the empty series is neither drawn nor in the legend
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  fs::remove_all(dir);
}

TEST(Plot, AllEmptyOrFlatSeriesStillGiveAChart) {
  auto dir = scratch("flat");
  PlotSpec spec;
  spec.series.push_back({"flat", {1, 2, 3}, {0.5, 0.5, 0.5}});
  spec.series.push_back({"one point", {2}, {0.5}});
  write_line_plot_png(spec, (dir / "flat.png").string());
  auto img = data::read_image((dir / "flat.png").string());
  EXPECT_EQ(img.size(0), 500);
  EXPECT_EQ(img.size(1), 800);
  EXPECT_GT(count_color(img, plot_series_color(0)), 50);
  EXPECT_GT(count_color(img, plot_series_color(1)), 10);
  write_line_plot_png(PlotSpec{}, (dir / "none.png").string());
  EXPECT_EQ(data::read_image((dir / "none.png").string()).size(1), 800);
  fs::remove_all(dir);
}

TEST(Plot, ErrorsNameThePath) {
  auto dir = scratch("errors");
  const auto missing = (dir / "no_such_dir" / "p.png").string();
  try {
    write_line_plot_png(PlotSpec{}, missing);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(missing), std::string::npos) << e.what();
  }
  PlotSpec bad;
  bad.series.push_back({"x", {1, 2}, {1}});
  EXPECT_THROW(write_line_plot_png(bad, (dir / "bad.png").string()), Error);
  bad.series.clear();
  bad.width = 10;
  EXPECT_THROW(write_line_plot_png(bad, (dir / "small.png").string()), Error);
  fs::remove_all(dir);
}
