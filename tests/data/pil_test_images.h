// What the tests comparing with Pillow share: the synthetic images the vector scripts draw
// (tests/data/pil_resize_vectors.py, tests/data/color_vectors.py) and the CRC-32 of an image's bytes they print.
#pragma once
#include <torch/torch.h>
#include <zlib.h>

#include <cstdint>

namespace pathvlm::testing {

// Kind 0: noise over every colour; kind 1: hard-edged black and white checks.
inline torch::Tensor pattern_image(int h, int w, int kind) {
  auto img = torch::empty({h, w, 3}, torch::kByte);
  auto px = img.accessor<uint8_t, 3>();
  for (int64_t y = 0; y < h; ++y) {
    for (int64_t x = 0; x < w; ++x) {
      for (int64_t c = 0; c < 3; ++c) {
        px[y][x][c] = kind == 0 ? static_cast<uint8_t>(((y * 73856093) ^ (x * 19349663) ^ (c * 83492791)) >> 7 & 255)
                                : static_cast<uint8_t>((x / 5 + y / 7 + c) % 2 == 1 ? 255 : 0);
      }
    }
  }
  return img;
}

inline uint32_t crc_of(const torch::Tensor& rgb) {
  auto bytes = rgb.contiguous();
  return static_cast<uint32_t>(crc32(0L, bytes.data_ptr<uint8_t>(), static_cast<uInt>(bytes.numel())));
}

}  // namespace pathvlm::testing
