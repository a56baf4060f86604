// DICOM whole-slide images (VL Whole Slide Microscopy Image Storage: what the NCI Imaging Data Commons serves TCGA
// as, and what slide scanners export), read as OpenSlide 4 reads them, for builds whose OpenSlide cannot (Debian
// 12's is 3.4). Slide::open hands .dcm files here.
//
// Any file of a series opens the slide: every file in its folder with the same SeriesInstanceUID and the image
// flavour VOLUME is a pyramid level (several files of one size form one level as a concatenation); labels,
// overviews and thumbnails are left out. Frames are tiles in TILED_FULL order or placed by their per-frame
// positions (TILED_SPARSE; a tile no frame covers is white). Pixels: JPEG baseline (YCbCr or RGB) as libjpeg decodes
// it, JPEG 2000 as OpenJPEG does (OpenSlide's decoders, hence its pixels), and uncompressed RGB. Properties:
// openslide.mpp-x/y from PixelSpacing, openslide.objective-power, the openslide.level[N].* geometry and
// dicom.<Keyword> for the common attributes, named as OpenSlide names them.
#pragma once
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "wsi/slide.h"

namespace pathvlm::wsi {

// What a DICOM file is, from the start of its header: its series and image flavour (ImageType's third value:
// VOLUME, LABEL, OVERVIEW, THUMBNAIL). An Error naming the file for a file that is not a whole-slide image.
struct DicomImageInfo {
  std::string series;
  std::string flavor;
};
DicomImageInfo dicom_image_info(const std::string& path);

class DicomSlide {
 public:
  static std::unique_ptr<DicomSlide> open(const std::string& path);
  ~DicomSlide();

  const std::vector<Level>& levels() const { return levels_; }
  const std::map<std::string, std::string>& properties() const { return properties_; }

  // A w x h region of stored level `level` whose top-left corner is (x, y) in level-0 pixels (on a level
  // below 0, the nearest level pixel); pixels outside the level or in a tile no frame covers are white.
  void read_region(int64_t x, int64_t y, int level, int64_t w, int64_t h, uint8_t* rgb);

 private:
  struct StoredLevel;
  DicomSlide() = default;
  const uint8_t* tile(int level, int64_t column, int64_t row);

  std::string path_;
  std::vector<std::unique_ptr<StoredLevel>> stored_;
  std::vector<Level> levels_;
  std::map<std::string, std::string> properties_;

  // Decoded tiles, least recently used first out (OpenSlide's cache is 32 MiB too).
  static constexpr size_t kCacheBytes = size_t{32} << 20;
  using TileKey = uint64_t;
  std::list<TileKey> recency_;
  struct Cached {
    std::vector<uint8_t> rgb;
    std::list<TileKey>::iterator position;
  };
  std::unordered_map<TileKey, Cached> cache_;
  size_t cache_bytes_ = 0;
};

}  // namespace pathvlm::wsi
