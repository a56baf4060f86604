// DICOM whole-slide files from anywhere (`pathvlm tile` on a folder of .dcm): the Part 10 parser, the level and tile
// layout, and tile reads. Invariants: every fragment and the native pixel data lie inside the file, levels have
// pixels and go from large to small, and regions read (inside, across the edge, outside) come back whole.
#include <algorithm>

#include "core/error.h"
#include "fuzz_util.h"
#include "io/dicom.h"
#include "wsi/dicom_slide.h"

using pathvlm::fuzz::require;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = pathvlm::fuzz::scratch_file("slide.dcm", data, size);
  try {
    const pathvlm::dicom::File f = pathvlm::dicom::read(path);
    for (const auto& fragment : f.fragments)
      require(fragment.offset <= size && fragment.length <= size - fragment.offset, "a fragment beyond the file");
    require(f.pixel_offset <= size && f.pixel_length <= size - f.pixel_offset, "pixel data beyond the file");
  } catch (const pathvlm::Error&) {
  }
  try {
    auto slide = pathvlm::wsi::DicomSlide::open(path);
    const auto& levels = slide->levels();
    require(!levels.empty(), "a slide without levels");
    for (size_t i = 0; i < levels.size(); ++i) {
      require(levels[i].width > 0 && levels[i].height > 0, "a level without pixels");
      require(i == 0 || levels[i].width <= levels[i - 1].width, "levels not from large to small");
      std::vector<uint8_t> rgb(48 * 40 * 3, 7);
      const int level = static_cast<int>(i);
      for (auto [x, y] :
           {std::pair<int64_t, int64_t>{0, 0}, {levels[0].width - 20, levels[0].height - 10}, {-30, -30}}) {
        slide->read_region(x, y, level, 48, 40, rgb.data());
        if (x < 0)  // its first row lies above the slide
          require(std::all_of(rgb.begin(), rgb.begin() + 48 * 3, [](uint8_t v) { return v == 255; }),
                  "pixels outside the slide not white");
      }
    }
  } catch (const pathvlm::Error&) {
  }
  return 0;
}
