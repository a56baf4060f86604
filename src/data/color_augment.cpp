#include "data/color_augment.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "data/image.h"

namespace pathvlm::data {
namespace {

uint8_t clip8(int v) { return static_cast<uint8_t>(std::clamp(v, 0, 255)); }

// Pillow's L of an RGB pixel (ITU-R 601-2 luma in 16-bit fixed point, rounded).
uint8_t luma(const uint8_t* p) {
  return static_cast<uint8_t>((p[0] * 19595 + p[1] * 38470 + p[2] * 7471 + 0x8000) >> 16);
}

// Pillow's Image.blend(degenerate, image, alpha) of one sample: single-precision, truncated; clipped when alpha
// extrapolates.
uint8_t blend(uint8_t degenerate, uint8_t value, float alpha) {
  const float v = static_cast<float>(degenerate) + alpha * static_cast<float>(int{value} - int{degenerate});
  if (alpha >= 0 && alpha <= 1) return static_cast<uint8_t>(v);
  if (v <= 0) return 0;
  if (v >= 255) return 255;
  return static_cast<uint8_t>(v);
}

// Pillow's RGB -> HSV (colorsys's formulas, hue and saturation scaled to 0..255 and truncated).
void rgb_to_hsv(const uint8_t* in, uint8_t* out) {
  const uint8_t r = in[0], g = in[1], b = in[2];
  const uint8_t maxc = std::max({r, g, b}), minc = std::min({r, g, b});
  out[2] = maxc;
  if (minc == maxc) {
    out[0] = out[1] = 0;
    return;
  }
  const float range = static_cast<float>(maxc - minc);
  const float s = range / static_cast<float>(maxc);
  const float rc = static_cast<float>(maxc - r) / range, gc = static_cast<float>(maxc - g) / range,
              bc = static_cast<float>(maxc - b) / range;
  float h = r == maxc ? bc - gc : g == maxc ? static_cast<float>(2.0 + rc - bc) : static_cast<float>(4.0 + gc - rc);
  h = static_cast<float>(std::fmod(h / 6.0 + 1.0, 1.0));
  out[0] = clip8(static_cast<int>(h * 255.0));
  out[1] = clip8(static_cast<int>(s * 255.0));
}

// Pillow's HSV -> RGB (colorsys's sextants, each sample rounded).
void hsv_to_rgb(const uint8_t* in, uint8_t* out) {
  const uint8_t h = in[0], s = in[1], v = in[2];
  if (s == 0) {
    out[0] = out[1] = out[2] = v;
    return;
  }
  const int sextant = static_cast<int>(std::floor(static_cast<float>(h) * 6.0 / 255.0));
  const float f = static_cast<float>(static_cast<float>(h) * 6.0 / 255.0 - static_cast<float>(sextant));
  const float fs = static_cast<float>(static_cast<float>(s) / 255.0);
  const auto scaled = [v](double by) { return clip8(static_cast<int>(std::round(static_cast<float>(v) * by))); };
  const uint8_t p = scaled(1.0 - fs), q = scaled(1.0 - fs * f), t = scaled(1.0 - fs * (1.0 - f));
  const uint8_t rgb[6][3] = {{v, t, p}, {q, v, p}, {p, v, t}, {p, q, v}, {t, p, v}, {v, p, q}};
  std::copy(rgb[sextant % 6], rgb[sextant % 6] + 3, out);
}

// A new image of `pixel(in, out)` on each pixel of `rgb`, checked as an RGB image for `op`.
template <class Pixel>
torch::Tensor map_pixels(const torch::Tensor& rgb, const char* op, Pixel pixel) {
  check_rgb(rgb, op);
  const auto src = rgb.contiguous();
  auto out = torch::empty_like(src);
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t i = 0, n = src.numel() / 3; i < n; ++i, in += 3, o += 3) pixel(in, o);
  return out;
}

// Each pixel blended with `degenerate(pixel)` (a gray level) by `factor`.
template <class Degenerate>
torch::Tensor blend_with(const torch::Tensor& rgb, double factor, const char* op, Degenerate degenerate) {
  PATHVLM_CHECK(factor >= 0 && std::isfinite(factor), op, ": the factor must be >= 0, got ", factor);
  const float alpha = static_cast<float>(factor);
  return map_pixels(rgb, op, [&](const uint8_t* in, uint8_t* o) {
    const uint8_t gray = degenerate(in);
    for (int c = 0; c < 3; ++c) o[c] = blend(gray, in[c], alpha);
  });
}

double uniform(torch::Generator& gen, double lo, double hi) {
  return lo + (hi - lo) * torch::rand({1}, gen, torch::TensorOptions().dtype(torch::kDouble)).item<double>();
}

}  // namespace

torch::Tensor adjust_brightness(const torch::Tensor& rgb, double factor) {
  return blend_with(rgb, factor, "adjust_brightness", [](const uint8_t*) { return uint8_t{0}; });
}

torch::Tensor adjust_contrast(const torch::Tensor& rgb, double factor) {
  check_rgb(rgb, "adjust_contrast");
  const auto src = rgb.contiguous();
  // ImageEnhance.Contrast: the mean of the L image (ImageStat's, from its histogram), rounded half up.
  const uint8_t* in = src.data_ptr<uint8_t>();
  const int64_t n = src.numel() / 3;
  int64_t sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += luma(in + 3 * i);
  const auto mean = static_cast<uint8_t>(static_cast<int>(static_cast<double>(sum) / static_cast<double>(n) + 0.5));
  return blend_with(src, factor, "adjust_contrast", [mean](const uint8_t*) { return mean; });
}

torch::Tensor adjust_saturation(const torch::Tensor& rgb, double factor) {
  return blend_with(rgb, factor, "adjust_saturation", luma);
}

torch::Tensor adjust_hue(const torch::Tensor& rgb, double hue_factor) {
  PATHVLM_CHECK(hue_factor >= -0.5 && hue_factor <= 0.5, "adjust_hue: the hue factor must be in [-0.5, 0.5], got ",
                hue_factor);
  // torchvision adds int(hue_factor * 255), truncated, to Pillow's 8-bit hue, wrapping around.
  const auto shift = static_cast<uint8_t>(static_cast<int>(hue_factor * 255) & 0xFF);
  return map_pixels(rgb, "adjust_hue", [shift](const uint8_t* in, uint8_t* o) {
    uint8_t hsv[3];
    rgb_to_hsv(in, hsv);
    hsv[0] = static_cast<uint8_t>(hsv[0] + shift);
    hsv_to_rgb(hsv, o);
  });
}

torch::Tensor to_grayscale(const torch::Tensor& rgb) {
  return map_pixels(rgb, "to_grayscale", [](const uint8_t* in, uint8_t* o) { o[0] = o[1] = o[2] = luma(in); });
}

torch::Tensor ColorAugment::apply(const torch::Tensor& rgb, torch::Generator& gen) const {
  torch::Tensor out = rgb;
  // open_clip's color_jitter: with jitter_prob, torchvision's ColorJitter: a random order of the four adjustments,
  // then each factor drawn (brightness, contrast, saturation, hue), an adjustment of 0 left out.
  if (chance(jitter_prob, gen)) {
    const auto order = torch::randperm(4, gen, torch::TensorOptions().dtype(torch::kLong));
    std::array<double, 4> factor = {1, 1, 1, 0};
    for (int k = 0; k < 4; ++k) {
      if (jitter[k] <= 0) continue;
      factor[k] =
          k == 3 ? uniform(gen, -jitter[k], jitter[k]) : uniform(gen, std::max(0.0, 1 - jitter[k]), 1 + jitter[k]);
    }
    for (int64_t i = 0; i < 4; ++i) {
      const int64_t k = order[i].item<int64_t>();
      if (jitter[k] <= 0) continue;
      out = k == 0   ? adjust_brightness(out, factor[0])
            : k == 1 ? adjust_contrast(out, factor[1])
            : k == 2 ? adjust_saturation(out, factor[2])
                     : adjust_hue(out, factor[3]);
    }
  }
  if (chance(gray_prob, gen)) out = to_grayscale(out);
  return out;
}

}  // namespace pathvlm::data
