// Image decode/encode, resize, crops, RandomResizedCrop and normalisation on real tiles and hand-made images.
#include <gtest/gtest.h>
#include <png.h>
#include <turbojpeg.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "data/image.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm::data;
using pathvlm::testing::error_of;

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

// PIL's separable bicubic resample (a = -0.5, support widened by the scale when downscaling), in double.
torch::Tensor pil_resize_axis(const torch::Tensor& x, int axis, int out_size) {
  const int in_size = static_cast<int>(x.size(axis));
  const double scale = static_cast<double>(in_size) / out_size, ss = std::max(scale, 1.0), support = 2.0 * ss;
  auto cubic = [](double t) {
    t = std::abs(t);
    const double a = -0.5;
    if (t < 1) return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2) return (((t - 5) * t + 8) * t - 4) * a;
    return 0.0;
  };
  auto weights = torch::zeros({out_size, in_size}, torch::kDouble);
  for (int i = 0; i < out_size; ++i) {
    const double center = (i + 0.5) * scale;
    const int lo = std::max(static_cast<int>(center - support + 0.5), 0);
    const int hi = std::min(static_cast<int>(center + support + 0.5), in_size);
    double total = 0;
    for (int j = lo; j < hi; ++j) total += cubic((j - center + 0.5) / ss);
    for (int j = lo; j < hi; ++j) weights[i][j] = cubic((j - center + 0.5) / ss) / total;
  }
  return torch::tensordot(weights, x, {1}, {axis}).movedim(0, axis);
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
  tjhandle tj = tjInitCompress();
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  ASSERT_EQ(tjCompress2(tj, gray.data(), 16, 0, 8, TJPF_GRAY, &buffer, &size, TJSAMP_GRAY, 100, 0), 0);
  Bytes jpeg(buffer, buffer + size);
  tjFree(buffer);
  tjDestroy(tj);
  auto img = decode_image(jpeg, "gray jpeg");
  ASSERT_EQ(img.sizes(), (std::vector<int64_t>{8, 16, 3}));
  EXPECT_NEAR(img[1][2][0].item<int>(), 40, 2);
  EXPECT_NEAR(img[6][10][2].item<int>(), 220, 2);
  EXPECT_EQ(img[6][10][0].item<int>(), img[6][10][1].item<int>());
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
  EXPECT_NE(error_of([&] { decode_image(garbage, "x"); }).find("not a JPEG or PNG"), std::string::npos);
  EXPECT_NE(error_of([&] { decode_image(Bytes{}, "x"); }).find("empty image data"), std::string::npos);
  // A JPEG whose entropy-coded data is overwritten.
  Bytes scrambled = jpeg;
  for (size_t i = scrambled.size() / 2; i < scrambled.size() - 2; ++i) scrambled[i] = 0xFF;
  EXPECT_THROW(decode_image(scrambled, "scrambled"), pathvlm::Error);
  EXPECT_NE(error_of([] { read_image("/nonexistent/tile.png"); }).find("cannot open '/nonexistent/tile.png'"),
            std::string::npos);
}

TEST(Image, ResizeMatchesPilBicubic) {
  struct Case {
    int h, w, oh, ow;
  };
  for (auto c : {Case{37, 53, 16, 20}, Case{20, 24, 45, 31}, Case{256, 256, 224, 224}, Case{9, 7, 9, 14}}) {
    auto img = random_image(c.h, c.w, 7);
    auto ours = resize_bicubic(img, c.oh, c.ow);
    ASSERT_EQ(ours.sizes(), (std::vector<int64_t>{c.oh, c.ow, 3}));
    auto ref = pil_resize_axis(pil_resize_axis(img.to(torch::kDouble), 1, c.ow), 0, c.oh).round().clamp(0, 255);
    const double diff = (ours.to(torch::kDouble) - ref).abs().max().item<double>();
    EXPECT_LE(diff, 1.0) << c.h << "x" << c.w << " -> " << c.oh << "x" << c.ow;
  }
  auto flat = torch::full({10, 14, 3}, 77, torch::kByte);
  EXPECT_TRUE(torch::equal(resize_bicubic(flat, 5, 3), torch::full({5, 3, 3}, 77, torch::kByte)));
  auto same = random_image(8, 8, 3);
  EXPECT_TRUE(torch::equal(resize_bicubic(same, 8, 8), same));
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
