// OpenSlide wrapper: see slide.h.
#include "wsi/slide.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "io/dicom.h"
#include "wsi/dicom_slide.h"

#ifdef PATHVLM_HAVE_OPENSLIDE
#include <openslide/openslide.h>
#endif
#ifdef PATHVLM_HAVE_LIBTIFF
#include <tiffio.h>
#endif

namespace pathvlm::wsi {

bool openslide_built_in() {
#ifdef PATHVLM_HAVE_OPENSLIDE
  return true;
#else
  return false;
#endif
}

void argb_premultiplied_to_rgb(const uint32_t* argb, int64_t n, uint8_t* rgb) {
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t p = argb[i];
    const uint32_t a = p >> 24;
    uint32_t r = (p >> 16) & 0xff, g = (p >> 8) & 0xff, b = p & 0xff;
    if (a != 255) {
      // Premultiplied colour c over white: c + (255 - a). This equals un-premultiplying (255*c/a) and
      // then compositing over white, and maps fully transparent pixels to white.
      const uint32_t white = 255 - a;
      r = std::min<uint32_t>(255, r + white);
      g = std::min<uint32_t>(255, g + white);
      b = std::min<uint32_t>(255, b + white);
    }
    rgb[3 * i] = static_cast<uint8_t>(r);
    rgb[3 * i + 1] = static_cast<uint8_t>(g);
    rgb[3 * i + 2] = static_cast<uint8_t>(b);
  }
}

namespace {

// A finite positive number spanning the whole string (leading/trailing blanks allowed).
std::optional<double> parse_number(const std::string& text) {
  const char* begin = text.c_str();
  char* end = nullptr;
  double value = std::strtod(begin, &end);
  if (end == begin) return std::nullopt;
  while (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r') ++end;
  if (*end != '\0' || !std::isfinite(value)) return std::nullopt;
  return value;
}

bool plausible_mpp(double mpp) { return mpp > 0.01 && mpp < 100.0; }

#ifdef PATHVLM_HAVE_OPENSLIDE
openslide_t* as_osr(void* handle) { return static_cast<openslide_t*>(handle); }

struct Size {
  int64_t width, height;
  bool operator==(const Size& o) const { return width == o.width && height == o.height; }
};

// The sizes of the tiled TIFF directories of `path` that OpenSlide decodes through libtiff's RGBA interface (any
// compression but JPEG and JPEG 2000; none when the file is no TIFF), or nullopt without libtiff 4.5+ to tell.
std::optional<std::vector<Size>> rgba_decoded_tiff_sizes(const std::string& path) {
#if defined(PATHVLM_HAVE_LIBTIFF) && TIFFLIB_VERSION >= 20221213
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  auto quiet = [](TIFF*, void*, const char*, const char*, va_list) { return 1; };
  TIFFOpenOptionsSetErrorHandlerExtR(options, quiet, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(options, quiet, nullptr);
  TIFF* tif = TIFFOpenExt(path.c_str(), "r", options);
  TIFFOpenOptionsFree(options);
  std::vector<Size> sizes;
  if (!tif) return sizes;
  do {
    uint32_t width = 0, height = 0;
    uint16_t compression = COMPRESSION_NONE;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &height);
    TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
    const bool own_decoder = compression == COMPRESSION_JPEG || compression == 33003 || compression == 33005;
    if (TIFFIsTiled(tif) && !own_decoder) sizes.push_back({width, height});
  } while (TIFFReadDirectory(tif));
  TIFFClose(tif);
  return sizes;
#else
  (void)path;
  return std::nullopt;
#endif
}
#endif  // PATHVLM_HAVE_OPENSLIDE

}  // namespace

std::optional<double> mpp_from_properties(const std::map<std::string, std::string>& properties) {
  auto get = [&](const char* key) -> std::optional<double> {
    auto it = properties.find(key);
    if (it == properties.end()) return std::nullopt;
    auto value = parse_number(it->second);
    if (!value || !plausible_mpp(*value)) return std::nullopt;
    return value;
  };
  for (const char* key :
       {"openslide.mpp-x", "openslide.mirax.MPP", "aperio.MPP", "hamamatsu.XResolution", "openslide.comment"}) {
    if (auto mpp = get(key)) return mpp;
  }
  auto res = properties.find("tiff.XResolution");
  auto unit = properties.find("tiff.ResolutionUnit");
  if (res != properties.end() && unit != properties.end()) {
    auto per_unit = parse_number(res->second);
    if (per_unit && *per_unit > 0) {
      double mpp = 0;
      if (unit->second == "centimeter") mpp = 1e4 / *per_unit;
      if (unit->second == "inch") mpp = 25400.0 / *per_unit;
      if (plausible_mpp(mpp)) return mpp;
    }
  }
  return std::nullopt;
}

double slide_mpp(const Slide& slide, double override_mpp) {
  if (override_mpp > 0) return override_mpp;
  auto mpp = mpp_from_properties(slide.properties());
  PATHVLM_CHECK(mpp.has_value(), "slide '", slide.path(),
                "': no microns-per-pixel in its properties (openslide.mpp-x, aperio.MPP, tiff.XResolution, ...); "
                "give one with an mpp override (a CSV with columns slide,mpp)");
  return *mpp;
}

double magnification_from_mpp(double mpp) {
  PATHVLM_CHECK(mpp > 0, "magnification_from_mpp: mpp must be positive, got ", mpp);
  if (mpp < 0.16) return 80;
  if (mpp < 0.2) return 60;
  if (mpp < 0.3) return 40;
  if (mpp < 0.6) return 20;
  if (mpp < 1.2) return 10;
  if (mpp < 2.4) return 5;
  return 10.0 / mpp;
}

const Level& Slide::level(int index) const {
  PATHVLM_CHECK(index >= 0 && index < level_count(), "slide '", path_, "': level ", index, " does not exist (",
                level_count(), " levels)");
  return levels_[index];
}

int Slide::level_at_or_above(double downsample) const {
  int best = 0;
  for (int i = 0; i < level_count(); ++i) {
    if (levels_[i].downsample <= downsample * 1.01 && levels_[i].downsample > levels_[best].downsample) best = i;
  }
  return best;
}

std::optional<std::string> Slide::property(const std::string& name) const {
  auto it = properties_.find(name);
  if (it == properties_.end()) return std::nullopt;
  return it->second;
}

torch::Tensor Slide::read_region(int64_t x, int64_t y, int level, int64_t w, int64_t h) {
  auto out = torch::empty({h, w, 3}, torch::kUInt8);
  read_region(x, y, level, w, h, out.data_ptr<uint8_t>());
  return out;
}

torch::Tensor Slide::read_level(int index, int64_t max_pixels) {
  const Level& l = level(index);
  PATHVLM_CHECK(l.width * l.height <= max_pixels, "slide '", path_, "': level ", index, " is ", l.width, "x",
                l.height, " pixels, more than the ", max_pixels, " allowed for a whole-level read");
  return read_region(0, 0, index, l.width, l.height);
}

Slide::Slide() = default;

Slide::~Slide() { close(); }

Slide::Slide(Slide&& other) noexcept { *this = std::move(other); }

Slide& Slide::operator=(Slide&& other) noexcept {
  if (this != &other) {
    close();
    path_ = std::move(other.path_);
    handle_ = other.handle_;
    other.handle_ = nullptr;
    dicom_ = std::move(other.dicom_);
    levels_ = std::move(other.levels_);
    properties_ = std::move(other.properties_);
    argb_ = std::move(other.argb_);
  }
  return *this;
}

Slide Slide::open(const std::string& path) {
  if (!dicom::is_dicom(path)) return open_openslide(path);
  Slide slide;
  slide.path_ = path;
  slide.dicom_ = DicomSlide::open(path);
  slide.levels_ = slide.dicom_->levels();
  slide.properties_ = slide.dicom_->properties();
  return slide;
}

void Slide::read_region(int64_t x, int64_t y, int level_index, int64_t w, int64_t h, uint8_t* rgb) {
  const Level& target = level(level_index);  // validates the index
  PATHVLM_CHECK(w > 0 && h > 0, "slide '", path_, "': empty region ", w, "x", h);
  int source = level_index;
  while (source > 0 && levels_[static_cast<size_t>(source)].smaller_than_tile) --source;
  if (source == level_index || levels_[static_cast<size_t>(source)].smaller_than_tile) {
    read_stored_level(x, y, level_index, w, h, rgb);
    return;
  }
  // The same level-0 area from the finer level, averaged over the source pixels each target pixel covers.
  const double scale = target.downsample / levels_[static_cast<size_t>(source)].downsample;
  const int64_t sw = static_cast<int64_t>(std::ceil(w * scale - 1e-6));
  const int64_t sh = static_cast<int64_t>(std::ceil(h * scale - 1e-6));
  auto fine = torch::empty({sh, sw, 3}, torch::kUInt8);
  read_stored_level(x, y, source, sw, sh, fine.data_ptr<uint8_t>());
  auto reduced = torch::adaptive_avg_pool2d(fine.permute({2, 0, 1}).unsqueeze(0).to(torch::kFloat), {h, w});
  auto out = reduced.squeeze(0).permute({1, 2, 0}).round().clamp(0, 255).to(torch::kUInt8).contiguous();
  std::memcpy(rgb, out.data_ptr<uint8_t>(), static_cast<size_t>(w * h * 3));
}

void Slide::read_stored_level(int64_t x, int64_t y, int level_index, int64_t w, int64_t h, uint8_t* rgb) {
  if (dicom_) {
    dicom_->read_region(x, y, level_index, w, h, rgb);
    return;
  }
  read_openslide_level(x, y, level_index, w, h, rgb);
}

#ifdef PATHVLM_HAVE_OPENSLIDE

void Slide::close() {
  if (handle_) openslide_close(as_osr(handle_));
  handle_ = nullptr;
  dicom_.reset();
}

Slide Slide::open_openslide(const std::string& path) {
  Slide slide;
  slide.path_ = path;
  openslide_t* osr = openslide_open(path.c_str());
  PATHVLM_CHECK(osr != nullptr, "slide '", path, "': not a format OpenSlide can open (or the file is missing)");
  slide.handle_ = osr;  // owned from here on, closed by the destructor on any error below
  if (const char* err = openslide_get_error(osr)) throw Error(str("slide '", path, "': OpenSlide cannot read it: ", err));
  const int32_t count = openslide_get_level_count(osr);
  PATHVLM_CHECK(count > 0, "slide '", path, "': OpenSlide reports no levels");
  for (int32_t i = 0; i < count; ++i) {
    Level l;
    openslide_get_level_dimensions(osr, i, &l.width, &l.height);
    l.downsample = openslide_get_level_downsample(osr, i);
    PATHVLM_CHECK(l.width > 0 && l.height > 0 && l.downsample > 0, "slide '", path, "': level ", i,
                  " has invalid geometry ", l.width, "x", l.height, " downsample ", l.downsample);
    slide.levels_.push_back(l);
  }
  for (const char* const* name = openslide_get_property_names(osr); name && *name; ++name) {
    const char* value = openslide_get_property_value(osr, *name);
    if (value) slide.properties_[*name] = value;
  }
  bool any_smaller = false;
  for (int32_t i = 0; i < count; ++i) {
    Level& l = slide.levels_[static_cast<size_t>(i)];
    const auto tile_w = parse_number(slide.property(str("openslide.level[", i, "].tile-width")).value_or(""));
    const auto tile_h = parse_number(slide.property(str("openslide.level[", i, "].tile-height")).value_or(""));
    l.smaller_than_tile = (tile_w && *tile_w > static_cast<double>(l.width)) ||
                          (tile_h && *tile_h > static_cast<double>(l.height));
    any_smaller = any_smaller || l.smaller_than_tile;
  }
  // Where the file's directories can be read, only levels libtiff decodes are affected.
  if (const auto rgba_sizes = any_smaller ? rgba_decoded_tiff_sizes(path) : std::nullopt) {
    for (Level& l : slide.levels_) {
      l.smaller_than_tile = l.smaller_than_tile && std::find(rgba_sizes->begin(), rgba_sizes->end(),
                                                             Size{l.width, l.height}) != rgba_sizes->end();
    }
  }
  if (const char* err = openslide_get_error(osr)) throw Error(str("slide '", path, "': OpenSlide cannot read it: ", err));
  return slide;
}

void Slide::reopen() {
  close();
  handle_ = openslide_open(path_.c_str());
  PATHVLM_CHECK(handle_ != nullptr, "slide '", path_, "': could not reopen after a read error");
}

void Slide::read_openslide_level(int64_t x, int64_t y, int level_index, int64_t w, int64_t h, uint8_t* rgb) {
  argb_.resize(static_cast<size_t>(w * h));
  std::string error;
  // OpenSlide errors are sticky: reopen the handle once, as TRIDENT does, before giving up.
  for (int attempt = 0; attempt < 2; ++attempt) {
    if (attempt > 0) reopen();
    openslide_t* osr = as_osr(handle_);
    if (const char* err = openslide_get_error(osr)) {
      error = err;
      continue;
    }
    openslide_read_region(osr, argb_.data(), x, y, level_index, w, h);
    const char* err = openslide_get_error(osr);
    if (!err) {
      argb_premultiplied_to_rgb(argb_.data(), w * h, rgb);
      return;
    }
    error = err;
  }
  throw Error(str("slide '", path_, "': reading region x=", x, " y=", y, " level=", level_index, " size ", w, "x", h,
                  " failed: ", error));
}

#else  // no OpenSlide in this build

void Slide::close() { dicom_.reset(); }

Slide Slide::open_openslide(const std::string& path) {
  throw Error(str("slide '", path, "': pathvlm was built without OpenSlide (install libopenslide-dev and rebuild)"));
}

void Slide::reopen() {}

void Slide::read_openslide_level(int64_t, int64_t, int, int64_t, int64_t, uint8_t*) {
  throw Error(str("slide '", path_, "': pathvlm was built without OpenSlide"));
}

#endif

}  // namespace pathvlm::wsi
