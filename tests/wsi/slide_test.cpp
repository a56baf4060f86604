// OpenSlide wrapper, mpp discovery, tissue segmentation, tile grids and coords files.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include <hdf5.h>
#include <nlohmann/json.hpp>
#ifdef PATHVLM_HAVE_LIBTIFF
#include <tiffvers.h>
#endif

#include "core/config.h"
#include "core/text_file.h"
#include "core/error.h"
#include "io/hdf5.h"
#include "data/image.h"
#include "wsi/slide.h"
#include "synth/slide_synth.h"
#include "wsi/tiling.h"
#include "wsi/tissue.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::shared_slide;

namespace {

#define REQUIRE_SHARED(name)                                                                        \
  if (!fs::exists(shared_slide(name))) GTEST_SKIP() << "shared test data missing: " << shared_slide(name); \
  if (!wsi::openslide_built_in()) GTEST_SKIP() << "built without OpenSlide"

std::string temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_slide_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

}  // namespace

TEST(SlideArgb, PremultipliedToRgbOverWhite) {
  const uint32_t pixels[] = {
      0xff102030u,  // opaque: unchanged
      0x00000000u,  // transparent: white
      0x80402010u,  // half alpha: c + (255 - a)
  };
  uint8_t rgb[9];
  wsi::argb_premultiplied_to_rgb(pixels, 3, rgb);
  EXPECT_EQ(rgb[0], 0x10);
  EXPECT_EQ(rgb[1], 0x20);
  EXPECT_EQ(rgb[2], 0x30);
  for (int i = 3; i < 6; ++i) EXPECT_EQ(rgb[i], 255);
  EXPECT_EQ(rgb[6], 0x40 + 127);
  EXPECT_EQ(rgb[7], 0x20 + 127);
  EXPECT_EQ(rgb[8], 0x10 + 127);
}

TEST(SlideMpp, PropertyOrderAndTiffResolution) {
  EXPECT_FALSE(wsi::mpp_from_properties({}).has_value());
  EXPECT_DOUBLE_EQ(*wsi::mpp_from_properties({{"aperio.MPP", "0.2520"}, {"openslide.mpp-x", "0.25"}}), 0.25);
  EXPECT_DOUBLE_EQ(*wsi::mpp_from_properties({{"aperio.MPP", "0.4990"}}), 0.499);
  // openslide.comment only counts when it is a bare number.
  EXPECT_FALSE(wsi::mpp_from_properties({{"openslide.comment", "scanned at 0.25 um"}}).has_value());
  EXPECT_NEAR(*wsi::mpp_from_properties({{"tiff.XResolution", "40000"}, {"tiff.ResolutionUnit", "centimeter"}}), 0.25,
              1e-12);
  EXPECT_NEAR(*wsi::mpp_from_properties({{"tiff.XResolution", "101600"}, {"tiff.ResolutionUnit", "inch"}}), 0.25,
              1e-12);
  // No unit, or an implausible 72 dpi screen resolution: no mpp.
  EXPECT_FALSE(wsi::mpp_from_properties({{"tiff.XResolution", "40000"}, {"tiff.ResolutionUnit", "none"}}).has_value());
  EXPECT_FALSE(wsi::mpp_from_properties({{"tiff.XResolution", "72"}, {"tiff.ResolutionUnit", "inch"}}).has_value());
  EXPECT_EQ(wsi::magnification_from_mpp(0.25), 40);
  EXPECT_EQ(wsi::magnification_from_mpp(0.5), 20);
  EXPECT_EQ(wsi::magnification_from_mpp(1.0), 10);
  EXPECT_EQ(wsi::magnification_from_mpp(0.12), 80);
}

TEST(SlideOpen, BoxesTiffLevel0EqualsPng) {
  REQUIRE_SHARED("boxes.tiff");
  auto slide = wsi::Slide::open(shared_slide("boxes.tiff"));
  ASSERT_EQ(slide.level_count(), 4);
  EXPECT_EQ(slide.width(), 300);
  EXPECT_EQ(slide.height(), 250);
  EXPECT_EQ(slide.level(1).width, 150);
  EXPECT_EQ(slide.level_at_or_above(2.5), 1);
  EXPECT_EQ(slide.level_at_or_above(100), 3);
  auto pixels = slide.read_level(0);
  auto expected = data::read_image(shared_slide("boxes.png"));
  ASSERT_EQ(pixels.sizes(), expected.sizes());
  EXPECT_TRUE(torch::equal(pixels, expected)) << "max difference "
                                              << (pixels.to(torch::kInt) - expected.to(torch::kInt)).abs().max();
  // Outside the slide OpenSlide gives transparent pixels: white after conversion.
  auto outside = slide.read_region(290, 240, 0, 20, 20);
  EXPECT_EQ(outside[15][15][0].item<int>(), 255);
  EXPECT_EQ(outside[15][15][2].item<int>(), 255);
  EXPECT_TRUE(torch::equal(outside.slice(0, 0, 10).slice(1, 0, 10), expected.slice(0, 240).slice(1, 290)));
}

TEST(SlideOpen, SmallSvsHasMpp) {
  REQUIRE_SHARED("small.svs");
  auto slide = wsi::Slide::open(shared_slide("small.svs"));
  EXPECT_EQ(slide.width(), 16);
  EXPECT_EQ(slide.height(), 16);
  ASSERT_TRUE(slide.property("aperio.MPP").has_value());
  const double mpp = wsi::slide_mpp(slide);
  EXPECT_NEAR(mpp, std::stod(*slide.property("aperio.MPP")), 1e-12);
  EXPECT_GT(mpp, 0.1);
  EXPECT_EQ(wsi::slide_mpp(slide, 0.3), 0.3);  // an override wins
  auto pixels = slide.read_region(0, 0, 0, 16, 16);
  EXPECT_EQ(pixels.sizes(), (std::vector<int64_t>{16, 16, 3}));
}

TEST(SlideOpen, ClearErrorsForBadSlides) {
  REQUIRE_SHARED("unopenable.tiff");
  auto unopenable = error_of([] { wsi::Slide::open(shared_slide("unopenable.tiff")); });
  EXPECT_NE(unopenable.find("unopenable.tiff"), std::string::npos) << unopenable;
  // OpenSlide 3.4 opens it in error state ("cannot read it"); 4.x rejects the format.
  EXPECT_TRUE(unopenable.find("not a format OpenSlide can open") != std::string::npos ||
              unopenable.find("OpenSlide cannot read it") != std::string::npos)
      << unopenable;
  auto missing = error_of([] { wsi::Slide::open("/nonexistent/x.svs"); });
  EXPECT_NE(missing.find("x.svs"), std::string::npos);

  auto unreadable = error_of([] {
    auto slide = wsi::Slide::open(shared_slide("unreadable.svs"));
    slide.read_region(0, 0, 0, 16, 16);
  });
  EXPECT_NE(unreadable.find("unreadable.svs"), std::string::npos) << unreadable;
  EXPECT_TRUE(unreadable.find("reading region") != std::string::npos ||
              unreadable.find("cannot read") != std::string::npos)
      << unreadable;

  auto boxes = wsi::Slide::open(shared_slide("boxes.tiff"));
  auto no_mpp = error_of([&] { wsi::slide_mpp(boxes); });
  if (!wsi::mpp_from_properties(boxes.properties())) {
    EXPECT_NE(no_mpp.find("no microns-per-pixel"), std::string::npos) << no_mpp;
  }
}

TEST(TilingGrid, GeometryFromMagnification) {
  TilingConfig c;  // 20x, 256 px
  auto g = wsi::plan_grid(4096, 3072, {1, 2, 4}, 0.25, c, "s");
  EXPECT_EQ(g.level0_magnification, 40);
  EXPECT_EQ(g.patch_size_level0, 512);
  EXPECT_EQ(g.step_level0, 512);
  EXPECT_EQ(g.read_level, 1);
  EXPECT_EQ(g.read_size, 256);
  auto g2 = wsi::plan_grid(4096, 3072, {1, 4}, 0.25, c, "s");  // no 2x level: read level 0 and resize
  EXPECT_EQ(g2.read_level, 0);
  EXPECT_EQ(g2.read_size, 512);
  c.overlap = 64;
  auto g3 = wsi::plan_grid(4096, 3072, {1, 2, 4}, 0.25, c, "s");
  EXPECT_EQ(g3.step_level0, 512 - 128);
  c.overlap = 0;
  c.magnification = 40;
  auto err = error_of([&] { wsi::plan_grid(4096, 3072, {1}, 0.5, c, "slow.svs"); });
  EXPECT_NE(err.find("slow.svs"), std::string::npos);
  EXPECT_NE(err.find("above the slide's own"), std::string::npos) << err;
}

TEST(TilingGrid, TissueTestsOnHandMadeRegion) {
  // One square region [1000,3000)^2 with a square hole [1800,2200)^2; tiles of 512 level-0 pixels.
  wsi::TissueMask mask;
  wsi::TissueRegion region;
  region.outline = {{1000, 1000}, {3000, 1000}, {3000, 3000}, {1000, 3000}};
  region.holes = {{{1800, 1800}, {2200, 1800}, {2200, 2200}, {1800, 2200}}};
  mask.regions.push_back(region);
  mask.downsample_x = mask.downsample_y = 64;
  mask.mask = torch::zeros({64, 64}, torch::kUInt8);
  mask.mask.slice(0, 1000 / 64, 3000 / 64).slice(1, 1000 / 64, 3000 / 64).fill_(1);
  EXPECT_TRUE(wsi::point_in_polygon(region.outline, 1500, 1500));
  EXPECT_FALSE(wsi::point_in_polygon(region.outline, 500, 1500));

  TilingConfig c;
  wsi::GridGeometry g;
  g.patch_size_level0 = g.step_level0 = 512;
  g.level0_width = g.level0_height = 4096;
  auto has = [](const torch::Tensor& xy, int64_t x, int64_t y) {
    return (xy.select(1, 0).eq(x) & xy.select(1, 1).eq(y)).any().item<bool>();
  };
  c.tissue_test = "four_pt";
  auto four = wsi::select_tiles(mask, g, c);
  // Tile (512,512): centre 768, points at 640/896: (896,896) is outside [1000,3000) -> no point inside.
  EXPECT_FALSE(has(four, 512, 512));
  // Tile (1024,1024) fully inside.
  EXPECT_TRUE(has(four, 1024, 1024));
  // Tile (1536,1536): centre (1792,1792) is just outside the hole -> kept; tile (1792? not on grid).
  EXPECT_TRUE(has(four, 1536, 1536));
  // Tile (2560,2560): centre 2816, points at 2688/2944 all inside.
  EXPECT_TRUE(has(four, 2560, 2560));
  // Tile (3072, 1024): centre x 3328, points x at 3200/3456: outside.
  EXPECT_FALSE(has(four, 3072, 1024));
  c.tissue_test = "center";
  auto center = wsi::select_tiles(mask, g, c);
  EXPECT_TRUE(has(center, 1024, 1024));
  EXPECT_EQ(center.size(0), 16);  // centres at 1280..2816 step 512 in both axes: 4 x 4, none in the hole
  c.tissue_test = "fraction";
  c.min_tissue_fraction = 1.0;
  auto full = wsi::select_tiles(mask, g, c);
  EXPECT_TRUE(has(full, 1024, 1024));
  EXPECT_FALSE(has(full, 512, 512));
  // Row-major order: y outer, x inner.
  auto xy = four.accessor<int64_t, 2>();
  for (int64_t i = 1; i < four.size(0); ++i) {
    EXPECT_TRUE(xy[i][1] > xy[i - 1][1] || (xy[i][1] == xy[i - 1][1] && xy[i][0] > xy[i - 1][0]));
  }
}

TEST(TilingConfigTest, PresetThenExplicitKeys) {
  auto doc = cfg::Document::from_string("tissue:\n  preset: bwh_biopsy\n  a_t: 5\n", "t.yaml");
  auto c = wsi::read_tile_config(doc);
  EXPECT_EQ(c.tissue.sthresh, 15);
  EXPECT_EQ(c.tissue.mthresh, 11);
  EXPECT_EQ(c.tissue.a_t, 5);
  EXPECT_EQ(c.tissue.max_n_holes, 2);
  auto bad = cfg::Document::from_string("tissue:\n  preset: nope\n", "t.yaml");
  EXPECT_THROW(wsi::read_tile_config(bad), pathvlm::Error);
  auto typo = cfg::Document::from_string("tiling:\n  patch_sise: 224\n", "t.yaml");
  auto err = error_of([&] { wsi::read_tile_config(typo); });
  EXPECT_NE(err.find("patch_size"), std::string::npos) << err;
}

TEST(TilingCoords, H5RoundTripWithTridentAttributes) {
  auto dir = temp_dir("coords");
  wsi::SlideTiles t;
  t.slide_id = "a";
  t.slide_path = "/x/a.svs";
  t.settings = "k: v\n";
  t.grid.patch_size = 256, t.grid.patch_size_level0 = 512, t.grid.step_level0 = 512;
  t.grid.mpp = 0.25, t.grid.level0_magnification = 40, t.grid.target_magnification = 20;
  t.grid.level0_width = 4000, t.grid.level0_height = 3000, t.grid.read_level = 1, t.grid.read_downsample = 2;
  t.grid.read_size = 256;
  t.coords = torch::tensor({0, 0, 512, 0, 1024, 512}, torch::kInt64).view({3, 2});
  wsi::write_coords_h5(dir + "/a.h5", t);
  auto back = wsi::read_coords_h5(dir + "/a.h5");
  EXPECT_TRUE(torch::equal(back.coords, t.coords));
  EXPECT_EQ(back.slide_id, "a");
  EXPECT_EQ(back.grid.patch_size_level0, 512);
  EXPECT_EQ(back.grid.read_level, 1);
  EXPECT_EQ(back.settings, t.settings);
  auto f = h5::File::open(dir + "/a.h5");
  auto coords = f.dataset("coords");
  EXPECT_EQ(coords.dtype(), torch::kInt64);
  for (const char* attr : {"patch_size", "patch_size_level0", "level0_width", "level0_height", "mpp",
                           "magnification", "level0_magnification", "target_magnification", "overlap", "name"}) {
    EXPECT_TRUE(coords.has_attr(attr)) << attr;
  }
  EXPECT_EQ(coords.attr_int("level0_width"), 4000);
  // An empty slide still gives a valid file with a [0,2] coords dataset.
  t.coords = torch::zeros({0, 2}, torch::kInt64);
  wsi::write_coords_h5(dir + "/empty.h5", t);
  EXPECT_EQ(wsi::read_coords_h5(dir + "/empty.h5").coords.size(0), 0);
  fs::remove_all(dir);
}

namespace {

// Every value of a numeric attribute of /coords, read with the C API as h5py would (scalars and CLAM's pairs).
std::vector<double> coords_attr(const std::string& file, const std::string& name) {
  auto f = h5::File::open(file);
  auto ds = f.dataset("coords");
  EXPECT_TRUE(ds.has_attr(name)) << file << " lacks " << name;
  if (!ds.has_attr(name)) return {};
  const hid_t attr = H5Aopen(static_cast<hid_t>(ds.id()), name.c_str(), H5P_DEFAULT);
  const hid_t space = H5Aget_space(attr);
  std::vector<double> v(static_cast<size_t>(H5Sget_simple_extent_npoints(space)));
  H5Aread(attr, H5T_NATIVE_DOUBLE, v.data());
  H5Sclose(space);
  H5Aclose(attr);
  return v;
}

struct ReadRegion {
  int level;
  int64_t size;  // edge in pixels of that level
};

// What CLAM's Whole_Slide_Bag_FP reads: read_region(coord, patch_level, (patch_size, patch_size)).
ReadRegion clam_reads(const std::string& file) {
  return {static_cast<int>(coords_attr(file, "patch_level").at(0)),
          static_cast<int64_t>(coords_attr(file, "patch_size").at(0))};
}

// What TRIDENT's WSIPatcher reads for a coords file with its attributes: downsample = (10 / target_mag) /
// (10 / level0_mag), patch_size_src = round(patch_size * downsample), the level whose downsample is within 0.1 of
// it (else the coarsest below it), and round(patch_size_src / int(level downsample)) pixels there.
ReadRegion trident_reads(const std::string& file, const std::vector<double>& level_downsamples) {
  const double patch_size = coords_attr(file, "patch_size").at(0);
  const double downsample =
      coords_attr(file, "level0_magnification").at(0) / coords_attr(file, "target_magnification").at(0);
  const double src = std::nearbyint(patch_size * downsample);
  int level = -1;
  for (int i = 0; i < static_cast<int>(level_downsamples.size()) && level < 0; ++i) {
    if (std::abs(level_downsamples[i] - downsample) <= 0.1) level = i;
  }
  if (level < 0) {
    level = 0;
    for (int i = 0; i < static_cast<int>(level_downsamples.size()); ++i) {
      if (level_downsamples[i] <= downsample) level = i;
    }
  }
  return {level, static_cast<int64_t>(std::nearbyint(src / static_cast<int>(level_downsamples[level])))};
}

}  // namespace

// Fed pathvlm's coords file, CLAM and TRIDENT read the region pathvlm reads, also at a magnification no pyramid
// level has (30x on a 40x slide: 341 px at level 0, resized to 256); the nominal tile is kept for pathvlm.
TEST(TilingCoords, ClamAndTridentReadWhatPathvlmReads) {
  auto dir = temp_dir("readers");
  struct Case {
    double magnification;
    std::vector<double> levels;
    int level;
    int64_t size;
  };
  for (const Case& c : {Case{30, {1, 4, 16}, 0, 341}, Case{15, {1, 2, 4}, 1, 341}, Case{20, {1, 2, 4}, 1, 256},
                        Case{20, {1, 4, 16}, 0, 512}, Case{10, {1, 4.0002, 16}, 1, 256}}) {
    SCOPED_TRACE(str(c.magnification, "x on 40x, levels ", c.levels.size()));
    TilingConfig tc;
    tc.magnification = c.magnification;
    wsi::SlideTiles t;
    t.slide_id = "s";
    t.grid = wsi::plan_grid(8000, 6000, c.levels, 0.25, tc, "s.svs");
    ASSERT_EQ(t.grid.read_level, c.level);
    ASSERT_EQ(t.grid.read_size, c.size);
    t.coords = torch::tensor({0, 0, 1024, 2048}, torch::kInt64).view({2, 2});
    const std::string file = dir + "/s.h5";
    wsi::write_coords_h5(file, t);

    const auto clam = clam_reads(file), trident = trident_reads(file, c.levels);
    EXPECT_EQ(clam.level, c.level);
    EXPECT_EQ(clam.size, c.size);
    EXPECT_EQ(trident.level, c.level);
    EXPECT_EQ(trident.size, c.size);
    // The level-0 footprint TRIDENT and TITAN take from the attributes is the one the grid was laid with.
    EXPECT_NEAR(coords_attr(file, "patch_size_level0").at(0), c.size * c.levels[c.level], 0.5);
    EXPECT_EQ(coords_attr(file, "downsample"), (std::vector<double>{c.levels[c.level], c.levels[c.level]}));
    EXPECT_EQ(coords_attr(file, "level_dim").size(), 2u);
    // The tile pathvlm means: target_patch_size at `magnification`.
    EXPECT_EQ(coords_attr(file, "target_patch_size").at(0), 256);
    EXPECT_EQ(coords_attr(file, "magnification").at(0), c.magnification);
    auto back = wsi::read_coords_h5(file);
    EXPECT_EQ(back.grid.patch_size, 256);
    EXPECT_EQ(back.grid.target_magnification, c.magnification);
    EXPECT_EQ(back.grid.read_level, c.level);
    EXPECT_EQ(back.grid.read_size, c.size);
    EXPECT_EQ(back.grid.patch_size_level0, t.grid.patch_size_level0);
  }
  // A slide without tissue: an empty [0,2] coords with every attribute both readers need.
  wsi::SlideTiles empty;
  empty.grid = wsi::plan_grid(8000, 6000, {1, 4, 16}, 0.25, TilingConfig{}, "e.svs");
  empty.coords = torch::zeros({0, 2}, torch::kInt64);
  wsi::write_coords_h5(dir + "/e.h5", empty);
  auto f = h5::File::open(dir + "/e.h5");
  EXPECT_EQ(f.dataset("coords").shape(), (std::vector<int64_t>{0, 2}));
  EXPECT_EQ(f.dataset("coords").dtype(), torch::kInt64);
  for (const char* attr : {"patch_size", "patch_level", "level0_magnification", "target_magnification",
                           "patch_size_level0", "overlap", "level0_width", "level0_height"}) {
    EXPECT_FALSE(coords_attr(dir + "/e.h5", attr).empty()) << attr;
  }
  EXPECT_EQ(clam_reads(dir + "/e.h5").size, 512);
  fs::remove_all(dir);
}

// Coords files written by TRIDENT (patch_size at target_magnification) and CLAM (patch_size at patch_level, a
// downsample pair, no patch_size_level0) are read into the region their own tools read.
TEST(TilingCoords, ReadsTridentAndClamFiles) {
  auto dir = temp_dir("foreign");
  {
    auto f = h5::File::create(dir + "/trident.h5");
    f.write("coords", torch::tensor({512, 0}, torch::kInt64).view({1, 2}));
    auto ds = f.dataset("coords");
    ds.set_attr("patch_size", int64_t(256));
    ds.set_attr("patch_size_level0", int64_t(512));
    ds.set_attr("level0_magnification", 40.0);
    ds.set_attr("target_magnification", 20.0);
    ds.set_attr("name", "trident");
  }
  auto trident = wsi::read_coords_h5(dir + "/trident.h5");
  EXPECT_EQ(trident.grid.patch_size, 256);
  EXPECT_EQ(trident.grid.read_level, 0);
  EXPECT_EQ(trident.grid.read_size, 512);
  EXPECT_EQ(trident.grid.target_magnification, 20);
  {
    auto f = h5::File::create(dir + "/clam.h5");
    f.write("coords", torch::tensor({512, 0}, torch::kInt64).view({1, 2}));
    auto ds = f.dataset("coords");
    ds.set_attr("patch_size", int64_t(256));
    ds.set_attr("patch_level", int64_t(1));
    const double pair[2] = {4.0, 4.0};
    const hsize_t two = 2;
    const hid_t space = H5Screate_simple(1, &two, nullptr);
    const hid_t attr = H5Acreate2(static_cast<hid_t>(ds.id()), "downsample", H5T_IEEE_F64LE, space, H5P_DEFAULT,
                                  H5P_DEFAULT);
    H5Awrite(attr, H5T_NATIVE_DOUBLE, pair);
    H5Aclose(attr);
    H5Sclose(space);
  }
  auto clam = wsi::read_coords_h5(dir + "/clam.h5");
  EXPECT_EQ(clam.grid.read_level, 1);
  EXPECT_EQ(clam.grid.read_size, 256);
  EXPECT_EQ(clam.grid.patch_size_level0, 1024);
  {
    auto f = h5::File::create(dir + "/nothing.h5");
    f.set_attr("settings", "x");
  }
  auto err = error_of([&] { wsi::read_coords_h5(dir + "/nothing.h5"); });
  EXPECT_NE(err.find("no dataset '/coords'"), std::string::npos) << err;
  fs::remove_all(dir);
}

// A damaged or foreign coords file fails on the attribute at fault: sizes and levels must be whole numbers in range,
// and a tile, as read and as resized, must fit the image pixel limit.
TEST(TilingCoords, DamagedAttributesAreClearErrors) {
  auto dir = temp_dir("damaged");
  auto write = [&](const std::string& name, double value) {
    const auto path = dir + "/" + name + ".h5";
    auto f = h5::File::create(path);
    f.write("coords", torch::tensor({512, 0}, torch::kInt64).view({1, 2}));
    auto ds = f.dataset("coords");
    ds.set_attr("patch_size", int64_t(256));
    ds.set_attr("patch_level", int64_t(0));
    ds.set_attr("downsample", 1.0);
    ds.set_attr(name, value);
    return path;
  };
  const struct {
    const char* attribute;
    double value;
    const char* error;
  } cases[] = {
      {"patch_level", std::nan(""), "attribute 'patch_level' is nan, not a whole number"},
      {"patch_size", 2.5, "attribute 'patch_size' is 2.5, not a whole number"},
      {"patch_size", 1e12, "attribute 'patch_size' is 1e+12, not a whole number"},
      {"patch_size", 1e9, "reads tiles of 1000000000x1000000000 px, more than the"},
      {"downsample", INFINITY, "attribute 'downsample' is inf"},
      {"patch_size", -4, "non-positive patch size"},
      {"patch_size_level0", 1e15, "reads tiles of 1000000000000000x1000000000000000 px"},  // TRIDENT's read size
      // pathvlm's nominal tile, which embed resizes each read to.
      {"target_patch_size", 1e9, "makes tiles of 1000000000x1000000000 px (its patch_size or target_patch_size)"},
      {"target_patch_size", 0, "makes tiles of 0x0 px"},
  };
  for (const auto& c : cases) {
    const auto path = write(c.attribute, c.value);
    const auto err = error_of([&] { wsi::read_coords_h5(path); });
    EXPECT_NE(err.find(path), std::string::npos) << err;
    EXPECT_NE(err.find(c.error), std::string::npos) << c.attribute << " = " << c.value << ": " << err;
  }
  EXPECT_EQ(wsi::read_coords_h5(write("patch_size", 512.0)).grid.read_size, 512);  // a whole number as a float
  // A magnification or mpp that is not finite only describes the tiles: read as unknown.
  EXPECT_EQ(wsi::read_coords_h5(write("level0_magnification", std::nan(""))).grid.level0_magnification, 0);
  EXPECT_EQ(wsi::read_coords_h5(write("mpp", INFINITY)).grid.mpp, 0);
  fs::remove_all(dir);
}

// Real H&E (the shared tiles) on white glass, a small image as a crop or a tiny slide is: the default (CLAM)
// parameters find the tissue and no glass, because the area thresholds are capped by the slide's size; CLAM's fixed
// thresholds alone (max_area_share 0) call it debris.
TEST(TissueSegmentation, RealHeOnGlassWithDefaults) {
  const std::string tiles = std::string(PATHVLM_SHARED_DATA) + "/tiles/";
  if (!fs::exists(tiles + "he_01581x_25327y.png")) GTEST_SKIP() << "shared test data missing: " << tiles;
  if (!wsi::tissue_segmentation_built_in()) GTEST_SKIP() << "built without OpenCV";
  auto canvas = torch::full({1024, 1536, 3}, 244, torch::kUInt8);
  auto truth = torch::zeros({1024, 1536}, torch::kUInt8);
  const struct {
    const char* file;
    int x, y;
  } pieces[] = {{"he_01581x_25327y.png", 200, 300},
                {"he_01581x_25583y.png", 456, 300},
                {"he_01581x_25583y.png", 1100, 600}};
  for (const auto& p : pieces) {
    auto tile = data::read_image(tiles + p.file);
    const int64_t h = tile.size(0), w = tile.size(1);
    canvas.slice(0, p.y, p.y + h).slice(1, p.x, p.x + w).copy_(tile);
    truth.slice(0, p.y, p.y + h).slice(1, p.x, p.x + w).fill_(1);
  }
  TissueConfig defaults;
  auto mask = wsi::segment_image(canvas, 1.0, 1.0, defaults);
  ASSERT_FALSE(mask.regions.empty());
  // Each piece is mostly tissue (these tiles have glass between the cells) and the glass around them is not.
  for (const auto& p : pieces) {
    const auto piece = mask.mask.slice(0, p.y, p.y + 256).slice(1, p.x, p.x + 256);
    const double covered = piece.to(torch::kFloat).mean().item<double>();
    EXPECT_GE(covered, 0.5) << p.file << " at " << p.x << "," << p.y;
    RecordProperty(str("he_covered_", p.x), std::to_string(covered));
  }
  const double on_glass = mask.mask.logical_and(truth.logical_not()).sum().item<double>() / (1024 * 1536 - 3 * 256 * 256);
  EXPECT_LT(on_glass, 0.002) << "tissue found on the glass";  // contour rings at the tiles' edges only
  TissueConfig clam_fixed;
  clam_fixed.max_area_share = 0;
  EXPECT_TRUE(wsi::segment_image(canvas, 1.0, 1.0, clam_fixed).regions.empty());
  // On a whole slide the cap is inactive: the same thresholds as CLAM's (a 100k x 80k slide at downsample 64).
  auto big = torch::full({1250, 1562, 3}, 244, torch::kUInt8);
  const auto pink = torch::tensor({200, 120, 180}, torch::kUInt8);
  big.slice(0, 100, 100 + 60).slice(1, 100, 100 + 60).copy_(pink.expand({60, 60, 3}));  // 3600 px: 0.18% of it
  EXPECT_TRUE(wsi::segment_image(big, 64.0, 64.0, defaults).regions.empty());  // below a_t = 6400 mask px
  big.slice(0, 300, 300 + 90).slice(1, 300, 300 + 90).copy_(pink.expand({90, 90, 3}));  // 8100 px: above a_t
  EXPECT_EQ(wsi::segment_image(big, 64.0, 64.0, defaults).regions.size(), 1u);
}

TEST(SynthSlide, OpensWithMppAndSegmentsToGroundTruth) {
  if (!synth::slide_synth_built_in() || !wsi::openslide_built_in() || !wsi::tissue_segmentation_built_in()) {
    GTEST_SKIP() << "needs libtiff, OpenSlide and OpenCV";
  }
  auto dir = temp_dir("synth");
  synth::SynthSlidesConfig sc;  // 2048x1536, 3 levels, JPEG
  sc.seed = 7;
  torch::Tensor truth;
  auto info = synth::write_synthetic_slide(dir + "/s.tiff", 0, sc, &truth);
  ASSERT_FALSE(info.regions.empty());
  EXPECT_FALSE(info.report.empty());
  auto slide = wsi::Slide::open(dir + "/s.tiff");
  ASSERT_EQ(slide.level_count(), 3);
  EXPECT_EQ(slide.width(), 2048);
  EXPECT_EQ(slide.height(), 1536);
  EXPECT_NEAR(slide.level(2).downsample, 4.0, 1e-9);
  EXPECT_NEAR(wsi::slide_mpp(slide), 0.25, 1e-4);

  TissueConfig tc;
  wsi::apply_tissue_preset(tc, "synthetic");
  auto mask = wsi::segment_tissue(slide, tc);
  // Small slides are segmented finer than seg_downsample (about 1024 px on the long side): level 1 here.
  ASSERT_EQ(mask.mask.size(1), 1024);
  ASSERT_EQ(mask.mask.size(0), 768);
  EXPECT_NEAR(mask.downsample_x, 2.0, 1e-9);
  // Compare at the ground truth's resolution (the coarsest level): majority of each 2x2 block.
  auto pooled = torch::adaptive_avg_pool2d(mask.mask.to(torch::kFloat).unsqueeze(0), {truth.size(0), truth.size(1)});
  const double iou = wsi::mask_iou(pooled.squeeze(0).ge(0.5).to(torch::kUInt8), truth);
  EXPECT_GE(iou, 0.9);
  RecordProperty("tissue_iou", std::to_string(iou));

  // Every kept tile overlaps ground-truth tissue, and the tiles cover most of it.
  TilingConfig tiling;
  tiling.patch_size = 128;  // 256 level-0 pixels at 20x from 40x
  auto grid = wsi::plan_grid(slide, 0.25, tiling);
  auto coords = wsi::select_tiles(mask, grid, tiling);
  ASSERT_GT(coords.size(0), 10);
  auto xy = coords.accessor<int64_t, 2>();
  const int64_t ds = 4, edge = grid.patch_size_level0 / ds;  // truth pixels are 4 level-0 pixels
  for (int64_t i = 0; i < coords.size(0); ++i) {
    auto cell = truth.slice(0, xy[i][1] / ds, xy[i][1] / ds + edge).slice(1, xy[i][0] / ds, xy[i][0] / ds + edge);
    EXPECT_GT(cell.sum().item<int64_t>(), 0) << "tile " << xy[i][0] << "," << xy[i][1] << " has no tissue";
  }
  fs::remove_all(dir);
}

// OpenSlide 3.4 with libtiff 4.5 (Debian 12) decodes a non-JPEG level smaller than one of its tiles into shifted rows
// and uninitialised memory; such levels are read from the finer level and area-averaged instead.
TEST(SlideRead, LevelSmallerThanTileComesFromFinerLevel) {
  if (!synth::slide_synth_built_in() || !wsi::openslide_built_in()) GTEST_SKIP() << "needs libtiff and OpenSlide";
  auto dir = temp_dir("small_levels");
  synth::SynthSlidesConfig sc;  // 2048x1536, 256-px tiles
  sc.levels = 6;
  sc.compression = "deflate";
  synth::write_synthetic_slide(dir + "/s.tiff", 0, sc);
  auto slide = wsi::Slide::open(dir + "/s.tiff");
  ASSERT_EQ(slide.level_count(), 6);
  EXPECT_FALSE(slide.level(2).smaller_than_tile);  // 512x384: a partial last tile row is fine
  EXPECT_TRUE(slide.level(3).smaller_than_tile);   // 256x192
  auto fine = slide.read_level(2).permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat);
  for (int level = 3; level < 6; ++level) {
    auto coarse = slide.read_level(level).to(torch::kFloat);
    auto expected = torch::adaptive_avg_pool2d(fine, {coarse.size(0), coarse.size(1)}).squeeze(0).permute({1, 2, 0});
    EXPECT_LE((coarse - expected).abs().max().item<double>(), 1.0) << "level " << level;
  }
  // A region inside such a level: the same pixels as that part of the whole level.
  auto whole = slide.read_level(4);
  auto part = slide.read_region(16 * 20, 16 * 10, 4, 40, 30);
  EXPECT_TRUE(part.equal(whole.slice(0, 10, 40).slice(1, 20, 60)));
#if defined(PATHVLM_HAVE_LIBTIFF) && TIFFLIB_VERSION >= 20221213
  // JPEG tiles are decoded by OpenSlide itself, right at every size: such levels are read as stored.
  sc.compression = "jpeg";
  synth::write_synthetic_slide(dir + "/j.tiff", 0, sc);
  EXPECT_FALSE(wsi::Slide::open(dir + "/j.tiff").level(3).smaller_than_tile);
#endif
  fs::remove_all(dir);
}

// Written by tests/wsi/clam_coords_vectors.py with CLAM's own WholeSlideImage.segmentTissue + process_contours on
// lossless synthetic slides (four_pt, four_pt_hard, center, overlap, a coarser patch level, Otsu, holes) and on
// OpenSlide's boxes.tiff, whose levels have per-axis downsamples.
TEST(TilingClam, CoordsEqualClamsOwn) {
  if (!synth::slide_synth_built_in() || !wsi::openslide_built_in() || !wsi::tissue_segmentation_built_in()) {
    GTEST_SKIP() << "needs libtiff, OpenSlide and OpenCV";
  }
  const auto vectors = nlohmann::json::parse(
      read_text_file(std::string(PATHVLM_SOURCE_DIR) + "/tests/wsi/clam_coords_vectors.json"));
  auto dir = temp_dir("clam");
  int cases = 0;
  for (const auto& c : vectors["cases"]) {
    const std::string name = c["name"].get<std::string>();
    std::string path;
    double mpp = 0.25;
    if (c["slide"].contains("synth")) {
      const auto& s = c["slide"]["synth"];
      synth::SynthSlidesConfig sc;
      sc.width = s["width"].get<int>(), sc.height = s["height"].get<int>(), sc.levels = s["levels"].get<int>();
      sc.seed = s["seed"].get<uint64_t>();
      sc.max_regions = s.value("max_regions", sc.max_regions);
      sc.tile_size = s.value("tile_size", sc.tile_size);
      sc.compression = "deflate";
      path = dir + "/" + name + ".tiff";
      synth::write_synthetic_slide(path, 0, sc);
    } else {
      path = shared_slide(c["slide"]["shared"].get<std::string>());
      if (!fs::exists(path)) GTEST_SKIP() << "shared test data missing: " << path;
      mpp = c["slide"]["mpp"].get<double>();
    }
    std::vector<std::string> overrides{"tiling.grid=clam"};
    for (const auto& [key, value] : c["tissue"].items()) overrides.push_back("tissue." + key + "=" + value.dump());
    for (const auto& [key, value] : c["tiling"].items()) {
      overrides.push_back("tiling." + key + "=" + (value.is_string() ? value.get<std::string>() : value.dump()));
    }
    auto doc = cfg::Document::from_string("", "<test>");
    doc.override_with(overrides);
    const TileJobConfig config = wsi::read_tile_config(doc);

    auto slide = wsi::Slide::open(path);
    auto mask = wsi::segment_tissue_like_clam(slide, config.tissue);
    EXPECT_EQ(mask.source_level, c["clam"]["seg_level"].get<int>()) << name;
    EXPECT_EQ(static_cast<int>(mask.regions.size()), c["clam"]["regions"].get<int>()) << name;
    int holes = 0;
    for (const auto& r : mask.regions) holes += static_cast<int>(r.holes.size());
    EXPECT_EQ(holes, c["clam"]["holes"].get<int>()) << name;
    auto grid = wsi::plan_grid(slide, mpp, config.tiling);
    EXPECT_EQ(grid.read_level, c["clam"]["patch_level"].get<int>()) << name;
    auto coords = wsi::select_tiles(mask, grid, config.tiling);
    const auto expected = c["coords"].get<std::vector<std::vector<int64_t>>>();
    ASSERT_EQ(coords.size(0), static_cast<int64_t>(expected.size())) << name;
    auto xy = coords.accessor<int64_t, 2>();
    int differ = 0;
    for (size_t i = 0; i < expected.size(); ++i) {  // the same tiles in CLAM's order
      if (xy[i][0] != expected[i][0] || xy[i][1] != expected[i][1]) {
        if (++differ <= 3) ADD_FAILURE() << name << " tile " << i << ": " << xy[i][0] << "," << xy[i][1] << " vs CLAM "
                                         << expected[i][0] << "," << expected[i][1];
      }
    }
    EXPECT_EQ(differ, 0) << name;
    ++cases;
  }
  EXPECT_EQ(cases, 6);
  fs::remove_all(dir);
}

TEST(TilingClam, ConfigRefusesTestsClamLacks) {
  auto doc = cfg::Document::from_string("tiling:\n  grid: clam\n  tissue_test: fraction\n", "t.yaml");
  const std::string err = error_of([&] { wsi::read_tile_config(doc); });
  EXPECT_NE(err.find("no CLAM counterpart"), std::string::npos) << err;
  auto other = cfg::Document::from_string("tiling:\n  grid: hexagonal\n", "t.yaml");
  EXPECT_NE(error_of([&] { wsi::read_tile_config(other); }).find("grid"), std::string::npos);
}
