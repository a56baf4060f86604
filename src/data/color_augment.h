// open_clip's colour augmentations (`--aug-cfg color_jitter=(b,c,s,h) color_jitter_prob=p gray_scale_prob=q`, the
// SimCLR recipe): torchvision's ColorJitter and Grayscale on PIL images, pixel for pixel. The adjustments are
// Pillow's: ImageEnhance's blends with a degenerate image (black, the mean gray, the gray image) in its
// single-precision arithmetic, its HSV conversions for the hue shift, and its L conversion for gray
// (tests/data/color_vectors.py writes the vectors with Pillow). Pixels are uint8 RGB [H,W,3].
//
//   ColorAugment aug{{0.4, 0.4, 0.4, 0.1}, 0.8, 0.2};
//   torch::Tensor out = aug.apply(rgb, gen);    // draws from gen only
#pragma once
#include <torch/torch.h>

#include <array>

namespace pathvlm::data {

torch::Tensor adjust_brightness(const torch::Tensor& rgb, double factor);  // blend with black
torch::Tensor adjust_contrast(const torch::Tensor& rgb, double factor);    // blend with the image's mean gray
torch::Tensor adjust_saturation(const torch::Tensor& rgb, double factor);  // blend with the image in gray
torch::Tensor adjust_hue(const torch::Tensor& rgb, double hue_factor);     // HSV hue shifted by hue_factor (|h| <= 0.5)
torch::Tensor to_grayscale(const torch::Tensor& rgb);                      // L = ITU-R 601-2 luma, in 3 channels

struct ColorAugment {
  // brightness, contrast, saturation: factors drawn from [max(0, 1 - v), 1 + v]; hue: from [-v, v]; 0 = off.
  std::array<double, 4> jitter = {0, 0, 0, 0};
  double jitter_prob = 0;  // the chance ColorJitter is applied (its four adjustments in a random order)
  double gray_prob = 0;    // the chance the image becomes gray
  bool active() const { return jitter_prob > 0 || gray_prob > 0; }
  torch::Tensor apply(const torch::Tensor& rgb, torch::Generator& gen) const;
};

}  // namespace pathvlm::data
