// Image bytes (JPEG, PNG, TIFF, WebP) from anywhere (a tile in a shard, an instruct image, an `encode` input) through
// decode_image, then the resize and crop a CLIP transform applies. Invariants: an RGB uint8 image within the pixel
// limit, and the resized crop the transform's size.
#include "core/error.h"
#include "data/image.h"
#include "fuzz_util.h"

using pathvlm::fuzz::require;

// Big enough for any image the fuzzer grows, small enough to decode quickly.
constexpr int64_t kMaxPixels = 1 << 20;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool limited = [] {
    pathvlm::data::set_max_image_pixels(kMaxPixels);
    return true;
  }();
  (void)limited;
  try {
    const auto rgb = pathvlm::data::decode_image(data, size, "tile 'fuzz.img'");
    require(rgb.dim() == 3 && rgb.size(2) == 3 && rgb.scalar_type() == torch::kUInt8, "not an RGB uint8 image");
    require(rgb.size(0) * rgb.size(1) <= kMaxPixels, "an image beyond the pixel limit");
    const auto crop = pathvlm::data::resize_shortest_and_center_crop(rgb, 16);
    require(crop.size(0) == 16 && crop.size(1) == 16 && crop.size(2) == 3, "the transform's crop has the wrong size");
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
