// Whole slide images through OpenSlide (DICOM ones through wsi/dicom_slide.h): an RAII handle, level geometry,
// properties, microns per pixel, and region reads converted from OpenSlide's premultiplied ARGB to RGB uint8
// (transparent -> white).
//
//   auto slide = wsi::Slide::open("a.svs");              // throws pathvlm::Error naming the file
//   double mpp = wsi::slide_mpp(slide, override_mpp);     // TRIDENT's property order; error if none
//   torch::Tensor rgb = slide.read_region(x0, y0, level, w, h);   // uint8 [h,w,3]
//
// OpenSlide is optional in the build (PATHVLM_HAVE_OPENSLIDE); without it every Slide::open of a non-DICOM file
// throws a clear "not built in" error and `wsi::openslide_built_in()` is false, so callers compile everywhere.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace pathvlm::wsi {

bool openslide_built_in();

class DicomSlide;

struct Level {
  int64_t width = 0, height = 0;
  double downsample = 1.0;  // level-0 pixels per level pixel
  // The level is narrower or shorter than one of its tiles (openslide.level[N].tile-width/height) and its tiles are
  // decoded by libtiff (TIFF compression other than JPEG or JPEG 2000; any, when the build cannot tell). OpenSlide
  // 3.4 with libtiff 4.5 (Debian 12) decodes such tiles into shifted rows and uninitialised memory, so read_region
  // reads these levels from a finer one instead.
  bool smaller_than_tile = false;
};

class Slide {
 public:
  // Opens `path`; an unrecognised format or a slide in OpenSlide's error state is an Error naming the file. A DICOM
  // file opens its series (the other files of the series in its folder) through DicomSlide.
  static Slide open(const std::string& path);

  Slide(Slide&& other) noexcept;
  Slide& operator=(Slide&& other) noexcept;
  Slide(const Slide&) = delete;
  Slide& operator=(const Slide&) = delete;
  ~Slide();

  const std::string& path() const { return path_; }
  int level_count() const { return static_cast<int>(levels_.size()); }
  const Level& level(int index) const;
  const std::vector<Level>& levels() const { return levels_; }
  int64_t width() const { return levels_.front().width; }
  int64_t height() const { return levels_.front().height; }

  // The level with the largest downsample that is <= `downsample` (x 1.01 slack for rounding).
  int level_at_or_above(double downsample) const;

  const std::map<std::string, std::string>& properties() const { return properties_; }
  std::optional<std::string> property(const std::string& name) const;

  // Reads a w x h region of `level` whose top-left corner is (x, y) in level-0 pixels, into `rgb`
  // (w*h*3 bytes). Premultiplied ARGB is un-premultiplied and composited over white, so pixels outside
  // the slide are white. A level smaller than one tile is read from the nearest finer level that is not and
  // area-averaged down to it. An OpenSlide error (sticky) reopens the handle once and retries; a second
  // failure is an Error naming the file and region.
  void read_region(int64_t x, int64_t y, int level, int64_t w, int64_t h, uint8_t* rgb);
  torch::Tensor read_region(int64_t x, int64_t y, int level, int64_t w, int64_t h);  // uint8 [h,w,3]

  // The whole of one level as uint8 [h,w,3]; refuses levels above `max_pixels` (segmentation must run
  // on a downsampled level, never on gigapixels).
  torch::Tensor read_level(int level, int64_t max_pixels = int64_t(1) << 28);

 private:
  Slide();
  static Slide open_openslide(const std::string& path);
  void reopen();
  void close();
  void read_stored_level(int64_t x, int64_t y, int level, int64_t w, int64_t h, uint8_t* rgb);
  void read_openslide_level(int64_t x, int64_t y, int level, int64_t w, int64_t h, uint8_t* rgb);

  std::string path_;
  void* handle_ = nullptr;  // openslide_t*
  std::unique_ptr<DicomSlide> dicom_;  // set instead of handle_ for a DICOM slide
  std::vector<Level> levels_;
  std::map<std::string, std::string> properties_;
  std::vector<uint32_t> argb_;  // scratch for read_region
};

// Converts `n` premultiplied ARGB pixels (native-endian uint32) to RGB over a white background.
void argb_premultiplied_to_rgb(const uint32_t* argb, int64_t n, uint8_t* rgb);

// Microns per pixel at level 0 from the slide's properties, tried in TRIDENT's order: openslide.mpp-x,
// openslide.mirax.MPP, aperio.MPP, hamamatsu.XResolution, openslide.comment (when it is a bare number),
// then tiff.XResolution with tiff.ResolutionUnit centimeter (1e4/x) or inch (25400/x). Values outside
// (0.01, 100) um/px are ignored as implausible. nullopt when none gives a value.
std::optional<double> mpp_from_properties(const std::map<std::string, std::string>& properties);

// `override_mpp` (> 0) wins; otherwise mpp_from_properties; a slide with neither is an Error naming it.
double slide_mpp(const Slide& slide, double override_mpp = 0.0);

// Nominal objective magnification for a level-0 mpp, bucketed as TRIDENT does (<0.16 -> 80x, <0.2 -> 60x,
// <0.3 -> 40x, <0.6 -> 20x, <1.2 -> 10x, <2.4 -> 5x, else 10/mpp).
double magnification_from_mpp(double mpp);

}  // namespace pathvlm::wsi
