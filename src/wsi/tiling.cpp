// Tile grids, tissue tests and coords files: see tiling.h.
#include "wsi/tiling.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "io/hdf5.h"
#include "data/image.h"
#include "wsi/slide.h"

#ifdef PATHVLM_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#endif

namespace pathvlm::wsi {

GridGeometry plan_grid(int64_t width, int64_t height, const std::vector<double>& level_downsamples, double mpp,
                       const TilingConfig& config, const std::string& slide_name) {
  PATHVLM_CHECK(mpp > 0, "slide '", slide_name, "': microns per pixel must be positive, got ", mpp);
  GridGeometry g;
  g.mpp = mpp;
  g.level0_magnification = magnification_from_mpp(mpp);
  g.target_magnification = config.magnification;
  g.patch_size = config.patch_size;
  g.overlap = config.overlap;
  g.level0_width = width, g.level0_height = height;
  PATHVLM_CHECK(config.magnification <= g.level0_magnification * 1.001, "slide '", slide_name,
                "': target magnification ", config.magnification, "x is above the slide's own ",
                g.level0_magnification, "x (", mpp, " um/px)");
  PATHVLM_CHECK(config.overlap < config.patch_size, "tiling.overlap (", config.overlap,
                ") must be smaller than tiling.patch_size (", config.patch_size, ")");
  // Level-0 pixels per target pixel, from the nominal magnifications (TRIDENT: ps * src_mag / target_mag).
  const double ratio = g.level0_magnification / config.magnification;
  g.patch_size_level0 = std::llround(config.patch_size * ratio);
  g.step_level0 = g.patch_size_level0 - std::llround(config.overlap * ratio);
  PATHVLM_CHECK(g.step_level0 > 0, "slide '", slide_name, "': grid step is not positive");
  // The coarsest level at or above the target resolution, then resized to patch_size.
  g.read_level = 0;
  for (int i = 0; i < static_cast<int>(level_downsamples.size()); ++i) {
    if (level_downsamples[i] <= ratio * 1.01 && level_downsamples[i] > level_downsamples[g.read_level]) g.read_level = i;
  }
  g.read_downsample = level_downsamples.empty() ? 1.0 : level_downsamples[g.read_level];
  g.read_size = std::max<int64_t>(1, std::llround(g.patch_size_level0 / g.read_downsample));
  return g;
}

GridGeometry plan_grid(const Slide& slide, double mpp, const TilingConfig& config) {
  std::vector<double> downsamples;
  for (const auto& l : slide.levels()) downsamples.push_back(l.downsample);
  return plan_grid(slide.width(), slide.height(), downsamples, mpp, config, slide.path());
}

bool point_in_polygon(const Polygon& polygon, double x, double y) {
  bool inside = false;
  const size_t n = polygon.size();
  for (size_t i = 0, j = n - 1; i < n; j = i++) {
    const Point& a = polygon[i];
    const Point& b = polygon[j];
    if ((a.y > y) != (b.y > y) && x < (b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x) inside = !inside;
  }
  return inside;
}

namespace {

// Where a horizontal line crosses a polygon, sorted: x is inside iff an odd number of crossings lie left of it.
// Matches point_in_polygon's half-open rule, so both tests agree on every point.
class Scanline {
 public:
  Scanline(const Polygon& polygon, double y) {
    const size_t n = polygon.size();
    for (size_t i = 0, j = n - 1; i < n; j = i++) {
      const Point& a = polygon[i];
      const Point& b = polygon[j];
      if ((a.y > y) != (b.y > y)) xs_.push_back((b.x - a.x) * (y - a.y) / (b.y - a.y) + a.x);
    }
    std::sort(xs_.begin(), xs_.end());
  }
  bool inside(double x) const {
    // crossings strictly greater than x
    const auto right = xs_.end() - std::upper_bound(xs_.begin(), xs_.end(), x);
    return right % 2 == 1;
  }

 private:
  std::vector<double> xs_;
};

struct Bounds {
  double x0, y0, x1, y1;
};

Bounds bounds_of(const Polygon& p) {
  Bounds b{1e300, 1e300, -1e300, -1e300};
  for (const auto& q : p) {
    b.x0 = std::min(b.x0, q.x), b.y0 = std::min(b.y0, q.y);
    b.x1 = std::max(b.x1, q.x), b.y1 = std::max(b.y1, q.y);
  }
  return b;
}

}  // namespace

torch::Tensor select_tiles(const TissueMask& mask, const GridGeometry& g, const TilingConfig& config) {
  std::vector<int64_t> kept;
  const int64_t ps0 = g.patch_size_level0, step = g.step_level0;
  if (g.level0_width < ps0 || g.level0_height < ps0) return torch::zeros({0, 2}, torch::kInt64);
  const int64_t nx = (g.level0_width - ps0) / step + 1, ny = (g.level0_height - ps0) / step + 1;

  if (config.tissue_test == "fraction") {
    // Tissue share from the raster mask via an integral image.
    PATHVLM_CHECK(mask.mask.defined() && mask.mask.dim() == 2, "select_tiles: the tissue mask has no raster");
    const int64_t h = mask.mask.size(0), w = mask.mask.size(1);
    auto integral = torch::zeros({h + 1, w + 1}, torch::kInt64);
    integral.slice(0, 1).slice(1, 1).copy_(mask.mask.ne(0).to(torch::kInt64).cumsum(0).cumsum(1));
    auto I = integral.accessor<int64_t, 2>();
    for (int64_t iy = 0; iy < ny; ++iy) {
      const int64_t y = iy * step;
      const int64_t py0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(y / mask.downsample_y)), 0, h);
      const int64_t py1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((y + ps0) / mask.downsample_y)), 0, h);
      for (int64_t ix = 0; ix < nx; ++ix) {
        const int64_t x = ix * step;
        const int64_t px0 = std::clamp<int64_t>(static_cast<int64_t>(std::floor(x / mask.downsample_x)), 0, w);
        const int64_t px1 = std::clamp<int64_t>(static_cast<int64_t>(std::ceil((x + ps0) / mask.downsample_x)), 0, w);
        const int64_t area = (py1 - py0) * (px1 - px0);
        if (area <= 0) continue;
        const int64_t tissue = I[py1][px1] - I[py0][px1] - I[py1][px0] + I[py0][px0];
        const bool keep = config.min_tissue_fraction <= 0 ? tissue > 0
                                                          : tissue >= config.min_tissue_fraction * area;
        if (keep) kept.insert(kept.end(), {x, y});
      }
    }
  } else {
    const bool hard = config.tissue_test == "four_pt_hard", center_only = config.tissue_test == "center";
    PATHVLM_CHECK(hard || center_only || config.tissue_test == "four_pt", "tiling.tissue_test '",
                  config.tissue_test, "' is unknown (four_pt, four_pt_hard, center, fraction)");
    std::vector<Bounds> region_bounds;
    for (const auto& r : mask.regions) region_bounds.push_back(bounds_of(r.outline));
    const double shift = static_cast<double>(ps0 / 2 / 2);  // CLAM: patch_size // 2 // 2
    for (int64_t iy = 0; iy < ny; ++iy) {
      const int64_t y = iy * step;
      const double cy = y + ps0 / 2;
      // Per region, the three lines the tests need: centre -/+ shift for the points, centre for the holes.
      struct RegionLines {
        size_t region;
        Scanline top, mid, bottom;
        std::vector<Scanline> holes;
      };
      std::vector<RegionLines> lines;
      for (size_t r = 0; r < mask.regions.size(); ++r) {
        const Bounds& b = region_bounds[r];
        if (b.y1 < cy - shift || b.y0 > cy + shift) continue;
        const auto& region = mask.regions[r];
        RegionLines l{r, Scanline(region.outline, cy - shift), Scanline(region.outline, cy),
                      Scanline(region.outline, cy + shift), {}};
        for (const auto& hole : region.holes) l.holes.emplace_back(hole, cy);
        lines.push_back(std::move(l));
      }
      if (lines.empty()) continue;
      for (int64_t ix = 0; ix < nx; ++ix) {
        const int64_t x = ix * step;
        const double cx = x + ps0 / 2;
        for (const auto& l : lines) {
          const Bounds& b = region_bounds[l.region];
          if (b.x1 < cx - shift || b.x0 > cx + shift) continue;
          bool pass;
          if (center_only) {
            pass = l.mid.inside(cx);
          } else {
            const int inside = l.top.inside(cx - shift) + l.top.inside(cx + shift) + l.bottom.inside(cx - shift) +
                               l.bottom.inside(cx + shift);
            pass = hard ? inside == 4 : inside >= 1;
          }
          if (!pass) continue;
          bool in_hole = false;
          for (const auto& hole : l.holes) in_hole = in_hole || hole.inside(cx);
          if (in_hole) continue;
          kept.insert(kept.end(), {x, y});
          break;
        }
      }
    }
  }
  const int64_t n = static_cast<int64_t>(kept.size() / 2);
  return torch::from_blob(kept.data(), {n, 2}, torch::kInt64).clone();
}

void write_coords_dataset(h5::Group& group, const SlideTiles& t) {
  PATHVLM_CHECK(t.coords.dim() == 2 && t.coords.size(1) == 2 && t.coords.scalar_type() == torch::kInt64,
                group.where(), ": coords must be int64 [N,2], got ", t.coords.sizes(), " ", t.coords.scalar_type());
  // Extendable with row chunks, as CLAM's (N, 2) maxshape (None, 2) coords, so readers may append.
  auto coords = group.create("coords", torch::kInt64, {2}, {{1024, 2}, 0, false});
  if (t.coords.size(0) > 0) coords.append(t.coords.contiguous());
  const GridGeometry& g = t.grid;
  coords.set_attr("patch_size", static_cast<int64_t>(g.patch_size));
  coords.set_attr("patch_size_level0", g.patch_size_level0);
  coords.set_attr("step_size_level0", g.step_level0);
  coords.set_attr("overlap", static_cast<int64_t>(g.overlap));
  coords.set_attr("level0_magnification", g.level0_magnification);
  coords.set_attr("target_magnification", g.target_magnification);
  coords.set_attr("magnification", g.target_magnification);
  coords.set_attr("mpp", g.mpp);
  coords.set_attr("level0_width", g.level0_width);
  coords.set_attr("level0_height", g.level0_height);
  coords.set_attr("patch_level", static_cast<int64_t>(g.read_level));
  coords.set_attr("downsample", g.read_downsample);
  coords.set_attr("read_size", g.read_size);
  coords.set_attr("name", t.slide_id);
  coords.set_attr("slide_path", t.slide_path);
}

void write_coords_h5(const std::string& path, const SlideTiles& t) {
  auto file = h5::File::create(path);
  write_coords_dataset(file, t);
  file.set_attr("settings", t.settings);
}

SlideTiles read_coords_h5(const std::string& path) {
  auto file = h5::File::open(path);
  auto coords = file.dataset("coords");
  SlideTiles t;
  t.coords = coords.read().to(torch::kInt64);
  PATHVLM_CHECK(t.coords.dim() == 2 && t.coords.size(1) == 2, "'", path, "': dataset '/coords' must be [N,2], is ",
                t.coords.sizes());
  for (const char* required : {"patch_size", "patch_size_level0"}) {
    PATHVLM_CHECK(coords.has_attr(required), "'", path, "': dataset '/coords' lacks the attribute '", required,
                  "' (a CLAM/TRIDENT or pathvlm coords file is expected)");
  }
  GridGeometry& g = t.grid;
  auto opt_int = [&](const char* name, int64_t fallback) {
    return coords.has_attr(name) ? coords.attr_int(name) : fallback;
  };
  auto opt_double = [&](const char* name, double fallback) {
    return coords.has_attr(name) ? coords.attr_double(name) : fallback;
  };
  g.patch_size = static_cast<int>(coords.attr_int("patch_size"));
  g.patch_size_level0 = coords.attr_int("patch_size_level0");
  g.step_level0 = opt_int("step_size_level0", g.patch_size_level0);
  g.overlap = static_cast<int>(opt_int("overlap", 0));
  g.level0_magnification = opt_double("level0_magnification", 0);
  g.target_magnification = opt_double("target_magnification", 0);
  g.mpp = opt_double("mpp", g.level0_magnification > 0 ? 10.0 / g.level0_magnification : 0);
  g.level0_width = opt_int("level0_width", 0);
  g.level0_height = opt_int("level0_height", 0);
  g.read_level = static_cast<int>(opt_int("patch_level", 0));
  g.read_downsample = opt_double("downsample", 1.0);
  g.read_size = opt_int("read_size", std::llround(g.patch_size_level0 / g.read_downsample));
  t.slide_id = coords.has_attr("name") ? coords.attr_string("name") : "";
  t.slide_path = coords.has_attr("slide_path") ? coords.attr_string("slide_path") : "";
  t.settings = file.has_attr("settings") ? file.attr_string("settings") : "";
  return t;
}

std::string read_settings_attr(const std::string& path) {
  try {
    auto file = h5::File::open(path);
    return file.has_attr("settings") ? file.attr_string("settings") : "";
  } catch (const Error&) {
    return "";
  }
}

#ifdef PATHVLM_HAVE_OPENCV

torch::Tensor draw_qa_thumbnail(const torch::Tensor& image, double downsample_x, double downsample_y,
                                const TissueMask& mask, const torch::Tensor& coords, const GridGeometry& g) {
  PATHVLM_CHECK(image.dim() == 3 && image.size(2) == 3, "draw_qa_thumbnail: expected an RGB image");
  auto out = image.contiguous().clone();
  const int th = static_cast<int>(out.size(0)), tw = static_cast<int>(out.size(1));
  cv::Mat dst(th, tw, CV_8UC3, out.data_ptr<uint8_t>());
  // Level-0 -> thumbnail pixels.
  const double sx = 1.0 / downsample_x, sy = 1.0 / downsample_y;
  auto to_cv = [&](const Polygon& p) {
    std::vector<cv::Point> q;
    for (const auto& v : p) q.emplace_back(static_cast<int>(v.x * sx), static_cast<int>(v.y * sy));
    return q;
  };
  auto coords_c = coords.contiguous();
  auto xy = coords_c.accessor<int64_t, 2>();
  for (int64_t i = 0; i < coords.size(0); ++i) {
    cv::Point a(static_cast<int>(xy[i][0] * sx), static_cast<int>(xy[i][1] * sy));
    cv::Point b(static_cast<int>((xy[i][0] + g.patch_size_level0) * sx) - 1,
                static_cast<int>((xy[i][1] + g.patch_size_level0) * sy) - 1);
    cv::rectangle(dst, a, b, cv::Scalar(40, 40, 40), 1);
  }
  const int thickness = std::max(1, std::max(th, tw) / 400);
  for (const auto& region : mask.regions) {
    std::vector<std::vector<cv::Point>> outline{to_cv(region.outline)};
    cv::polylines(dst, outline, true, cv::Scalar(0, 200, 0), thickness);
    for (const auto& hole : region.holes) {
      std::vector<std::vector<cv::Point>> h{to_cv(hole)};
      cv::polylines(dst, h, true, cv::Scalar(0, 0, 255), thickness);
    }
  }
  return out;
}

#else

torch::Tensor draw_qa_thumbnail(const torch::Tensor&, double, double, const TissueMask&, const torch::Tensor&,
                                const GridGeometry&) {
  throw Error("QA thumbnails need OpenCV, which this build lacks");
}

#endif

}  // namespace pathvlm::wsi

namespace pathvlm::wsi {

TileJobConfig read_tile_config(const cfg::Document& doc) {
  const TileJobConfig named = cfg::read<TileJobConfig>(doc);
  TileJobConfig config;
  apply_tissue_preset(config.tissue, named.tissue.preset);
  cfg::ReaderVisitor reader(doc);
  config.visit(reader);
  reader.finish();
  return config;
}

std::string tiling_settings(const TileJobConfig& config, double mpp_override) {
  return cfg::to_yaml(config) + str("mpp_override: ", mpp_override, "\n");
}

std::vector<SlideOutcome> tile_slides(const std::vector<SlideEntry>& slides, const TileJobConfig& config,
                                      const std::string& out_dir, int workers) {
  const std::string patches_dir = out_dir + "/patches", qa_dir = out_dir + "/qa";
  make_dirs(patches_dir);
  if (config.tiling.qa_max_size > 0) make_dirs(qa_dir);
  return run_slide_batch(slides, workers, "tiling", [&](const SlideEntry& entry, SlideJob& job) {
    const std::string final_h5 = patches_dir + "/" + entry.id + ".h5";
    const std::string settings = tiling_settings(config, entry.mpp);
    SlideOutcome outcome;
    job.stage = "resume";
    if (file_exists(final_h5)) {
      if (read_settings_attr(final_h5) == settings) {
        SlideTiles done = read_coords_h5(final_h5);
        outcome = SlideOutcome::skipped(done.coords.size(0));
        outcome.mpp = done.grid.mpp, outcome.magnification = done.grid.target_magnification;
        return outcome;
      }
      outcome.note = "redone: the existing output was made with other settings";
    }
    job.stage = "open";
    Slide slide = Slide::open(entry.path);
    job.stage = "mpp";
    const double mpp = slide_mpp(slide, entry.mpp);
    job.stage = "grid";
    SlideTiles tiles;
    tiles.slide_id = entry.id;
    tiles.slide_path = entry.path;
    tiles.settings = settings;
    tiles.grid = plan_grid(slide, mpp, config.tiling);
    job.stage = "segment";
    TissueMask mask = segment_tissue(slide, config.tissue);
    job.stage = "tissue test";
    tiles.coords = select_tiles(mask, tiles.grid, config.tiling);
    if (config.tiling.qa_max_size > 0) {
      job.stage = "qa thumbnail";
      const std::string png = qa_dir + "/" + entry.id + ".png";
      const double downsample =
          std::max(1.0, static_cast<double>(std::max(slide.width(), slide.height())) / config.tiling.qa_max_size);
      double qx = 1, qy = 1;
      int qa_level = 0;
      auto thumbnail = read_downsampled(slide, downsample, qx, qy, qa_level);
      data::write_file_bytes(temp_path(png), data::encode_png(draw_qa_thumbnail(thumbnail, qx, qy, mask, tiles.coords,
                                                                                tiles.grid)));
      commit_file(temp_path(png), png);
    }
    job.stage = "write";
    write_coords_h5(temp_path(final_h5), tiles);
    commit_file(temp_path(final_h5), final_h5);
    outcome.tiles = tiles.coords.size(0);
    outcome.mpp = mpp, outcome.magnification = tiles.grid.target_magnification;
    return outcome;
  });
}

}  // namespace pathvlm::wsi
