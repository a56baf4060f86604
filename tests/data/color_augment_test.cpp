// open_clip's colour augmentations: each adjustment equals torchvision's on PIL images (vectors from Pillow,
// tests/data/color_vectors.py), and ColorAugment draws them from the record's generator only.
#include "data/color_augment.h"

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "core/error.h"
#include "data/image.h"
#include "pil_test_images.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::data;
using pathvlm::testing::crc_of;

namespace {

// tests/data/color_vectors.py's pattern_image: noise over every colour.
torch::Tensor noise_image(int h, int w) { return pathvlm::testing::pattern_image(h, w, 0); }

torch::Tensor adjusted(const torch::Tensor& rgb, const std::string& op, double factor) {
  if (op == "brightness") return adjust_brightness(rgb, factor);
  if (op == "contrast") return adjust_contrast(rgb, factor);
  if (op == "saturation") return adjust_saturation(rgb, factor);
  if (op == "hue") return adjust_hue(rgb, factor);
  return to_grayscale(rgb);
}

}  // namespace

TEST(ColorAugment, AdjustmentsArePillowsPixelForPixel) {
  struct Case {
    const char* image;
    const char* op;
    double factor;
    uint32_t crc;
  };
  // python3 tests/data/color_vectors.py (Pillow 9.4, numpy 1.24)
  const Case cases[] = {
      {"pattern", "brightness", 0.6, 0x3a34d77eu},
      {"pattern", "brightness", 1.37, 0xde6405e5u},
      {"pattern", "contrast", 0.55, 0x74d7d601u},
      {"pattern", "contrast", 1.4, 0xb844d806u},
      {"pattern", "saturation", 0.0, 0xfb278a57u},
      {"pattern", "saturation", 0.62, 0x2316e1e9u},
      {"pattern", "saturation", 1.33, 0x74bba8bfu},
      {"pattern", "hue", -0.5, 0x12e47f0fu},
      {"pattern", "hue", -0.1, 0x2cbce8a1u},
      {"pattern", "hue", 0.037, 0xd5352855u},
      {"pattern", "hue", 0.1, 0x548da2a4u},
      {"pattern", "hue", 0.5, 0x81954fc7u},
      {"pattern", "gray", 0.0, 0xfb278a57u},
      {"he_01581x_25327y.png", "brightness", 0.6, 0x6da2f005u},
      {"he_01581x_25327y.png", "brightness", 1.37, 0xdff104f4u},
      {"he_01581x_25327y.png", "contrast", 0.55, 0x1de94f58u},
      {"he_01581x_25327y.png", "contrast", 1.4, 0xe0c07d99u},
      {"he_01581x_25327y.png", "saturation", 0.0, 0x5bc9a45cu},
      {"he_01581x_25327y.png", "saturation", 0.62, 0xb6dcc786u},
      {"he_01581x_25327y.png", "saturation", 1.33, 0x652d9079u},
      {"he_01581x_25327y.png", "hue", -0.5, 0x531b6066u},
      {"he_01581x_25327y.png", "hue", -0.1, 0x5c07d0a0u},
      {"he_01581x_25327y.png", "hue", 0.037, 0xf9c9e2fdu},
      {"he_01581x_25327y.png", "hue", 0.1, 0xe0f0a6d8u},
      {"he_01581x_25327y.png", "hue", 0.5, 0x5c61b4dbu},
      {"he_01581x_25327y.png", "gray", 0.0, 0x5bc9a45cu},
      {"he_01581x_25583y.png", "brightness", 0.6, 0x4fa016aau},
      {"he_01581x_25583y.png", "brightness", 1.37, 0x0f1ec887u},
      {"he_01581x_25583y.png", "contrast", 0.55, 0xd2579e49u},
      {"he_01581x_25583y.png", "contrast", 1.4, 0x79d2de6bu},
      {"he_01581x_25583y.png", "saturation", 0.0, 0x402a7424u},
      {"he_01581x_25583y.png", "saturation", 0.62, 0xb1eb868eu},
      {"he_01581x_25583y.png", "saturation", 1.33, 0xd3fd2e86u},
      {"he_01581x_25583y.png", "hue", -0.5, 0x74f661bfu},
      {"he_01581x_25583y.png", "hue", -0.1, 0xdd84cdc5u},
      {"he_01581x_25583y.png", "hue", 0.037, 0x33af985cu},
      {"he_01581x_25583y.png", "hue", 0.1, 0xa700fba5u},
      {"he_01581x_25583y.png", "hue", 0.5, 0x2d6db6f9u},
      {"he_01581x_25583y.png", "gray", 0.0, 0x402a7424u},
      {"he_prov_normal_000_1.png", "brightness", 0.6, 0xacdca40fu},
      {"he_prov_normal_000_1.png", "brightness", 1.37, 0x97102d93u},
      {"he_prov_normal_000_1.png", "contrast", 0.55, 0x37f734a0u},
      {"he_prov_normal_000_1.png", "contrast", 1.4, 0x0e4422fau},
      {"he_prov_normal_000_1.png", "saturation", 0.0, 0xa72e8ab7u},
      {"he_prov_normal_000_1.png", "saturation", 0.62, 0x3a686823u},
      {"he_prov_normal_000_1.png", "saturation", 1.33, 0xc5ada337u},
      {"he_prov_normal_000_1.png", "hue", -0.5, 0xbdc36ea8u},
      {"he_prov_normal_000_1.png", "hue", -0.1, 0x69b1b08du},
      {"he_prov_normal_000_1.png", "hue", 0.037, 0x2cca8c2au},
      {"he_prov_normal_000_1.png", "hue", 0.1, 0x8bb8f8acu},
      {"he_prov_normal_000_1.png", "hue", 0.5, 0x304432fcu},
      {"he_prov_normal_000_1.png", "gray", 0.0, 0xa72e8ab7u},
  };
  const fs::path tiles = fs::path(PATHVLM_SHARED_DATA) / "tiles";
  int checked = 0;
  for (const Case& c : cases) {
    const std::string name = c.image;
    if (name != "pattern" && !fs::exists(tiles / name)) continue;
    const torch::Tensor rgb = name == "pattern" ? noise_image(31, 23) : read_image((tiles / name).string());
    EXPECT_EQ(crc_of(adjusted(rgb, c.op, c.factor)), c.crc) << name << " " << c.op << " " << c.factor;
    ++checked;
  }
  EXPECT_GE(checked, 13);
}

TEST(ColorAugment, DrawsFromTheGeneratorAloneAndKeepsTheImageWhenOff) {
  const torch::Tensor rgb = noise_image(20, 24);
  ColorAugment off;
  auto gen = at::detail::createCPUGenerator(5);
  EXPECT_FALSE(off.active());
  EXPECT_TRUE(torch::equal(off.apply(rgb, gen), rgb));

  ColorAugment jitter{{0.4, 0.4, 0.4, 0.1}, 1.0, 0.0};
  auto a = at::detail::createCPUGenerator(7), b = at::detail::createCPUGenerator(7);
  const auto first = jitter.apply(rgb, a);
  EXPECT_TRUE(torch::equal(first, jitter.apply(rgb, b)));  // the same draws from the same seed
  EXPECT_FALSE(torch::equal(first, rgb));
  EXPECT_FALSE(torch::equal(jitter.apply(rgb, a), first));  // the generator moved on

  // Gray always: every pixel's three channels equal, the luma Pillow gives.
  ColorAugment gray{{0, 0, 0, 0}, 0.0, 1.0};
  const auto g = gray.apply(rgb, gen);
  EXPECT_TRUE(torch::equal(g, to_grayscale(rgb)));
  EXPECT_TRUE(torch::equal(g.select(2, 0), g.select(2, 2)));

  // Only hue jitter: brightness (the V of HSV) stays within rounding of the input's.
  ColorAugment hue{{0, 0, 0, 0.5}, 1.0, 0.0};
  const auto shifted = hue.apply(rgb, gen);
  const auto v_in = std::get<0>(rgb.to(torch::kInt).max(2)), v_out = std::get<0>(shifted.to(torch::kInt).max(2));
  EXPECT_LE((v_in - v_out).abs().max().item<int>(), 1);
}

TEST(ColorAugment, RefusesFactorsOutOfRangeAndImagesWithoutPixels) {
  const torch::Tensor rgb = noise_image(4, 4);
  EXPECT_NE(pathvlm::testing::error_of([&] { adjust_hue(rgb, 0.6); }).find("[-0.5, 0.5]"), std::string::npos);
  EXPECT_NE(pathvlm::testing::error_of([&] { adjust_brightness(rgb, -0.1); }).find(">= 0"), std::string::npos);
  const auto empty = torch::empty({0, 4, 3}, torch::kByte);
  EXPECT_NE(pathvlm::testing::error_of([&] { adjust_contrast(empty, 1.2); }).find("adjust_contrast: empty image"),
            std::string::npos);
}
