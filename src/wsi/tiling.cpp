// Tile grids, tissue tests and coords files: see tiling.h.
#include "wsi/tiling.h"

#include <algorithm>
#include <cmath>

#include <hdf5.h>

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
  // The coarsest level at or above the target resolution, then resized to patch_size.
  g.read_level = 0;
  for (int i = 0; i < static_cast<int>(level_downsamples.size()); ++i) {
    if (level_downsamples[i] <= ratio * 1.01 && level_downsamples[i] > level_downsamples[g.read_level]) g.read_level = i;
  }
  g.read_downsample = level_downsamples.empty() ? 1.0 : level_downsamples[g.read_level];
  g.read_size = std::max<int64_t>(1, std::llround(config.patch_size * ratio / g.read_downsample));
  // The footprint is exactly what the read covers, so CLAM (patch_size at patch_level) and TRIDENT (patch_size *
  // level0_mag / target_mag) readers of the coords file land on the same level-0 square as pathvlm.
  g.patch_size_level0 = std::llround(g.read_size * g.read_downsample);
  g.step_level0 = g.patch_size_level0 - std::llround(config.overlap * ratio);
  PATHVLM_CHECK(g.step_level0 > 0, "slide '", slide_name, "': grid step is not positive");
  g.read_level_width = static_cast<int64_t>(std::ceil(width / g.read_downsample - 1e-9));
  g.read_level_height = static_cast<int64_t>(std::ceil(height / g.read_downsample - 1e-9));
  return g;
}

GridGeometry plan_grid(const Slide& slide, double mpp, const TilingConfig& config) {
  std::vector<double> downsamples;
  for (const auto& l : slide.levels()) downsamples.push_back(l.downsample);
  GridGeometry g = plan_grid(slide.width(), slide.height(), downsamples, mpp, config, slide.path());
  g.read_level_width = slide.level(g.read_level).width;
  g.read_level_height = slide.level(g.read_level).height;
  return g;
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

// tiling.grid=clam takes CLAM's contour functions only.
void check_clam_tissue_test(const TilingConfig& config) {
  const std::string& test = config.tissue_test;
  PATHVLM_CHECK(config.grid != "clam" || test == "four_pt" || test == "four_pt_hard" || test == "center",
                "tiling.tissue_test=", test, " has no CLAM counterpart: tiling.grid=clam takes four_pt, four_pt_hard "
                "or center");
}

// CLAM's process_contour (use_padding on): each region's bounding box stepped from its corner, x outer and y inner,
// tiles tested with OpenCV's pointPolygonTest on the integer outline (boundary counts as inside) and the centre
// strictly inside no hole; regions in their order, a tile two regions keep listed twice, as CLAM lists it.
torch::Tensor select_tiles_like_clam(const TissueMask& mask, const GridGeometry& g, const TilingConfig& config) {
#ifdef PATHVLM_HAVE_OPENCV
  check_clam_tissue_test(config);
  const std::string& test = config.tissue_test;
  auto to_cv = [](const Polygon& p) {
    std::vector<cv::Point> q;
    q.reserve(p.size());
    for (const auto& v : p) q.emplace_back(static_cast<int>(v.x), static_cast<int>(v.y));
    return q;
  };
  const int64_t ps0 = g.patch_size_level0, step = g.step_level0;
  const int64_t half = ps0 / 2, shift = half / 2;  // CLAM: patch_size // 2 and int(patch_size // 2 * 0.5)
  std::vector<int64_t> kept;
  for (const auto& region : mask.regions) {
    const auto outline = to_cv(region.outline);
    std::vector<std::vector<cv::Point>> holes;
    for (const auto& hole : region.holes) holes.push_back(to_cv(hole));
    const cv::Rect box = cv::boundingRect(outline);
    auto inside = [&](int64_t x, int64_t y) {
      return cv::pointPolygonTest(outline, cv::Point2f(static_cast<float>(x), static_cast<float>(y)), false) >= 0;
    };
    for (int64_t x = box.x; x < box.x + box.width; x += step) {
      for (int64_t y = box.y; y < box.y + box.height; y += step) {
        const int64_t cx = x + half, cy = y + half;
        bool pass;
        if (test == "center" || shift == 0) {
          pass = inside(cx, cy);
        } else {
          const int n = inside(cx - shift, cy - shift) + inside(cx + shift, cy + shift) +
                        inside(cx + shift, cy - shift) + inside(cx - shift, cy + shift);
          pass = test == "four_pt_hard" ? n == 4 : n > 0;
        }
        if (!pass) continue;
        const cv::Point2f centre(static_cast<float>(x + ps0 / 2.0), static_cast<float>(y + ps0 / 2.0));
        bool in_hole = false;
        for (const auto& hole : holes) in_hole = in_hole || cv::pointPolygonTest(hole, centre, false) > 0;
        if (!in_hole) kept.insert(kept.end(), {x, y});
      }
    }
  }
  const int64_t n = static_cast<int64_t>(kept.size() / 2);
  return torch::from_blob(kept.data(), {n, 2}, torch::kInt64).clone();
#else
  (void)mask, (void)g, (void)config;
  throw Error("tiling.grid=clam needs OpenCV, which this build lacks");
#endif
}

}  // namespace

torch::Tensor select_tiles(const TissueMask& mask, const GridGeometry& g, const TilingConfig& config) {
  if (config.grid == "clam") return select_tiles_like_clam(mask, g, config);
  PATHVLM_CHECK(config.grid == "slide", "tiling.grid '", config.grid, "' is unknown (slide, clam)");
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

namespace {

// CLAM stores level-geometry attributes as (x, y) pairs; the h5 wrapper writes scalars only.
void set_pair_attr(h5::Object& object, const std::string& name, double x, double y, bool integer) {
  const hsize_t two = 2;
  const hid_t space = H5Screate_simple(1, &two, nullptr);
  const hid_t type = integer ? H5T_STD_I64LE : H5T_IEEE_F64LE;
  const hid_t attr = H5Acreate2(static_cast<hid_t>(object.id()), name.c_str(), type, space, H5P_DEFAULT, H5P_DEFAULT);
  herr_t written = -1;
  if (attr >= 0) {
    if (integer) {
      const int64_t v[2] = {static_cast<int64_t>(x), static_cast<int64_t>(y)};
      written = H5Awrite(attr, H5T_NATIVE_INT64, v);
    } else {
      const double v[2] = {x, y};
      written = H5Awrite(attr, H5T_NATIVE_DOUBLE, v);
    }
    H5Aclose(attr);
  }
  H5Sclose(space);
  PATHVLM_CHECK(written >= 0, object.where(), ": cannot write the attribute '", name, "'");
}

// The values of a numeric attribute that is a scalar or an array (CLAM's `downsample` is a pair).
std::vector<double> values_of(const h5::Object& object, const std::string& name) {
  const hid_t attr = H5Aopen(static_cast<hid_t>(object.id()), name.c_str(), H5P_DEFAULT);
  PATHVLM_CHECK(attr >= 0, object.where(), ": cannot open the attribute '", name, "'");
  const hid_t space = H5Aget_space(attr);
  const hssize_t n = H5Sget_simple_extent_npoints(space);
  const hid_t type = H5Aget_type(attr);
  const H5T_class_t cls = H5Tget_class(type);
  std::vector<double> values(static_cast<size_t>(std::max<hssize_t>(n, 0)));
  const bool numeric = cls == H5T_INTEGER || cls == H5T_FLOAT;
  const herr_t read = numeric && n > 0 ? H5Aread(attr, H5T_NATIVE_DOUBLE, values.data()) : -1;
  H5Tclose(type);
  H5Sclose(space);
  H5Aclose(attr);
  PATHVLM_CHECK(read >= 0 && !values.empty(), object.where(), ": attribute '", name, "' is not a number");
  return values;
}

double first_value(const h5::Object& object, const std::string& name) { return values_of(object, name)[0]; }

}  // namespace

void write_coords_dataset(h5::Group& group, const SlideTiles& t) {
  PATHVLM_CHECK(t.coords.dim() == 2 && t.coords.size(1) == 2 && t.coords.scalar_type() == torch::kInt64,
                group.where(), ": coords must be int64 [N,2], got ", t.coords.sizes(), " ", t.coords.scalar_type());
  // Extendable with row chunks, as CLAM's (N, 2) maxshape (None, 2) coords, so readers may append. A slide without
  // tiles gets the same dataset with 0 rows and every attribute: CLAM's and TRIDENT's readers open it.
  auto coords = group.create("coords", torch::kInt64, {2}, {{1024, 2}, 0, false});
  if (t.coords.size(0) > 0) coords.append(t.coords.contiguous());
  const GridGeometry& g = t.grid;
  // Read frame, shared by both readers: patch_size pixels at patch_level. TRIDENT derives its level-0 read size
  // as patch_size * level0_magnification / target_magnification, so target_magnification is the magnification
  // of the read level, not the nominal one (that is `magnification`).
  const double read_overlap = static_cast<double>(g.patch_size_level0 - g.step_level0) / g.read_downsample;
  coords.set_attr("patch_size", g.read_size);
  coords.set_attr("patch_level", static_cast<int64_t>(g.read_level));
  set_pair_attr(coords, "downsample", g.read_downsample, g.read_downsample, false);
  set_pair_attr(coords, "level_dim", static_cast<double>(g.read_level_width), static_cast<double>(g.read_level_height),
                true);
  set_pair_attr(coords, "downsampled_level_dim", static_cast<double>(g.read_level_width),
                static_cast<double>(g.read_level_height), true);
  coords.set_attr("level0_magnification", g.level0_magnification);
  coords.set_attr("target_magnification", g.level0_magnification / g.read_downsample);
  coords.set_attr("overlap", static_cast<int64_t>(std::llround(read_overlap)));
  coords.set_attr("patch_size_level0", g.patch_size_level0);
  coords.set_attr("step_size_level0", g.step_level0);
  coords.set_attr("level0_width", g.level0_width);
  coords.set_attr("level0_height", g.level0_height);
  // pathvlm's nominal tile: what the read region is resized to, which neither reader's attributes can say.
  coords.set_attr("target_patch_size", static_cast<int64_t>(g.patch_size));
  coords.set_attr("target_overlap", static_cast<int64_t>(g.overlap));
  coords.set_attr("magnification", g.target_magnification);
  coords.set_attr("mpp", g.mpp);
  coords.set_attr("read_size", g.read_size);
  coords.set_attr("resize_note",
                  str("read patch_size (", g.read_size, ") px at patch_level (", g.read_level, "), then resize to ",
                      "target_patch_size (", g.patch_size, ") px: the tile at magnification ", g.target_magnification,
                      "x; CLAM's extract_features_fp resizes to its --target_patch_size instead"));
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
  PATHVLM_CHECK(file.has("coords"), "'", path, "': no dataset '/coords' (not a finished coords file)");
  auto coords = file.dataset("coords");
  SlideTiles t;
  t.coords = coords.read().to(torch::kInt64);
  PATHVLM_CHECK(t.coords.dim() == 2 && t.coords.size(1) == 2, "'", path, "': dataset '/coords' must be [N,2], is ",
                t.coords.sizes());
  PATHVLM_CHECK(coords.has_attr("patch_size"), "'", path,
                "': dataset '/coords' lacks the attribute 'patch_size' (a CLAM/TRIDENT or pathvlm coords file is "
                "expected)");
  GridGeometry& g = t.grid;
  // Sizes, levels and counts: whole numbers that fit an int (a damaged or foreign file fails here, by name).
  auto opt_int = [&](const char* name, int64_t fallback) {
    if (!coords.has_attr(name)) return fallback;
    const double v = first_value(coords, name);
    PATHVLM_CHECK(std::isfinite(v) && std::abs(v) < 2147483648.0 && std::abs(v - std::round(v)) < 1e-6, "'", path,
                  "': dataset '/coords': attribute '", name, "' is ", v, ", not a whole number of pixels or levels");
    return static_cast<int64_t>(std::llround(v));
  };
  auto opt_double = [&](const char* name, double fallback) {
    if (!coords.has_attr(name)) return fallback;
    const double v = first_value(coords, name);
    PATHVLM_CHECK(std::isfinite(v), "'", path, "': dataset '/coords': attribute '", name, "' is ", v);
    return v;
  };
  // Magnifications and mpp only describe the tiles: one that is not finite (unknown to the writer) counts as absent.
  auto opt_info = [&](const char* name, double fallback) {
    const double v = coords.has_attr(name) ? first_value(coords, name) : fallback;
    return std::isfinite(v) ? v : fallback;
  };
  const int64_t patch_size = opt_int("patch_size", 0);
  int64_t tile_size = patch_size;  // the nominal tile the read region is resized to
  g.level0_magnification = opt_info("level0_magnification", 0);
  g.level0_width = opt_int("level0_width", 0);
  g.level0_height = opt_int("level0_height", 0);
  if (coords.has_attr("target_patch_size")) {
    // pathvlm: patch_size is the read size at patch_level, the nominal tile is target_patch_size.
    g.read_size = patch_size;
    g.read_level = static_cast<int>(opt_int("patch_level", 0));
    g.read_downsample = opt_double("downsample", 1.0);
    tile_size = opt_int("target_patch_size", patch_size);
    g.overlap = static_cast<int>(opt_int("target_overlap", 0));
    g.target_magnification = opt_info("magnification", 0);
  } else if (coords.has_attr("patch_size_level0")) {
    // TRIDENT (and pathvlm before target_patch_size): patch_size is the tile at target_magnification, read from
    // level 0 (or where read_size/patch_level say) and resized.
    g.overlap = static_cast<int>(opt_int("overlap", 0));
    g.target_magnification = opt_info("target_magnification", 0);
    g.read_level = static_cast<int>(opt_int("patch_level", 0));
    g.read_downsample = opt_double("downsample", 1.0);
    g.read_size = opt_int("read_size", std::llround(opt_double("patch_size_level0", 0) / g.read_downsample));
  } else {
    // CLAM: patch_size pixels read at patch_level, whose downsample is the `downsample` pair.
    PATHVLM_CHECK(coords.has_attr("patch_level"), "'", path, "': dataset '/coords' has neither "
                  "'patch_size_level0' (TRIDENT) nor 'patch_level' (CLAM)");
    g.read_size = patch_size;
    g.read_level = static_cast<int>(opt_int("patch_level", 0));
    g.read_downsample = opt_double("downsample", 1.0);
  }
  PATHVLM_CHECK(g.read_size > 0 && g.read_downsample > 0 && g.read_level >= 0, "'", path,
                "': dataset '/coords' has a non-positive patch size or downsample, or a negative level");
  PATHVLM_CHECK(g.read_size <= data::max_image_pixels() / g.read_size, "'", path,
                "': dataset '/coords' reads tiles of ", g.read_size, "x", g.read_size, " px, more than the ",
                data::max_image_pixels(), " pixels an image may have: is its patch_size right?");
  // embed resizes each read region to this tile first, so it is bounded as the read is.
  PATHVLM_CHECK(tile_size > 0 && tile_size <= data::max_image_pixels() / tile_size, "'", path,
                "': dataset '/coords' makes tiles of ", tile_size, "x", tile_size, " px (its patch_size or ",
                "target_patch_size), not a positive size within the ", data::max_image_pixels(),
                " pixels an image may have");
  g.patch_size = static_cast<int>(tile_size);
  g.patch_size_level0 = opt_int("patch_size_level0", std::llround(g.read_size * g.read_downsample));
  g.step_level0 = opt_int("step_size_level0", g.patch_size_level0);
  g.mpp = opt_info("mpp", g.level0_magnification > 0 ? 10.0 / g.level0_magnification : 0);
  if (coords.has_attr("level_dim")) {
    const auto dims = values_of(coords, "level_dim");
    g.read_level_width = std::llround(dims[0]);
    g.read_level_height = std::llround(dims.size() > 1 ? dims[1] : dims[0]);
  }
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
  check_clam_tissue_test(config.tiling);  // before any slide, not once per slide in failures.csv
  return config;
}

std::string tiling_settings(const TileJobConfig& config, double mpp_override) {
  return cfg::to_yaml(config) + str("mpp_override: ", mpp_override, "\n");
}

namespace {

// Why a slide gave no tiles; `regions` < 0 when the segmentation is not known (a resumed slide).
std::string no_tiles_warning(const std::string& id, const GridGeometry& g, bool clam_grid, int64_t regions, bool qa) {
  std::string why;
  if (!clam_grid && (g.level0_width < g.patch_size_level0 || g.level0_height < g.patch_size_level0)) {
    why = str("the slide (", g.level0_width, "x", g.level0_height, " level-0 px) is smaller than one tile (",
              g.patch_size_level0, " level-0 px; lower --patch-size or --magnification)");
  } else if (regions == 0) {
    why = "no tissue was found (see --preset and the tissue.* keys)";
  } else {
    why = "no tile passed the tissue segmentation and tissue test";
  }
  return str("0 tiles: ", why, qa ? str(", see qa/", id, ".png") : std::string(), "; an empty /coords was written");
}

}  // namespace

std::vector<SlideOutcome> tile_slides(const std::vector<SlideEntry>& slides, const TileJobConfig& config,
                                      const std::string& out_dir, int workers) {
  const std::string patches_dir = out_dir + "/patches", qa_dir = out_dir + "/qa";
  const bool clam_grid = config.tiling.grid == "clam";
  make_dirs(patches_dir);
  if (config.tiling.qa_max_size > 0) make_dirs(qa_dir);
  return run_slide_batch(slides, workers, "tiling", [&](const SlideEntry& entry, SlideJob& job) {
    const std::string final_h5 = patches_dir + "/" + entry.id + ".h5";
    const std::string settings = tiling_settings(config, entry.mpp);
    SlideOutcome outcome;
    job.stage = "resume";
    if (file_exists(final_h5)) {
      if (read_settings_attr(final_h5) == settings) {
        try {
          SlideTiles done = read_coords_h5(final_h5);
          outcome = SlideOutcome::skipped(done.coords.size(0));
          outcome.mpp = done.grid.mpp, outcome.magnification = done.grid.target_magnification;
          const bool qa = config.tiling.qa_max_size > 0;
          if (outcome.tiles == 0) outcome.warning = no_tiles_warning(entry.id, done.grid, clam_grid, -1, qa);
          return outcome;
        } catch (const Error&) {
          // Settings match but the coords are unreadable (a partial or damaged earlier output): make it again.
          outcome.note = "redone: the existing output lacks a readable /coords";
        }
      } else {
        outcome.note = "redone: the existing output was made with other settings";
      }
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
    TissueMask mask = clam_grid ? segment_tissue_like_clam(slide, config.tissue) : segment_tissue(slide, config.tissue);
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
    if (outcome.tiles == 0) {
      outcome.warning = no_tiles_warning(entry.id, tiles.grid, clam_grid, static_cast<int64_t>(mask.regions.size()),
                                         config.tiling.qa_max_size > 0);
    }
    return outcome;
  });
}

}  // namespace pathvlm::wsi
