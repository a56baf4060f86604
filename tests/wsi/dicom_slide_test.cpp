// DICOM whole-slide images: the Part 10 parser, series discovery, tiles of every layout, the shared fixture against
// OpenSlide's read of the slide it was converted from, listing, and damaged files.
#include "wsi/dicom_slide.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "dicom_writer.h"
#include "io/dicom.h"
#include "test_util.h"
#include "wsi/slide.h"
#include "wsi/slide_batch.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::testing::DicomLevelSpec;
using pathvlm::testing::error_of;
using pathvlm::testing::expected_dicom_pixels;
using pathvlm::testing::shared_slide;
using pathvlm::testing::TempDir;
using pathvlm::testing::write_dicom_level;

namespace {

// A smooth image with detail: JPEG keeps it recognisable, and every pixel differs from its neighbours.
torch::Tensor test_image(int64_t height, int64_t width, uint64_t seed) {
  torch::manual_seed(static_cast<int64_t>(seed));
  auto coarse = torch::rand({1, 3, height / 8 + 1, width / 8 + 1}) * 255;
  auto smooth = torch::nn::functional::interpolate(coarse, torch::nn::functional::InterpolateFuncOptions()
                                                               .size(std::vector<int64_t>{height, width})
                                                               .mode(torch::kBilinear)
                                                               .align_corners(false));
  auto noise = torch::randint(-12, 13, {1, 3, height, width});
  return (smooth + noise).clamp(0, 255).to(torch::kUInt8)[0].permute({1, 2, 0}).contiguous();
}

// Level pixels -> what read_region returns for a region of them (white outside).
torch::Tensor crop_or_white(const torch::Tensor& level, int64_t x, int64_t y, int64_t w, int64_t h) {
  auto out = torch::full({h, w, 3}, 255, torch::kUInt8);
  const int64_t x0 = std::max<int64_t>(x, 0), y0 = std::max<int64_t>(y, 0);
  const int64_t x1 = std::min(x + w, level.size(1)), y1 = std::min(y + h, level.size(0));
  if (x0 < x1 && y0 < y1)
    out.slice(0, y0 - y, y1 - y).slice(1, x0 - x, x1 - x).copy_(level.slice(0, y0, y1).slice(1, x0, x1));
  return out;
}

// Every level's pixels through Slide::read_region: the whole level, and random regions crossing its edges.
void expect_levels_read_as(wsi::Slide& slide, const std::vector<torch::Tensor>& levels, uint64_t seed) {
  ASSERT_EQ(slide.level_count(), static_cast<int>(levels.size()));
  std::mt19937_64 rng(seed);
  for (int i = 0; i < slide.level_count(); ++i) {
    const torch::Tensor& level = levels[static_cast<size_t>(i)];
    const double ds = slide.level(i).downsample;
    EXPECT_EQ(slide.level(i).width, level.size(1));
    EXPECT_EQ(slide.level(i).height, level.size(0));
    EXPECT_TRUE(torch::equal(slide.read_level(i), level)) << "level " << i;
    for (int trial = 0; trial < 12; ++trial) {
      const int64_t w = 1 + static_cast<int64_t>(rng() % 90), h = 1 + static_cast<int64_t>(rng() % 90);
      const int64_t x = static_cast<int64_t>(rng() % (level.size(1) + 40)) - 20;
      const int64_t y = static_cast<int64_t>(rng() % (level.size(0) + 40)) - 20;
      auto got = slide.read_region(std::llround(x * ds), std::llround(y * ds), i, w, h);
      EXPECT_TRUE(torch::equal(got, crop_or_white(level, x, y, w, h)))
          << "level " << i << " region " << x << "," << y << " " << w << "x" << h;
    }
  }
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST(Dicom, ParsesNestedSequencesOfBothLengthFormsAndListsFragments) {
  TempDir dir("dicom_parse");
  for (bool undefined : {true, false}) {
    DicomLevelSpec spec;
    spec.rgb = test_image(70, 100, 1);
    spec.jpeg = true, spec.sparse = true, spec.omitted = {1}, spec.offset_table = true, spec.split_fragments = true;
    spec.undefined_lengths = undefined;
    // A private sequence kept as UN with an undefined length: implicit-VR items, one holding a nested sequence.
    using namespace pathvlm::testing::dicom_writer;
    const std::string implicit_element = le16(0x0009) + le16(0x1002) + le32(4) + "abcd";
    const std::string nested = le16(0x0009) + le16(0x1003) + le32(0xFFFFFFFF) + le16(0xFFFE) + le16(0xE000) +
                               le32(static_cast<uint32_t>(implicit_element.size())) + implicit_element + le16(0xFFFE) +
                               le16(0xE0DD) + le32(0);
    spec.extra[dicom::tag(0x0009, 0x0010)] = element(0x0009, 0x0010, "LO", "PRIVATE CREATOR");
    spec.extra[dicom::tag(0x0009, 0x1001)] = le16(0x0009) + le16(0x1001) + "UN" + le16(0) + le32(0xFFFFFFFF) +
                                             le16(0xFFFE) + le16(0xE000) + le32(0xFFFFFFFF) + implicit_element +
                                             nested + le16(0xFFFE) + le16(0xE00D) + le32(0) + le16(0xFFFE) +
                                             le16(0xE0DD) + le32(0);
    const std::string path = write_dicom_level(dir / (undefined ? "u" : "d"), spec).front();
    ASSERT_TRUE(dicom::is_dicom(path));
    const dicom::File f = dicom::read(path);
    EXPECT_EQ(f.transfer_syntax, "1.2.840.10008.1.2.4.50");
    EXPECT_EQ(f.data.string(dicom::tag(0x0008, 0x0008), 2), "VOLUME");
    EXPECT_EQ(f.data.string(dicom::tag(0x0009, 0x0010)), "PRIVATE CREATOR");
    EXPECT_EQ(f.data.find(dicom::tag(0x0009, 0x1001)), nullptr);  // skipped: its contents have no VRs to read by
    EXPECT_EQ(f.data.string(dicom::tag(0x0020, 0x000E)), "1.2.826.0.1.3680043.10.1");  // read on after it
    EXPECT_EQ(f.data.count(dicom::tag(0x0008, 0x0008)), 4u);
    EXPECT_EQ(f.data.number(dicom::tag(0x0048, 0x0006)), 100);
    EXPECT_EQ(f.data.number(dicom::tag(0x0028, 0x0008)), 3);  // 2x2 tiles, one left out
    const auto* measures = f.data.item(dicom::tag(0x5200, 0x9229))->item(dicom::tag(0x0028, 0x9110));
    ASSERT_NE(measures, nullptr);
    EXPECT_DOUBLE_EQ(*measures->number(dicom::tag(0x0028, 0x0030), 1), 0.00025);
    const auto* third = f.data.item(dicom::tag(0x5200, 0x9230), 2)->item(dicom::tag(0x0048, 0x021A));
    EXPECT_EQ(third->number(dicom::tag(0x0048, 0x021E)), 65);  // tile (1, 1): 1-based pixel position
    EXPECT_EQ(third->number(dicom::tag(0x0048, 0x021F)), 65);
    EXPECT_TRUE(f.encapsulated);
    EXPECT_EQ(f.fragments.size(), 6u);
    ASSERT_EQ(f.offset_table.size(), 3u);
    dicom::Frames frames(f, 3, 0);
    // A frame is its two fragments joined: a whole JPEG.
    const auto bytes = frames.read(1);
    EXPECT_EQ(bytes[0], 0xFF);
    EXPECT_EQ(bytes[1], 0xD8);
    auto tile = data::decode_image(bytes.data(), bytes.size(), "frame 1");
    EXPECT_EQ(tile.size(0), 64);
  }
}

TEST(DicomSlide, UncompressedPyramidReadsItsPixelsExactly) {
  TempDir dir("dicom_pyramid");
  const uint64_t seed = pathvlm::testing::test_seed(11);
  // Three levels in three files, tiles of other sizes on each; a label, a file of another series and a stray
  // non-DICOM file share the folder.
  std::vector<torch::Tensor> levels = {test_image(150, 200, seed), test_image(75, 100, seed + 1),
                                       test_image(37, 50, seed + 2)};
  std::vector<std::string> files;
  const int tiles[] = {64, 48, 32};
  for (size_t i = 0; i < levels.size(); ++i) {
    DicomLevelSpec spec;
    spec.rgb = levels[i];
    spec.tile_width = tiles[i], spec.tile_height = tiles[i] / 2 + 8;
    spec.undefined_lengths = i % 2 == 0;
    files.push_back(write_dicom_level(dir / ("level" + std::to_string(i)), spec).front());
  }
  DicomLevelSpec label;
  label.rgb = test_image(20, 40, seed + 3), label.flavor = "LABEL";
  write_dicom_level(dir / "label", label);
  DicomLevelSpec other;
  other.rgb = test_image(30, 30, seed + 4), other.series = "1.2.826.0.1.3680043.10.99";
  write_dicom_level(dir / "other", other);
  write_bytes(dir / "notes.txt", "not a slide");

  wsi::Slide slide = wsi::Slide::open(files[1]);  // any file of the series opens the slide
  EXPECT_DOUBLE_EQ(slide.level(1).downsample, 2.0);
  EXPECT_DOUBLE_EQ(slide.level(2).downsample, (200.0 / 50 + 150.0 / 37) / 2);  // OpenSlide's mean of both axes
  EXPECT_EQ(slide.property("openslide.vendor"), "dicom");
  EXPECT_EQ(slide.property("openslide.level[2].tile-width"), "32");
  EXPECT_EQ(slide.property("dicom.Manufacturer"), "pathvlm tests");
  EXPECT_EQ(slide.property("dicom.ImageType[2]"), "VOLUME");
  EXPECT_EQ(slide.property("openslide.objective-power"), "20");
  EXPECT_DOUBLE_EQ(wsi::slide_mpp(slide), 0.25);
  expect_levels_read_as(slide, levels, seed);

  // The other series opens as its own one-level slide.
  wsi::Slide alone = wsi::Slide::open(dir / "other.dcm");
  expect_levels_read_as(alone, {other.rgb}, seed);
}

TEST(DicomSlide, JpegSparseConcatenationsReadAsLibjpegDecodesTheirFrames) {
  TempDir dir("dicom_sparse");
  const uint64_t seed = pathvlm::testing::test_seed(12);
  struct Case {
    bool sparse, offset_table, split;
    int parts;
  };
  for (const Case c : {Case{true, true, true, 2}, Case{true, false, false, 3}, Case{false, true, false, 2},
                       Case{false, false, false, 1}}) {
    const std::string sub = dir / str(c.sparse, c.offset_table, c.split, c.parts);
    fs::create_directories(sub);
    DicomLevelSpec spec;
    spec.rgb = test_image(150, 210, seed);
    spec.jpeg = true, spec.sparse = c.sparse, spec.offset_table = c.offset_table, spec.split_fragments = c.split;
    spec.parts = c.parts;
    if (c.sparse) spec.omitted = {0, 5, 11};  // 4x3 tiles: a corner, the middle and the last tile have no frame
    const auto paths = write_dicom_level(sub + "/slide", spec);
    wsi::Slide slide = wsi::Slide::open(paths.back());
    SCOPED_TRACE(sub);
    expect_levels_read_as(slide, {expected_dicom_pixels(spec)}, seed);
  }
}

TEST(DicomSlide, LosslessJpeg2000FramesReadAsTheirPixels) {
  if (!data::jpeg2000_built_in()) GTEST_SKIP() << "built without OpenJPEG";
  TempDir dir("dicom_j2k");
  const uint64_t seed = pathvlm::testing::test_seed(14);
  DicomLevelSpec spec;
  spec.rgb = test_image(90, 130, seed);
  spec.jpeg2000 = true, spec.sparse = true, spec.omitted = {2}, spec.offset_table = true, spec.parts = 2;
  const auto paths = write_dicom_level(dir / "slide", spec);
  wsi::Slide slide = wsi::Slide::open(paths.front());
  expect_levels_read_as(slide, {expected_dicom_pixels(spec)}, seed);
  // Lossless: the frames decode to the pixels written.
  auto written = spec.rgb.clone();
  written.slice(0, 0, 64).slice(1, 128, 130).fill_(255);  // tile 2, the first row's last, has no frame
  EXPECT_TRUE(torch::equal(slide.read_level(0), written));
}

TEST(DicomSlide, TheSharedFixtureReadsAsOpenSlideReadsTheSvsItWasConvertedFrom) {
  // boxes_0.dcm (VOLUME, JPEG with RGB samples) and boxes_1.dcm (THUMBNAIL, uncompressed) are PixelMed's conversion
  // of small.svs: the same JPEG tiles, so the same pixels through libjpeg.
  if (!fs::exists(shared_slide("boxes_0.dcm")))
    GTEST_SKIP() << "shared test data missing: " << shared_slide("boxes_0.dcm");
  if (!wsi::openslide_built_in()) GTEST_SKIP() << "built without OpenSlide (the reference reader)";
  wsi::Slide svs = wsi::Slide::open(shared_slide("small.svs"));
  for (const char* name : {"boxes_0.dcm", "boxes_1.dcm"}) {
    wsi::Slide dcm = wsi::Slide::open(shared_slide(name));
    ASSERT_EQ(dcm.level_count(), 1) << name;  // the thumbnail is not a level
    EXPECT_EQ(dcm.width(), svs.width());
    EXPECT_EQ(dcm.height(), svs.height());
    EXPECT_TRUE(torch::equal(dcm.read_region(0, 0, 0, 16, 16), svs.read_region(0, 0, 0, 16, 16))) << name;
    EXPECT_TRUE(torch::equal(dcm.read_region(-5, 3, 0, 30, 20), svs.read_region(-5, 3, 0, 30, 20))) << name;
    EXPECT_NEAR(wsi::slide_mpp(dcm), 0.499, 1e-9);
    EXPECT_EQ(dcm.property("dicom.TotalPixelMatrixColumns"), "16");
  }
}

TEST(DicomSlide, FoldersListOneSlidePerSeries) {
  TempDir dir("dicom_list");
  DicomLevelSpec a;
  a.rgb = test_image(64, 64, 3);
  write_dicom_level(dir / "b_level0", a);
  a.rgb = test_image(32, 32, 4);
  write_dicom_level(dir / "c_level1", a);
  a.flavor = "LABEL";
  write_dicom_level(dir / "a_label", a);
  DicomLevelSpec b;
  b.rgb = test_image(40, 40, 5), b.series = "1.2.826.0.1.3680043.10.7";
  write_dicom_level(dir / "z_other", b);
  write_bytes(dir / "broken.dcm", std::string(128, '\0') + "DICM" + "garbage!");
  const auto slides = wsi::list_slides(dir.path.string());
  ASSERT_EQ(slides.size(), 3u);
  EXPECT_EQ(slides[0].id, "a_label");  // the series' first file names it, whichever image it holds
  EXPECT_EQ(slides[0].problem, "");
  EXPECT_EQ(slides[1].id, "broken");
  EXPECT_NE(slides[1].problem.find("broken.dcm"), std::string::npos) << slides[1].problem;
  EXPECT_EQ(slides[2].id, "z_other");
  wsi::Slide slide = wsi::Slide::open(slides[0].path);
  EXPECT_EQ(slide.level_count(), 2);

  // A CSV naming every file (`find -name '*.dcm'`, the Imaging Data Commons' folder per series): one slide per series.
  std::string csv = "slide\n";
  for (const char* name : {"c_level1.dcm", "z_other.dcm", "b_level0.dcm", "a_label.dcm"}) csv += dir / name + "\n";
  const auto from_csv = wsi::list_slides(dir.write("slides.csv", csv));
  ASSERT_EQ(from_csv.size(), 2u);
  EXPECT_EQ(from_csv[0].id, "c_level1");  // the first row of its series
  EXPECT_EQ(from_csv[1].id, "z_other");
}

TEST(DicomSlide, DamagedAndUnsupportedFilesAreErrorsNamingTheFile) {
  TempDir dir("dicom_bad");
  DicomLevelSpec spec;
  spec.rgb = test_image(100, 100, 6);
  spec.jpeg = true;
  const std::string good = write_dicom_level(dir / "good", spec).front();
  const std::string bytes = read_bytes(good);

  // Cut inside the frames: the fragment list ends early.
  write_bytes(dir / "cut.dcm", bytes.substr(0, bytes.size() * 3 / 4));
  EXPECT_NE(error_of([&] { wsi::Slide::open(dir / "cut.dcm"); }).find("cut.dcm"), std::string::npos);
  EXPECT_NE(error_of([&] { dicom::read(dir / "cut.dcm"); }).find("cut short"), std::string::npos);
  // Cut inside the header: in an element's value, in an element's header, between two elements.
  write_bytes(dir / "header.dcm", bytes.substr(0, 320));
  EXPECT_NE(error_of([&] { dicom::read(dir / "header.dcm"); }).find("runs past the end of the file"),
            std::string::npos);
  write_bytes(dir / "header.dcm", bytes.substr(0, 301));
  EXPECT_NE(error_of([&] { dicom::read(dir / "header.dcm"); }).find("element header cut short"), std::string::npos);
  write_bytes(dir / "header.dcm", bytes.substr(0, 300));  // after ImageType
  EXPECT_NE(error_of([&] { wsi::Slide::open(dir / "header.dcm"); }).find("no SeriesInstanceUID"), std::string::npos);

  // Other encodings, stated by the transfer syntax: JPEG 2000 with JPEG's colour space, HTJ2K.
  DicomLevelSpec j2k = spec;
  j2k.transfer_syntax = "1.2.840.10008.1.2.4.91";
  write_dicom_level(dir / "j2k/slide", j2k);
  const std::string colors = error_of([&] { wsi::Slide::open(dir / "j2k/slide.dcm"); });
  EXPECT_NE(colors.find("PhotometricInterpretation 'YBR_FULL_422' is not read with transfer syntax "
                        "1.2.840.10008.1.2.4.91 (YBR_ICT, YBR_RCT or RGB)"),
            std::string::npos)
      << colors;
  DicomLevelSpec htj2k = spec;
  htj2k.transfer_syntax = "1.2.840.10008.1.2.4.201";
  write_dicom_level(dir / "htj2k/slide", htj2k);
  EXPECT_NE(
      error_of([&] { wsi::Slide::open(dir / "htj2k/slide.dcm"); }).find("transfer syntax 1.2.840.10008.1.2.4.201"),
      std::string::npos);
  DicomLevelSpec implicit = spec;
  implicit.transfer_syntax = "1.2.840.10008.1.2";
  write_dicom_level(dir / "implicit/slide", implicit);
  EXPECT_NE(error_of([&] { wsi::Slide::open(dir / "implicit/slide.dcm"); }).find("implicit VR little endian"),
            std::string::npos);

  // A concatenation with a part missing.
  DicomLevelSpec parts = spec;
  parts.parts = 3;
  const auto written = write_dicom_level(dir / "parts/slide", parts);
  fs::remove(written[1]);
  const std::string missing = error_of([&] { wsi::Slide::open(written[0]); });
  EXPECT_NE(missing.find("missing"), std::string::npos) << missing;

  // A frame that is not the JPEG it should be: the read names the file and the frame.
  std::string corrupt = bytes;
  const size_t soi = corrupt.find("\xFF\xD8\xFF");
  ASSERT_NE(soi, std::string::npos);
  for (size_t i = soi + 200; i < soi + 400; ++i) corrupt[i] = static_cast<char>(0xFF ^ corrupt[i]);
  fs::create_directories(dir / "corrupt");
  write_bytes(dir / "corrupt/slide.dcm", corrupt);
  wsi::Slide slide = wsi::Slide::open(dir / "corrupt/slide.dcm");
  const std::string frame = error_of([&] { slide.read_region(0, 0, 0, 10, 10); });
  EXPECT_NE(frame.find("slide.dcm' frame 0"), std::string::npos) << frame;

  // Random damage anywhere: an Error or a slide, never a crash (the fuzz target explores further).
  std::mt19937_64 rng(pathvlm::testing::test_seed(13));
  fs::create_directories(dir / "random");
  for (int trial = 0; trial < 200; ++trial) {
    std::string damaged = bytes;
    for (int k = 0; k < 4; ++k) damaged[132 + rng() % (damaged.size() - 132)] = static_cast<char>(rng());
    write_bytes(dir / "random/slide.dcm", damaged);
    try {
      wsi::Slide s = wsi::Slide::open(dir / "random/slide.dcm");
      s.read_region(0, 0, 0, 100, 100);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("slide.dcm"), std::string::npos) << e.what();
    }
  }
}
