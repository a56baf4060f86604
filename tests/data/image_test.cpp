// Image decode/encode, resize, crops, RandomResizedCrop and normalisation on real tiles and hand-made images.
#include <gtest/gtest.h>
#include <png.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>
#include <pathvlm/build_info.h>

#include "core/error.h"
#include "data/image.h"
#include "pil_test_images.h"
#include "test_util.h"

// After <cstdio>: jpeglib.h uses FILE and size_t without including their headers.
#include <jpeglib.h>

namespace fs = std::filesystem;
using namespace pathvlm::data;
using pathvlm::testing::crc_of;
using pathvlm::testing::error_of;
using pathvlm::testing::pattern_image;
using pathvlm::testing::run_command;
using pathvlm::testing::TempDir;

namespace {

std::vector<std::string> shared_tiles() {
  std::vector<std::string> out;
  const fs::path dir = fs::path(PATHVLM_SHARED_DATA) / "tiles";
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().extension() == ".png") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

// A PNG in any simplified-API format (gray, gray+alpha, RGBA, 16-bit linear), written by libpng itself.
Bytes png_with_format(const std::vector<uint8_t>& pixels, int w, int h, uint32_t format) {
  png_image image{};
  image.version = PNG_IMAGE_VERSION;
  image.width = w;
  image.height = h;
  image.format = format;
  png_alloc_size_t size = 0;
  EXPECT_TRUE(png_image_write_to_memory(&image, nullptr, &size, 0, pixels.data(), 0, nullptr));
  Bytes out(size);
  EXPECT_TRUE(png_image_write_to_memory(&image, out.data(), &size, 0, pixels.data(), 0, nullptr));
  out.resize(size);
  return out;
}

// A JPEG written by libjpeg at quality 100 without subsampling: `components` samples per pixel in `in_space`,
// stored as `stored_space` (CMYK pixels stored as YCCK, as Photoshop writes them).
Bytes libjpeg_encode(const std::vector<uint8_t>& pixels, int w, int h, int components, J_COLOR_SPACE in_space,
                     J_COLOR_SPACE stored_space) {
  jpeg_compress_struct cinfo{};
  jpeg_error_mgr errors{};
  cinfo.err = jpeg_std_error(&errors);
  jpeg_create_compress(&cinfo);
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&cinfo, &buffer, &size);
  cinfo.image_width = w;
  cinfo.image_height = h;
  cinfo.input_components = components;
  cinfo.in_color_space = in_space;
  jpeg_set_defaults(&cinfo);
  jpeg_set_colorspace(&cinfo, stored_space);
  jpeg_set_quality(&cinfo, 100, TRUE);
  for (int c = 0; c < cinfo.num_components; ++c)
    cinfo.comp_info[c].h_samp_factor = cinfo.comp_info[c].v_samp_factor = 1;
  jpeg_start_compress(&cinfo, TRUE);
  for (int y = 0; y < h; ++y) {
    JSAMPROW row = const_cast<uint8_t*>(pixels.data()) + static_cast<size_t>(y) * w * components;
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  Bytes out(buffer, buffer + size);
  std::free(buffer);
  return out;
}

torch::Tensor random_image(int h, int w, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, {h, w, 3}, gen, torch::kLong).to(torch::kByte);
}

}  // namespace

TEST(Image, DecodesSharedTilesAndRoundTripsPng) {
  auto tiles = shared_tiles();
  if (tiles.empty()) GTEST_SKIP() << "shared data not found at " << PATHVLM_SHARED_DATA << "/tiles";
  for (const auto& path : tiles) {
    auto img = read_image(path);
    // Width and height as the PNG header (IHDR, big-endian at bytes 16 and 20) states them.
    auto bytes = read_file_bytes(path);
    auto be32 = [&](size_t at) { return int64_t(bytes[at]) << 24 | bytes[at + 1] << 16 | bytes[at + 2] << 8 | bytes[at + 3]; };
    ASSERT_EQ(img.sizes(), (std::vector<int64_t>{be32(20), be32(16), 3})) << path;
    EXPECT_GE(img.size(0), 128) << path;
    ASSERT_EQ(img.scalar_type(), torch::kByte);
    // H&E: not blank, and more red than green on average (eosin).
    auto mean = img.to(torch::kFloat).mean(std::vector<int64_t>{0, 1});
    EXPECT_GT(img.to(torch::kFloat).std().item<float>(), 5.0f) << path;
    EXPECT_GT(mean[0].item<float>(), mean[1].item<float>()) << path;

    auto png = encode_png(img);
    EXPECT_EQ(sniff_image_format(png.data(), png.size()), ImageFormat::Png);
    EXPECT_TRUE(torch::equal(decode_image(png, "re-encoded"), img)) << path;

    auto jpeg = encode_jpeg(img, 95);
    EXPECT_EQ(sniff_image_format(jpeg.data(), jpeg.size()), ImageFormat::Jpeg);
    auto back = decode_image(jpeg, "jpeg");
    ASSERT_EQ(back.sizes(), img.sizes());
    const float err = (back.to(torch::kFloat) - img.to(torch::kFloat)).abs().mean().item<float>();
    EXPECT_LT(err, 3.0f) << path;
    EXPECT_GT(err, 0.0f) << "JPEG is lossy: identical pixels mean it was not encoded";
  }
}

TEST(Image, ExpandsGrayAlphaAnd16BitPng) {
  const int w = 3, h = 2;
  std::vector<uint8_t> gray = {0, 50, 100, 150, 200, 255};
  auto g = decode_image(png_with_format(gray, w, h, PNG_FORMAT_GRAY), "gray");
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{2, 3, 3}));
  for (int c = 0; c < 3; ++c) EXPECT_EQ(g[1][1][c].item<int>(), 200);

  // RGBA: opaque keeps the colour, transparent becomes white, half alpha blends with white.
  std::vector<uint8_t> rgba = {10, 20, 30, 255, 10, 20, 30, 0, 0, 0, 0, 128,
                               200, 100, 50, 255, 0, 0, 0, 255, 255, 255, 255, 255};
  auto a = decode_image(png_with_format(rgba, w, h, PNG_FORMAT_RGBA), "rgba");
  EXPECT_EQ(a[0][0][0].item<int>(), 10);
  EXPECT_EQ(a[0][0][2].item<int>(), 30);
  EXPECT_EQ(a[0][1][1].item<int>(), 255);
  EXPECT_EQ(a[0][2][0].item<int>(), 127);  // 255 * 127 / 255
  EXPECT_EQ(a[1][0][1].item<int>(), 100);

  // 16-bit: the high byte (as PIL reads it).
  std::vector<uint16_t> deep = {0x0000, 0x1234, 0xFFFF, 0x8000, 0x7FFF, 0x0100};
  std::vector<uint8_t> raw(reinterpret_cast<uint8_t*>(deep.data()), reinterpret_cast<uint8_t*>(deep.data()) + 12);
  auto d = decode_image(png_with_format(raw, w, h, PNG_FORMAT_LINEAR_Y), "16-bit");
  EXPECT_EQ(d[0][1][0].item<int>(), 0x12);
  EXPECT_EQ(d[0][2][1].item<int>(), 0xFF);
  EXPECT_EQ(d[1][0][2].item<int>(), 0x80);
}

TEST(Image, DecodesGrayJpeg) {
  std::vector<uint8_t> gray(16 * 8, 0);
  for (int i = 0; i < 16 * 8; ++i) gray[i] = static_cast<uint8_t>(i < 64 ? 40 : 220);
  auto img = decode_image(libjpeg_encode(gray, 16, 8, 1, JCS_GRAYSCALE, JCS_GRAYSCALE), "gray jpeg");
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{8, 16, 3}));
  EXPECT_NEAR(img[1][2][0].item<int>(), 40, 2);
  EXPECT_NEAR(img[6][10][2].item<int>(), 220, 2);
  EXPECT_EQ(img[6][10][0].item<int>(), img[6][10][1].item<int>());
}

// The RGB bytes Pillow + transformers' convert_to_rgb give (CRC-32 from tests/data/decode_vectors.py, which wrote
// the files). JPEG: CMYK with and without Pillow's odd chroma subsampling, progressive gray, junk bytes before the
// end-of-image marker (libjpeg warns, Pillow decodes). TIFF: LZW and JPEG-compressed, turned by their orientation
// tags as Pillow turns them (180 degrees; 90, width and height swapped), gray with unassociated alpha, palette, CMYK
// (Pillow's rounding, not libtiff's), bilevel, two pages. WebP: lossy and lossless, without and with alpha.
TEST(Image, DecodesAsPilDoes) {
  struct Vector {
    const char* name;
    int h, w;
    uint32_t crc;
  };
  const fs::path dir = fs::path(PATHVLM_SOURCE_DIR) / "tests/data/decode";
  for (const auto& v : std::vector<Vector>{
           {"cmyk.jpg", 20, 28, 0x8F4AA694u},        {"cmyk_subsampled.jpg", 20, 28, 0x2629CBC4u},
           {"gray_progressive.jpg", 19, 23, 0x00B3F6B0u}, {"rgb_junk_before_eoi.jpg", 17, 30, 0x344D7957u},
           {"bilevel.tif", 21, 26, 0x5490D2D5u},     {"cmyk.tif", 15, 22, 0x488F3357u},
           {"gray_alpha.tif", 18, 24, 0xF0303C2Eu},  {"palette.tif", 21, 26, 0x6A99A18Au},
           {"rgb_jpeg.tif", 26, 21, 0xE9BC1B11u},    {"rgb_lzw.tif", 21, 26, 0xED694D64u},
           {"two_pages.tif", 21, 26, 0xF449FE50u},   {"rgb_lossy.webp", 19, 27, 0x6323A635u},
           {"rgba_lossy.webp", 22, 17, 0x59B5418Fu}, {"rgb_lossless.webp", 18, 25, 0xF2B4DD6Au},
           {"rgba_lossless.webp", 16, 21, 0x64ADD892u}}) {
    const auto ext = fs::path(v.name).extension();
    if ((ext == ".tif" && !pathvlm::build::kHaveLibTiff) || (ext == ".webp" && !pathvlm::build::kHaveLibWebp)) {
      const std::string missing = ext == ".tif" ? "no libtiff" : "no libwebp";
      EXPECT_NE(error_of([&] { read_image((dir / v.name).string()); }).find(missing), std::string::npos);
      continue;
    }
    const auto rgb = read_image((dir / v.name).string());
    ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{v.h, v.w, 3})) << v.name;
    EXPECT_EQ(crc_of(rgb), v.crc) << v.name;
  }
  // The same junk before a JPEG's last marker changes no pixel; cut short, the same file is an error, as in Pillow.
  const auto clean = encode_jpeg(random_image(24, 40, 2), 85);
  Bytes junk(clean.begin(), clean.end() - 2);
  for (uint8_t b : {0x00, 0x7F, 0x10}) junk.push_back(b);
  junk.insert(junk.end(), clean.end() - 2, clean.end());
  EXPECT_TRUE(torch::equal(decode_image(junk, "junk"), decode_image(clean, "clean")));
  const Bytes cut(clean.begin(), clean.end() - 2);
  EXPECT_NE(error_of([&] { decode_image(cut, "tile 'cut.jpg'"); }).find("tile 'cut.jpg': corrupt JPEG data"),
            std::string::npos);
}

// CMYK pixels stored as CMYK and as YCCK (Photoshop's choice) decode to the same RGB: with Adobe's inverted samples
// s, channel = s_c s_k / 255. Blocks of one colour, so that quality 100 is all but lossless.
TEST(Image, DecodesCmykAndYcckJpeg) {
  const int w = 32, h = 16;
  std::vector<uint8_t> cmyk(w * h * 4);
  const uint8_t colours[4][4] = {{255, 255, 255, 255}, {200, 100, 30, 255}, {255, 128, 0, 90}, {10, 250, 120, 200}};
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) std::copy_n(colours[(y / 8) * 2 + x / 16], 4, &cmyk[(y * w + x) * 4]);
  for (auto stored : {JCS_CMYK, JCS_YCCK}) {
    const auto rgb = decode_image(libjpeg_encode(cmyk, w, h, 4, JCS_CMYK, stored), "cmyk");
    ASSERT_EQ(rgb.sizes(), (std::vector<int64_t>{h, w, 3}));
    for (int block = 0; block < 4; ++block) {
      const int y = (block / 2) * 8 + 3, x = (block % 2) * 16 + 7;
      for (int c = 0; c < 3; ++c) {
        const double expected = colours[block][c] * colours[block][3] / 255.0;
        EXPECT_NEAR(rgb[y][x][c].item<int>(), expected, 3) << "stored as " << stored << ", block " << block;
      }
    }
  }
}

TEST(Image, CorruptBytesGiveClearErrors) {
  auto img = random_image(32, 48, 1);
  auto jpeg = encode_jpeg(img, 80), png = encode_png(img);
  Bytes cut_jpeg(jpeg.begin(), jpeg.begin() + jpeg.size() / 2), cut_png(png.begin(), png.begin() + png.size() / 2);
  EXPECT_NE(error_of([&] { decode_image(cut_jpeg, "tile 'a.jpg'"); }).find("tile 'a.jpg': corrupt JPEG"),
            std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(cut_png, "tile 'b.png'"); }).find("tile 'b.png': corrupt PNG"),
            std::string::npos);
  Bytes garbage = {'h', 'e', 'l', 'l', 'o', ' ', 'w', 'o', 'r', 'l', 'd'};
  EXPECT_NE(error_of([&] { decode_image(garbage, "x"); }).find("not a JPEG, PNG, TIFF or WebP"), std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(Bytes{}, "x"); }).find("empty image data"), std::string::npos);
  // A JPEG whose entropy-coded data is overwritten.
  Bytes scrambled = jpeg;
  for (size_t i = scrambled.size() / 2; i < scrambled.size() - 2; ++i) scrambled[i] = 0xFF;
  EXPECT_THROW(decode_image(scrambled, "scrambled"), pathvlm::Error);
  EXPECT_NE(error_of([] { read_image("/nonexistent/tile.png"); }).find("cannot open '/nonexistent/tile.png'"),
            std::string::npos);
}

// Random damage (bytes overwritten, the file cut short, both) to JPEGs and PNGs of several sizes and qualities: each
// decodes to an RGB image or fails with a pathvlm::Error naming the image; never a crash or another exception.
TEST(Image, RandomlyDamagedBytesDecodeOrFailNamingTheImage) {
  std::vector<Bytes> originals;
  for (int i = 0; i < 4; ++i) {
    auto img = random_image(17 + 13 * i, 23 + 7 * i, 10 + i);
    originals.push_back(encode_jpeg(img, 50 + 15 * i));
    originals.push_back(encode_png(img));
  }
  std::vector<torch::Tensor> clean;
  for (const auto& bytes : originals) clean.push_back(decode_image(bytes, "tile 'clean.img'"));
  std::mt19937_64 rng(pathvlm::testing::test_seed(20261205));
  int decoded = 0, refused = 0;
  for (int i = 0; i < 2000; ++i) {
    const size_t original = rng() % originals.size();
    Bytes bytes = originals[original];
    const int damage = static_cast<int>(rng() % 3);
    if (damage != 1) {
      for (int n = 1 + static_cast<int>(rng() % 8); n > 0; --n) bytes[rng() % bytes.size()] = rng() % 256;
    }
    if (damage != 0) bytes.resize(rng() % (bytes.size() + 1));
    try {
      const auto rgb = decode_image(bytes, "tile 'fuzz.img'");
      ASSERT_EQ(rgb.dim(), 3);
      ASSERT_EQ(rgb.size(2), 3);
      ASSERT_EQ(rgb.scalar_type(), torch::kUInt8);
      ++decoded;
    } catch (const pathvlm::Error& e) {
      ASSERT_NE(std::string(e.what()).find("fuzz.img"), std::string::npos) << e.what();
      ++refused;
      // A damaged image leaves nothing behind: the next image this thread decodes (a loader worker's next
      // record) decodes as it always does.
      ASSERT_TRUE(torch::equal(decode_image(originals[original], "tile 'clean.img'"), clean[original])) << i;
    }
  }
  EXPECT_GT(refused, 0);
  RecordProperty("decoded", decoded);
}

// CRC-32s of what Pillow's Image.resize(BICUBIC) gives (tests/data/pil_resize_vectors.py): down, up, one axis,
// extreme ratios; noise and hard edges make PIL's rounding between its two passes and its clipping visible.
TEST(Image, ResizeIsPilBicubicBitForBit) {
  struct Synthetic {
    int kind, h, w, oh, ow;
    uint32_t crc;
  };
  for (const auto& c : std::vector<Synthetic>{
           {0, 256, 256, 224, 224, 0x5516CE46u}, {0, 37, 53, 16, 20, 0xE98DF41Du}, {0, 20, 24, 45, 31, 0x8F39B04Cu},
           {0, 9, 7, 9, 14, 0x2F62571Bu},        {0, 300, 200, 224, 149, 0x5FB26466u}, {0, 1000, 3, 5, 200, 0x69CF294Cu},
           {0, 1, 1, 3, 2, 0x600000A4u},         {1, 256, 256, 224, 224, 0x6453D3E0u}, {1, 37, 53, 16, 20, 0x436A53F9u},
           {1, 20, 24, 45, 31, 0xAAE282BAu},     {1, 9, 7, 9, 14, 0xF7F76DFBu},       {1, 300, 200, 224, 149, 0xCC499F18u},
           {1, 1000, 3, 5, 200, 0xBC4C2A4Eu},    {1, 1, 1, 3, 2, 0x2519BEE0u}}) {
    auto ours = resize_bicubic(pattern_image(c.h, c.w, c.kind), c.oh, c.ow);
    ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{c.oh, c.ow, 3}));
    EXPECT_EQ(crc_of(ours), c.crc) << "pattern " << c.kind << ", " << c.h << "x" << c.w << " -> " << c.oh << "x" << c.ow;
  }
  auto flat = torch::full({10, 14, 3}, 77, torch::kByte);
  EXPECT_TRUE(torch::equal(resize_bicubic(flat, 5, 3), torch::full({5, 3, 3}, 77, torch::kByte)));
  auto same = random_image(8, 8, 3);
  EXPECT_TRUE(torch::equal(resize_bicubic(same, 8, 8), same));

  struct Tile {
    const char* name;
    int oh, ow;
    uint32_t crc;
  };
  const fs::path tiles = fs::path(PATHVLM_SHARED_DATA) / "tiles";
  if (!fs::exists(tiles)) GTEST_SKIP() << "shared data not found at " << tiles;
  for (const auto& c : std::vector<Tile>{{"he_01581x_25327y.png", 224, 224, 0xCC6A33D8u},
                                         {"he_01581x_25327y.png", 336, 336, 0xDFA0D955u},
                                         {"he_01581x_25327y.png", 100, 150, 0x6AE48340u},
                                         {"he_01581x_25583y.png", 224, 224, 0x8449FE4Fu},
                                         {"he_01581x_25583y.png", 336, 336, 0x8A2602A5u},
                                         {"he_01581x_25583y.png", 100, 150, 0xD3D33CD9u},
                                         {"he_prov_normal_000_1.png", 224, 224, 0x5D75BF7Cu},
                                         {"he_prov_normal_000_1.png", 336, 336, 0xEFB69A19u},
                                         {"he_prov_normal_000_1.png", 100, 150, 0x3B29878Fu}}) {
    EXPECT_EQ(crc_of(resize_bicubic(read_image((tiles / c.name).string()), c.oh, c.ow)), c.crc)
        << c.name << " -> " << c.oh << "x" << c.ow;
  }
}

// Pillow itself (tests/data/pil_resize.py) against resize() with both filters, on images of random content and sizes
// (down, up, one axis, extreme ratios) and on the sizes tiles take (512 -> 256 -> 224, 224 -> 448): every byte equal.
TEST(Image, ResizeMatchesPillowOnFuzzedImages) {
  TempDir dir("pil_resize");
  std::mt19937 rng(20261207);
  const auto side = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); };
  struct Case {
    int h, w, oh, ow;
    Interpolation how;
  };
  std::vector<Case> cases;
  for (const auto how : {Interpolation::bicubic, Interpolation::bilinear}) {
    for (const auto& [h, w, oh, ow] : std::vector<std::array<int, 4>>{
             {512, 512, 256, 256}, {256, 256, 224, 224}, {512, 512, 224, 224}, {224, 224, 448, 448}, {1, 1, 3, 2}}) {
      cases.push_back({h, w, oh, ow, how});
    }
    for (int i = 0; i < 40; ++i) cases.push_back({side(1, 200), side(1, 200), side(1, 260), side(1, 260), how});
  }
  nlohmann::json listed = nlohmann::json::array();
  std::ofstream pixels(dir.path / "pixels.u8", std::ios::binary);
  std::vector<torch::Tensor> inputs;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    // Noise, hard edges or a smooth ramp: overshoots PIL clips, exact ties, and the plain case.
    torch::Tensor image = i % 3 == 0   ? random_image(c.h, c.w, 100 + i)
                          : i % 3 == 1 ? pattern_image(c.h, c.w, 1)
                                       : (torch::arange(c.h * c.w * 3) % 251).to(torch::kByte).view({c.h, c.w, 3});
    inputs.push_back(image);
    pixels.write(static_cast<const char*>(image.data_ptr()), static_cast<std::streamsize>(image.numel()));
    listed.push_back({{"h", c.h}, {"w", c.w}, {"oh", c.oh}, {"ow", c.ow}, {"filter", interpolation_name(c.how)}});
  }
  pixels.close();
  std::ofstream(dir.path / "cases.json") << listed.dump();
  std::string output;
  ASSERT_EQ(run_command(std::string("/usr/bin/python3 ") + PATHVLM_SOURCE_DIR + "/tests/data/pil_resize.py " +
                            (dir.path / "cases.json").string() + " " + (dir.path / "pixels.u8").string() + " " +
                            (dir.path / "pil.u8").string(),
                        output),
            0)
      << output;
  const Bytes pil = read_file_bytes((dir.path / "pil.u8").string());
  size_t at = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const auto& c = cases[i];
    const auto ours = resize(inputs[i], c.oh, c.ow, c.how);
    ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{c.oh, c.ow, 3}));
    const size_t n = static_cast<size_t>(ours.numel());
    ASSERT_LE(at + n, pil.size());
    const auto expected = torch::from_blob(const_cast<uint8_t*>(pil.data() + at), {c.oh, c.ow, 3}, torch::kByte);
    const int apart = (ours.to(torch::kInt) - expected.to(torch::kInt)).abs().max().item<int>();
    EXPECT_TRUE(torch::equal(ours, expected)) << "case " << i << ": " << c.h << "x" << c.w << " -> " << c.oh << "x"
                                              << c.ow << " " << interpolation_name(c.how) << ", " << apart
                                              << " levels apart at most";
    at += n;
  }
  EXPECT_EQ(at, pil.size());
}

// The bilinear filter by hand: halving [0, 70, 140, 210] weighs (3, 3, 1) / 7 over a support of two input pixels
// each side; doubling [0, 200] gives [0, 50, 150, 200] (edges clamp to the nearest input).
TEST(Image, BilinearIsPilsTriangleFilter) {
  const auto row = [](std::vector<int> v) {
    return torch::tensor(v, torch::kInt).to(torch::kByte).view({1, -1, 1}).expand({1, -1, 3}).contiguous();
  };
  EXPECT_TRUE(torch::equal(resize(row({0, 70, 140, 210}), 1, 2, Interpolation::bilinear), row({50, 160})));
  EXPECT_TRUE(torch::equal(resize(row({0, 200}), 1, 4, Interpolation::bilinear), row({0, 50, 150, 200})));
  EXPECT_FALSE(torch::equal(resize(row({0, 70, 140, 210}), 1, 2, Interpolation::bicubic), row({50, 160})));
  EXPECT_EQ(parse_interpolation("bilinear", "x"), Interpolation::bilinear);
  EXPECT_THROW(parse_interpolation("lanczos", "x"), pathvlm::Error);
}

// LLaVA's expand2square: the image pasted at floor(difference / 2) on a square of int(mean x 255).
TEST(Image, PadToSquareCentresTheImageOnTheMeanColourAsLlavaDoes) {
  const auto fill = mean_colour(kOpenAiMean);
  EXPECT_EQ(fill, (std::array<uint8_t, 3>{122, 116, 104}));
  const auto background = torch::tensor({122, 116, 104}, torch::kByte);
  const auto wide = random_image(3, 6, 4), tall = random_image(7, 4, 5), square = random_image(5, 5, 6);
  const auto padded_wide = pad_to_square(wide, fill);
  ASSERT_EQ(padded_wide.sizes(), (std::vector<int64_t>{6, 6, 3}));
  EXPECT_TRUE(torch::equal(padded_wide.narrow(0, 1, 3), wide));  // (6 - 3) / 2 = 1 row above
  for (int64_t row : {0, 4, 5}) EXPECT_TRUE(torch::equal(padded_wide[row], background.expand({6, 3}))) << row;
  const auto padded_tall = pad_to_square(tall, fill);
  ASSERT_EQ(padded_tall.sizes(), (std::vector<int64_t>{7, 7, 3}));
  EXPECT_TRUE(torch::equal(padded_tall.narrow(1, 1, 4), tall));  // (7 - 4) / 2 = 1 column left
  for (int64_t col : {0, 5, 6}) EXPECT_TRUE(torch::equal(padded_tall.select(1, col), background.expand({7, 3}))) << col;
  EXPECT_TRUE(torch::equal(pad_to_square(square, fill), square));
}

TEST(Image, ShortestSideCenterCropAndNormalise) {
  auto tall = random_image(300, 200, 5);
  EXPECT_EQ(resize_shortest_side(tall, 100).sizes(), (std::vector<int64_t>{150, 100, 3}));
  auto wide = random_image(30, 71, 5);
  EXPECT_EQ(resize_shortest_side(wide, 20).sizes(), (std::vector<int64_t>{20, 47, 3}));  // int(20*71/30)

  // Pixel value = 10*row + col; crop offsets floor((5-2)/2)=1, floor((7-3)/2)=2.
  auto grid = (torch::arange(5).view({5, 1, 1}) * 10 + torch::arange(7).view({1, 7, 1})).expand({5, 7, 3});
  auto crop = center_crop(grid.to(torch::kByte).contiguous(), 2, 3);
  ASSERT_EQ(crop.sizes(), (std::vector<int64_t>{2, 3, 3}));
  EXPECT_EQ(crop[0][0][0].item<int>(), 12);
  EXPECT_EQ(crop[1][2][1].item<int>(), 24);
  auto padded = center_crop(torch::full({2, 2, 3}, 9, torch::kByte), 4, 4);
  EXPECT_EQ(padded[0][0][0].item<int>(), 0);
  EXPECT_EQ(padded[1][1][0].item<int>(), 9);

  auto tile224 = random_image(224, 224, 9);
  EXPECT_TRUE(torch::equal(resize_shortest_and_center_crop(tile224, 224), tile224));
  EXPECT_EQ(resize_shortest_and_center_crop(tall, 64).sizes(), (std::vector<int64_t>{64, 64, 3}));

  auto px = torch::zeros({1, 2, 3}, torch::kByte);
  px[0][1] = 255;
  auto x = normalize_openai(px);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{3, 1, 2}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_NEAR(x[c][0][0].item<float>(), -kOpenAiMean[c] / kOpenAiStd[c], 1e-6);
    EXPECT_NEAR(x[c][0][1].item<float>(), (1 - kOpenAiMean[c]) / kOpenAiStd[c], 1e-6);
  }
}

// The loader normalises whole uint8 [B,3,H,W] batches where they arrive: the same values, bit for bit, as the
// per-image normalisation the workers did before (its formula kept here as the reference) and normalize_image.
TEST(Image, NormalizePixelsOfABatchEqualsNormalizeImageBitwise) {
  const std::array<double, 3> mean = {0.5, 0.25, 0.125}, std = {0.3, 0.2, 0.7};
  auto per_image = [](const torch::Tensor& rgb, const std::array<double, 3>& m, const std::array<double, 3>& s) {
    auto mt = torch::tensor({m[0], m[1], m[2]}, torch::kFloat).view({3, 1, 1});
    auto st = torch::tensor({s[0], s[1], s[2]}, torch::kFloat).view({3, 1, 1});
    return rgb.permute({2, 0, 1}).to(torch::kFloat).div_(255.0f).sub_(mt).div_(st).contiguous();
  };
  std::vector<torch::Tensor> images, expected, expected_openai;
  for (int k = 0; k < 4; ++k) {
    images.push_back(random_image(17, 23, 100 + k));
    expected.push_back(per_image(images.back(), mean, std));
    expected_openai.push_back(per_image(images.back(), kOpenAiMean, kOpenAiStd));
    EXPECT_TRUE(torch::equal(normalize_image(images.back(), mean, std), expected.back()));
    EXPECT_TRUE(torch::equal(normalize_openai(images.back()), expected_openai.back()));
  }
  auto batch = torch::stack(images).permute({0, 3, 1, 2}).contiguous();  // uint8 [4,3,17,23], as the loader's
  auto x = normalize_pixels(batch, channel_values(mean), channel_values(std));
  EXPECT_EQ(x.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(x, torch::stack(expected)));
  EXPECT_TRUE(torch::equal(normalize_pixels(batch, channel_values(kOpenAiMean), channel_values(kOpenAiStd)),
                           torch::stack(expected_openai)));
  EXPECT_FALSE(torch::equal(x, torch::stack(expected_openai)));  // the mean and std are used
  EXPECT_NE(error_of([&] { normalize_pixels(batch.to(torch::kFloat), channel_values(mean), channel_values(std)); })
                .find("normalize_pixels: expected uint8 pixels [...,3,H,W], got [4, 3, 17, 23] Float"),
            std::string::npos);
  EXPECT_THROW(normalize_pixels(images[0], channel_values(mean), channel_values(std)), pathvlm::Error);  // HWC
}

TEST(Image, RandomResizedCropIsDeterministicAndInRange) {
  auto img = random_image(64, 80, 11);
  std::set<std::tuple<int, int, int, int>> boxes;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    auto g1 = at::detail::createCPUGenerator(seed), g2 = at::detail::createCPUGenerator(seed);
    auto a = random_resized_crop_box(64, 80, g1), b = random_resized_crop_box(64, 80, g2);
    EXPECT_EQ(std::tie(a.top, a.left, a.height, a.width), std::tie(b.top, b.left, b.height, b.width));
    boxes.insert({a.top, a.left, a.height, a.width});
    const double frac = static_cast<double>(a.height) * a.width / (64.0 * 80.0);
    EXPECT_GE(frac, 0.87);
    EXPECT_LE(frac, 1.0);
    EXPECT_LE(a.top + a.height, 64);
    EXPECT_LE(a.left + a.width, 80);
    const double aspect = static_cast<double>(a.width) / a.height;
    EXPECT_GE(aspect, 0.75 - 0.03);
    EXPECT_LE(aspect, 4.0 / 3.0 + 0.03);
  }
  EXPECT_GT(boxes.size(), 20u) << "crops should vary with the seed";

  auto g1 = at::detail::createCPUGenerator(5), g2 = at::detail::createCPUGenerator(5);
  auto x = random_resized_crop(img, 32, g1), y = random_resized_crop(img, 32, g2);
  EXPECT_EQ(x.sizes(), (std::vector<int64_t>{32, 32, 3}));
  EXPECT_TRUE(torch::equal(x, y));

  // A very wide image cannot fit the ratio at 90% area: the fallback crops the middle at ratio 4/3.
  auto g3 = at::detail::createCPUGenerator(1);
  auto box = random_resized_crop_box(10, 100, g3);
  EXPECT_EQ(box.height, 10);
  EXPECT_EQ(box.width, 13);
  EXPECT_EQ(box.left, 43);
}
