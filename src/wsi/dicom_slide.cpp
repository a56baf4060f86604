// DICOM whole-slide images: see dicom_slide.h.
#include "wsi/dicom_slide.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

#include "core/error.h"
#include "data/image.h"
#include "io/dicom.h"

namespace pathvlm::wsi {
namespace fs = std::filesystem;
using dicom::tag;

namespace {

constexpr const char* kWholeSlideClass = "1.2.840.10008.5.1.4.1.1.77.1.6";
constexpr const char* kExplicitLittleEndian = "1.2.840.10008.1.2.1";
constexpr const char* kJpegBaseline = "1.2.840.10008.1.2.4.50";
constexpr const char* kJpeg2000Lossless = "1.2.840.10008.1.2.4.90";
constexpr const char* kJpeg2000 = "1.2.840.10008.1.2.4.91";
// 16M tiles: a 1,000,000-pixel-square level in 256-pixel tiles, 200 MB of tile table; a damaged size claims more.
constexpr int64_t kMaxTiles = int64_t{1} << 24;

constexpr uint32_t kMediaStorageSopClass = tag(0x0002, 0x0002), kImageType = tag(0x0008, 0x0008),
                   kSopClass = tag(0x0008, 0x0016), kSopInstance = tag(0x0008, 0x0018), kSeries = tag(0x0020, 0x000E),
                   kConcatenation = tag(0x0020, 0x9161), kInConcatenationNumber = tag(0x0020, 0x9162),
                   kInConcatenationTotal = tag(0x0020, 0x9163), kConcatenationFrameOffset = tag(0x0020, 0x9228),
                   kDimensionOrganization = tag(0x0020, 0x9311), kSamplesPerPixel = tag(0x0028, 0x0002),
                   kPhotometric = tag(0x0028, 0x0004), kPlanarConfiguration = tag(0x0028, 0x0006),
                   kNumberOfFrames = tag(0x0028, 0x0008), kRows = tag(0x0028, 0x0010), kColumns = tag(0x0028, 0x0011),
                   kPixelSpacing = tag(0x0028, 0x0030), kBitsAllocated = tag(0x0028, 0x0100),
                   kBitsStored = tag(0x0028, 0x0101), kHighBit = tag(0x0028, 0x0102),
                   kPixelRepresentation = tag(0x0028, 0x0103), kPixelMeasures = tag(0x0028, 0x9110),
                   kTotalColumns = tag(0x0048, 0x0006), kTotalRows = tag(0x0048, 0x0007),
                   kOpticalPaths = tag(0x0048, 0x0105), kObjectiveLensPower = tag(0x0048, 0x0112),
                   kFocalPlanes = tag(0x0048, 0x0303), kPlanePosition = tag(0x0048, 0x021A),
                   kColumnPosition = tag(0x0048, 0x021E), kRowPosition = tag(0x0048, 0x021F),
                   kSharedGroups = tag(0x5200, 0x9229), kPerFrameGroups = tag(0x5200, 0x9230);

// Attributes shown as dicom.<Keyword> properties (OpenSlide shows every attribute its dictionary knows; patient
// attributes are left out here so they do not travel into outputs).
const std::map<uint32_t, const char*>& keywords() {
  static const std::map<uint32_t, const char*> table = {
      {tag(0x0002, 0x0002), "MediaStorageSOPClassUID"},
      {tag(0x0002, 0x0003), "MediaStorageSOPInstanceUID"},
      {tag(0x0002, 0x0010), "TransferSyntaxUID"},
      {tag(0x0002, 0x0012), "ImplementationClassUID"},
      {tag(0x0002, 0x0013), "ImplementationVersionName"},
      {tag(0x0008, 0x0008), "ImageType"},
      {tag(0x0008, 0x0016), "SOPClassUID"},
      {tag(0x0008, 0x0018), "SOPInstanceUID"},
      {tag(0x0008, 0x0020), "StudyDate"},
      {tag(0x0008, 0x0023), "ContentDate"},
      {tag(0x0008, 0x002A), "AcquisitionDateTime"},
      {tag(0x0008, 0x0033), "ContentTime"},
      {tag(0x0008, 0x0060), "Modality"},
      {tag(0x0008, 0x0070), "Manufacturer"},
      {tag(0x0008, 0x1090), "ManufacturerModelName"},
      {tag(0x0018, 0x1000), "DeviceSerialNumber"},
      {tag(0x0018, 0x1020), "SoftwareVersions"},
      {tag(0x0020, 0x000D), "StudyInstanceUID"},
      {tag(0x0020, 0x000E), "SeriesInstanceUID"},
      {tag(0x0020, 0x0013), "InstanceNumber"},
      {tag(0x0020, 0x0052), "FrameOfReferenceUID"},
      {tag(0x0020, 0x9161), "ConcatenationUID"},
      {tag(0x0020, 0x9162), "InConcatenationNumber"},
      {tag(0x0020, 0x9163), "InConcatenationTotalNumber"},
      {tag(0x0020, 0x9228), "ConcatenationFrameOffsetNumber"},
      {tag(0x0020, 0x9311), "DimensionOrganizationType"},
      {tag(0x0028, 0x0002), "SamplesPerPixel"},
      {tag(0x0028, 0x0004), "PhotometricInterpretation"},
      {tag(0x0028, 0x0006), "PlanarConfiguration"},
      {tag(0x0028, 0x0008), "NumberOfFrames"},
      {tag(0x0028, 0x0010), "Rows"},
      {tag(0x0028, 0x0011), "Columns"},
      {tag(0x0028, 0x0030), "PixelSpacing"},
      {tag(0x0028, 0x0100), "BitsAllocated"},
      {tag(0x0028, 0x0101), "BitsStored"},
      {tag(0x0028, 0x0102), "HighBit"},
      {tag(0x0028, 0x0103), "PixelRepresentation"},
      {tag(0x0028, 0x2110), "LossyImageCompression"},
      {tag(0x0028, 0x2112), "LossyImageCompressionRatio"},
      {tag(0x0028, 0x2114), "LossyImageCompressionMethod"},
      {tag(0x0028, 0x9110), "PixelMeasuresSequence"},
      {tag(0x0018, 0x0050), "SliceThickness"},
      {tag(0x0040, 0x0512), "ContainerIdentifier"},
      {tag(0x0048, 0x0001), "ImagedVolumeWidth"},
      {tag(0x0048, 0x0002), "ImagedVolumeHeight"},
      {tag(0x0048, 0x0003), "ImagedVolumeDepth"},
      {tag(0x0048, 0x0006), "TotalPixelMatrixColumns"},
      {tag(0x0048, 0x0007), "TotalPixelMatrixRows"},
      {tag(0x0048, 0x0105), "OpticalPathSequence"},
      {tag(0x0048, 0x0106), "OpticalPathIdentifier"},
      {tag(0x0048, 0x0112), "ObjectiveLensPower"},
      {tag(0x0048, 0x0302), "NumberOfOpticalPaths"},
      {tag(0x0048, 0x0303), "TotalPixelMatrixFocalPlanes"},
      {tag(0x2200, 0x0005), "BarcodeValue"},
      {tag(0x5200, 0x9229), "SharedFunctionalGroupsSequence"},
  };
  return table;
}

std::string format_number(double v) {
  char text[64];
  const auto result = std::to_chars(text, text + sizeof(text), v);
  return std::string(text, result.ptr);
}

// dicom.<Keyword>, dicom.<Keyword>[i] for multiple values, dicom.<Sequence>[i].<Keyword> inside sequences.
void add_properties(const dicom::DataSet& set, const std::string& prefix, std::map<std::string, std::string>& out) {
  for (const dicom::Element& e : set.elements) {
    const auto keyword = keywords().find(e.tag);
    if (keyword == keywords().end()) continue;
    const std::string name = prefix + "." + keyword->second;
    if (e.vr[0] == 'S' && e.vr[1] == 'Q') {
      for (size_t i = 0; i < e.items.size(); ++i) add_properties(e.items[i], str(name, "[", i, "]"), out);
      continue;
    }
    const dicom::ValueKind kind = dicom::value_kind(e.vr);
    const size_t n = set.count(e.tag);
    for (size_t i = 0; i < n; ++i) {
      std::optional<std::string> value;
      if (kind == dicom::ValueKind::Integer || kind == dicom::ValueKind::Decimal) {
        if (const auto v = set.number(e.tag, i))
          value = kind == dicom::ValueKind::Integer ? str(static_cast<int64_t>(*v)) : format_number(*v);
      } else {
        value = set.string(e.tag, i);
      }
      if (value) out[n == 1 ? name : str(name, "[", i, "]")] = *value;
    }
  }
}

std::string sop_class(const dicom::File& f) {
  return f.meta.string(kMediaStorageSopClass).value_or(f.data.string(kSopClass).value_or(""));
}

DicomImageInfo read_image_info(const std::string& path) {
  const dicom::File f = dicom::read(path, kSeries);
  const std::string sop = sop_class(f);
  PATHVLM_CHECK(sop == kWholeSlideClass, "DICOM file '", path, "': not a whole-slide image (SOP class '", sop,
                "', VL Whole Slide Microscopy is ", kWholeSlideClass, ")");
  DicomImageInfo info;
  info.series = f.data.string(kSeries).value_or("");
  PATHVLM_CHECK(!info.series.empty(), "DICOM file '", path, "': no SeriesInstanceUID (0020,000E)");
  info.flavor = f.data.string(kImageType, 2).value_or("");
  PATHVLM_CHECK(!info.flavor.empty(), "DICOM file '", path,
                "': no image flavour (ImageType (0008,0008) needs a third value: VOLUME, LABEL, OVERVIEW, ...)");
  return info;
}

}  // namespace

// Read once per file and process while the file keeps its size and time: opening a slide looks at every file of its
// folder, and a batch opens every slide of a folder.
DicomImageInfo dicom_image_info(const std::string& path) {
  struct Seen {
    uintmax_t size;
    fs::file_time_type time;
    DicomImageInfo info;
    std::string error;
  };
  static std::mutex mutex;
  static std::map<std::string, Seen> seen;
  std::error_code size_ec, time_ec;
  Seen now{fs::file_size(path, size_ec), fs::last_write_time(path, time_ec), {}, {}};
  const bool stated = !size_ec && !time_ec;
  if (stated) {
    std::lock_guard<std::mutex> lock(mutex);
    const auto it = seen.find(path);
    if (it != seen.end() && it->second.size == now.size && it->second.time == now.time) now = it->second;
  }
  if (now.info.series.empty() && now.error.empty()) {
    try {
      now.info = read_image_info(path);
    } catch (const Error& e) {
      now.error = e.what();
    }
    if (stated) {
      std::lock_guard<std::mutex> lock(mutex);
      seen[path] = now;
    }
  }
  if (!now.error.empty()) throw Error(now.error);
  return now.info;
}

// One file of a level: its frames and how they decode.
struct LevelFile {
  enum class Codec { Raw, Jpeg, Jpeg2000 };
  dicom::File file;
  std::unique_ptr<dicom::Frames> frames;
  Codec codec = Codec::Raw;
  data::JpegColorSpace colors = data::JpegColorSpace::Auto;
};

struct DicomSlide::StoredLevel {
  int64_t width = 0, height = 0, tile_width = 0, tile_height = 0, across = 0, down = 0;
  std::vector<std::unique_ptr<LevelFile>> files;  // by InConcatenationNumber
  std::vector<int32_t> tile_file;                 // per tile, row-major: index into files; -1: no frame
  std::vector<int64_t> tile_frame;                // per tile: the frame in that file

  // Places each frame of the files on its tile.
  void map_tiles(const std::string& slide);
};

namespace {

int64_t required_integer(const dicom::File& f, uint32_t t, const char* name, int64_t lo, int64_t hi) {
  const auto v = f.data.number(t);
  PATHVLM_CHECK(v.has_value(), "DICOM file '", f.path, "': no ", name);
  PATHVLM_CHECK(*v == std::floor(*v) && *v >= static_cast<double>(lo) && *v <= static_cast<double>(hi), "DICOM file '",
                f.path, "': ", name, " is ", *v, " (expected ", lo, "..", hi, ")");
  return static_cast<int64_t>(*v);
}

void check_value(const dicom::File& f, uint32_t t, const char* name, double expected, bool required) {
  const auto v = f.data.number(t);
  PATHVLM_CHECK(v.has_value() || !required, "DICOM file '", f.path, "': no ", name);
  PATHVLM_CHECK(!v || *v == expected, "DICOM file '", f.path, "': ", name, " is ", *v, "; only ", expected,
                " is read (8-bit RGB, one focal plane)");
}

// The pixel encoding of a level file, checked as OpenSlide checks it.
void check_pixels(const dicom::File& f, LevelFile& out) {
  using Codec = LevelFile::Codec;
  const std::string& syntax = f.transfer_syntax;
  const std::string where = str("DICOM file '", f.path, "'");
  const bool jpeg2000 = syntax == kJpeg2000Lossless || syntax == kJpeg2000;
  PATHVLM_CHECK(syntax == kExplicitLittleEndian || syntax == kJpegBaseline || jpeg2000, where, ": transfer syntax ",
                syntax, " is not read (JPEG baseline ", kJpegBaseline, ", JPEG 2000 ", kJpeg2000Lossless, " and ",
                kJpeg2000, ", uncompressed ", kExplicitLittleEndian, " are)");
  PATHVLM_CHECK(!jpeg2000 || data::jpeg2000_built_in(), where, ": JPEG 2000 frames (transfer syntax ", syntax,
                "), and this build has no OpenJPEG to read them (install libopenjp2-7-dev and build again)");
  out.codec = syntax == kJpegBaseline ? Codec::Jpeg : jpeg2000 ? Codec::Jpeg2000 : Codec::Raw;
  check_value(f, kPlanarConfiguration, "PlanarConfiguration", 0, false);
  check_value(f, kBitsAllocated, "BitsAllocated", 8, true);
  check_value(f, kBitsStored, "BitsStored", 8, true);
  check_value(f, kHighBit, "HighBit", 7, true);
  check_value(f, kSamplesPerPixel, "SamplesPerPixel", 3, true);
  check_value(f, kPixelRepresentation, "PixelRepresentation", 0, true);
  check_value(f, kFocalPlanes, "TotalPixelMatrixFocalPlanes", 1, false);
  // JPEG 2000's colour transforms (ICT lossy, RCT lossless) are undone by the decoder.
  const std::string photometric = f.data.string(kPhotometric).value_or("");
  const char* readable = out.codec == Codec::Jpeg       ? "YBR_FULL_422 or RGB"
                         : syntax == kJpeg2000Lossless  ? "YBR_RCT or RGB"
                         : out.codec == Codec::Jpeg2000 ? "YBR_ICT, YBR_RCT or RGB"
                                                        : "RGB";
  const bool ok = photometric == "RGB" || (out.codec == Codec::Jpeg && photometric == "YBR_FULL_422") ||
                  (out.codec == Codec::Jpeg2000 && photometric == "YBR_RCT") ||
                  (syntax == kJpeg2000 && photometric == "YBR_ICT");
  PATHVLM_CHECK(ok, where, ": PhotometricInterpretation '", photometric, "' is not read with transfer syntax ", syntax,
                " (", readable, ")");
  if (out.codec == Codec::Jpeg)
    out.colors = photometric == "RGB" ? data::JpegColorSpace::Rgb : data::JpegColorSpace::YCbCr;
}

}  // namespace

void DicomSlide::StoredLevel::map_tiles(const std::string& slide) {
  const size_t tiles = static_cast<size_t>(across * down);
  tile_file.assign(tiles, -1);
  tile_frame.assign(tiles, 0);
  int64_t frames_before = 0;
  for (size_t j = 0; j < files.size(); ++j) {
    const dicom::File& f = files[j]->file;
    const int64_t frames = files[j]->frames->count();
    const bool full = f.data.string(kDimensionOrganization).value_or("") == "TILED_FULL";
    if (full) {
      const int64_t offset =
          f.data.number(kConcatenationFrameOffset).has_value()
              ? required_integer(f, kConcatenationFrameOffset, "ConcatenationFrameOffsetNumber", 0, int64_t{1} << 40)
              : frames_before;
      // Frames run along rows of tiles, then down; further focal planes or optical paths follow and are not read.
      for (int64_t k = 0; k < frames && offset + k < static_cast<int64_t>(tiles); ++k) {
        const size_t at = static_cast<size_t>(offset + k);
        if (tile_file[at] < 0) tile_file[at] = static_cast<int32_t>(j), tile_frame[at] = k;
      }
    } else {
      for (int64_t k = 0; k < frames; ++k) {
        const dicom::DataSet* frame = f.data.item(kPerFrameGroups, static_cast<size_t>(k));
        const dicom::DataSet* position = frame ? frame->item(kPlanePosition) : nullptr;
        const auto column = position ? position->number(kColumnPosition) : std::nullopt;
        const auto row = position ? position->number(kRowPosition) : std::nullopt;
        PATHVLM_CHECK(column && row, "slide '", slide, "': DICOM file '", f.path, "' (TILED_SPARSE) gives frame ", k,
                      " no position (PerFrameFunctionalGroupsSequence > PlanePositionSlideSequence)");
        const int64_t x = static_cast<int64_t>(*column) - 1, y = static_cast<int64_t>(*row) - 1;
        PATHVLM_CHECK(x >= 0 && y >= 0 && x < width && y < height && x % tile_width == 0 && y % tile_height == 0,
                      "slide '", slide, "': DICOM file '", f.path, "' places frame ", k, " at column ", *column,
                      " row ", *row, ", not the corner of a ", tile_width, "x", tile_height, " tile of its ", width,
                      "x", height, " pixels");
        const size_t at = static_cast<size_t>((y / tile_height) * across + x / tile_width);
        if (tile_file[at] < 0) tile_file[at] = static_cast<int32_t>(j), tile_frame[at] = k;
      }
    }
    frames_before += frames;
  }
}

DicomSlide::~DicomSlide() = default;

std::unique_ptr<DicomSlide> DicomSlide::open(const std::string& path) {
  const DicomImageInfo start = dicom_image_info(path);
  // The other files of the series are in the same folder; any file may be the one named. Its levels are the files of
  // flavour VOLUME (not labels, overviews, thumbnails).
  std::vector<std::string> volumes;
  if (start.flavor == "VOLUME") volumes.push_back(path);
  const fs::path folder = fs::path(path).parent_path().empty() ? fs::path(".") : fs::path(path).parent_path();
  std::error_code ec;
  std::vector<std::string> others;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code type_ec;
    if (!it->is_regular_file(type_ec) || fs::equivalent(it->path(), path, type_ec)) continue;
    others.push_back(it->path().string());
  }
  PATHVLM_CHECK(!ec, "slide '", path, "': cannot list its folder for the other files of its series: ", ec.message());
  std::sort(others.begin(), others.end());
  for (const std::string& other : others) {
    if (!dicom::is_dicom(other)) continue;
    try {
      const DicomImageInfo info = dicom_image_info(other);
      if (info.series == start.series && info.flavor == "VOLUME") volumes.push_back(other);
    } catch (const Error&) {
      // Another kind of DICOM file, or a damaged one of another series: not part of this slide.
    }
  }

  auto slide = std::unique_ptr<DicomSlide>(new DicomSlide());
  slide->path_ = path;
  std::set<std::string> instances;
  std::map<std::pair<int64_t, int64_t>, std::map<int64_t, std::unique_ptr<LevelFile>>> by_size;
  for (const std::string& p : volumes) {
    auto file = std::make_unique<LevelFile>();
    file->file = dicom::read(p);
    const dicom::File& f = file->file;
    const std::string instance = f.data.string(kSopInstance).value_or("");
    PATHVLM_CHECK(!instance.empty(), "DICOM file '", p, "': no SOPInstanceUID");
    if (!instances.insert(instance).second) continue;  // a copy of a file already read
    check_pixels(f, *file);
    const int64_t width = required_integer(f, kTotalColumns, "TotalPixelMatrixColumns", 1, UINT32_MAX);
    const int64_t height = required_integer(f, kTotalRows, "TotalPixelMatrixRows", 1, UINT32_MAX);
    const int64_t tile_width = required_integer(f, kColumns, "Columns", 1, UINT16_MAX);
    const int64_t tile_height = required_integer(f, kRows, "Rows", 1, UINT16_MAX);
    const int64_t frames = f.data.number(kNumberOfFrames).has_value()
                               ? required_integer(f, kNumberOfFrames, "NumberOfFrames", 1, INT32_MAX)
                               : 1;
    const int64_t part = f.data.number(kInConcatenationNumber).has_value()
                             ? required_integer(f, kInConcatenationNumber, "InConcatenationNumber", 1, UINT16_MAX)
                             : 1;
    file->frames = std::make_unique<dicom::Frames>(f, frames, static_cast<uint64_t>(tile_width * tile_height * 3));
    auto& level = by_size[{width, height}];
    PATHVLM_CHECK(!level.count(part), "slide '", path, "': two files are part ", part, " of the ", width, "x", height,
                  " level ('", level.count(part) ? level[part]->file.path : "", "' and '", p, "')");
    if (!level.empty()) {
      const dicom::File& first = level.begin()->second->file;
      const std::string a = first.data.string(kConcatenation).value_or(""),
                        b = f.data.string(kConcatenation).value_or("");
      PATHVLM_CHECK(!a.empty() && a == b, "slide '", path, "': '", first.path, "' and '", p, "' are both ", width, "x",
                    height, " but not parts of one concatenation (ConcatenationUID '", a, "' and '", b, "')");
      PATHVLM_CHECK(
          first.data.number(kColumns) == f.data.number(kColumns) && first.data.number(kRows) == f.data.number(kRows),
          "slide '", path, "': '", p, "' has other tiles than '", first.path, "' of the same level");
    }
    level[part] = std::move(file);
  }
  PATHVLM_CHECK(!by_size.empty(), "slide '", path, "': no pyramid level (no file of series ", start.series,
                " has the image flavour VOLUME)");

  for (auto& [size, parts] : by_size) {
    auto l = std::make_unique<StoredLevel>();
    l->width = size.first, l->height = size.second;
    const dicom::File& first = parts.begin()->second->file;
    l->tile_width = static_cast<int64_t>(*first.data.number(kColumns));
    l->tile_height = static_cast<int64_t>(*first.data.number(kRows));
    l->across = (l->width + l->tile_width - 1) / l->tile_width;
    l->down = (l->height + l->tile_height - 1) / l->tile_height;
    PATHVLM_CHECK(l->across * l->down <= kMaxTiles, "slide '", path, "': its ", l->width, "x", l->height, " level has ",
                  l->across * l->down, " tiles of ", l->tile_width, "x", l->tile_height, ", more than the ", kMaxTiles,
                  " a level may have");
    const auto expected =
        static_cast<int64_t>(first.data.number(kInConcatenationTotal).value_or(static_cast<double>(parts.size())));
    PATHVLM_CHECK(
        parts.rbegin()->first == static_cast<int64_t>(parts.size()) && expected == static_cast<int64_t>(parts.size()),
        "slide '", path, "': the ", l->width, "x", l->height, " level has ", parts.size(), " of its ",
        std::max<int64_t>(expected, parts.rbegin()->first),
        " concatenation parts in the folder (a file of the series is missing)");
    PATHVLM_CHECK(parts.size() > 1 || !first.data.string(kConcatenation), "slide '", path, "': '", first.path,
                  "' is one part of a concatenation whose other parts are missing");
    for (auto& [part, file] : parts) l->files.push_back(std::move(file));
    l->map_tiles(path);
    slide->stored_.push_back(std::move(l));
  }
  std::sort(slide->stored_.begin(), slide->stored_.end(),
            [](const auto& a, const auto& b) { return a->width > b->width; });

  auto& props = slide->properties_;
  const StoredLevel& base = *slide->stored_.front();
  for (size_t i = 0; i < slide->stored_.size(); ++i) {
    const StoredLevel& s = *slide->stored_[i];
    Level level;
    level.width = s.width, level.height = s.height;
    // As OpenSlide computes a level's downsample when the format does not state it.
    level.downsample = (static_cast<double>(base.width) / static_cast<double>(s.width) +
                        static_cast<double>(base.height) / static_cast<double>(s.height)) /
                       2;
    slide->levels_.push_back(level);
    const std::string prefix = str("openslide.level[", i, "].");
    props[prefix + "width"] = str(s.width);
    props[prefix + "height"] = str(s.height);
    props[prefix + "downsample"] = format_number(level.downsample);
    props[prefix + "tile-width"] = str(s.tile_width);
    props[prefix + "tile-height"] = str(s.tile_height);
  }
  props["openslide.level-count"] = str(slide->levels_.size());
  props["openslide.vendor"] = "dicom";
  const dicom::File& f0 = base.files.front()->file;
  add_properties(f0.meta, "dicom", props);
  add_properties(f0.data, "dicom", props);
  if (const dicom::DataSet* shared = f0.data.item(kSharedGroups)) {
    if (const dicom::DataSet* measures = shared->item(kPixelMeasures)) {
      // PixelSpacing is in mm, row spacing first.
      if (const auto y = measures->number(kPixelSpacing, 0)) props["openslide.mpp-y"] = format_number(*y * 1000);
      if (const auto x = measures->number(kPixelSpacing, 1)) props["openslide.mpp-x"] = format_number(*x * 1000);
    }
  }
  if (const dicom::DataSet* optical = f0.data.item(kOpticalPaths)) {
    if (const auto power = optical->number(kObjectiveLensPower))
      props["openslide.objective-power"] = format_number(*power);
  }
  return slide;
}

const uint8_t* DicomSlide::tile(int level, int64_t column, int64_t row) {
  const StoredLevel& l = *stored_[static_cast<size_t>(level)];
  const size_t index = static_cast<size_t>(row * l.across + column);
  if (l.tile_file[index] < 0) return nullptr;
  const TileKey key = static_cast<TileKey>(level) << 48 | index;
  if (auto hit = cache_.find(key); hit != cache_.end()) {
    recency_.splice(recency_.end(), recency_, hit->second.position);
    return hit->second.rgb.data();
  }
  const LevelFile& file = *l.files[static_cast<size_t>(l.tile_file[index])];
  const int64_t frame = l.tile_frame[index];
  const std::string what = str("slide '", path_, "': DICOM file '", file.file.path, "' frame ", frame);
  std::vector<uint8_t> bytes = file.frames->read(frame);
  const size_t tile_bytes = static_cast<size_t>(l.tile_width * l.tile_height * 3);
  std::vector<uint8_t> rgb;
  if (file.codec != LevelFile::Codec::Raw) {
    const torch::Tensor decoded = file.codec == LevelFile::Codec::Jpeg
                                      ? data::decode_jpeg(bytes.data(), bytes.size(), what, file.colors)
                                      : data::decode_jpeg2000(bytes.data(), bytes.size(), what);
    PATHVLM_CHECK(decoded.size(0) == l.tile_height && decoded.size(1) == l.tile_width, what, ": a ", decoded.size(1),
                  "x", decoded.size(0), " image where the level's tiles are ", l.tile_width, "x", l.tile_height);
    const uint8_t* p = decoded.data_ptr<uint8_t>();
    rgb.assign(p, p + tile_bytes);
  } else {
    rgb = std::move(bytes);
    rgb.resize(tile_bytes);  // Frames read exactly one frame of native pixels
  }
  while (!recency_.empty() && cache_bytes_ + tile_bytes > kCacheBytes) {
    cache_bytes_ -= cache_[recency_.front()].rgb.size();
    cache_.erase(recency_.front());
    recency_.pop_front();
  }
  recency_.push_back(key);
  cache_bytes_ += tile_bytes;
  Cached& entry = cache_[key];
  entry.rgb = std::move(rgb);
  entry.position = std::prev(recency_.end());
  return entry.rgb.data();
}

void DicomSlide::read_region(int64_t x, int64_t y, int level, int64_t w, int64_t h, uint8_t* rgb) {
  const StoredLevel& l = *stored_[static_cast<size_t>(level)];
  const double downsample = levels_[static_cast<size_t>(level)].downsample;
  const int64_t left = level == 0 ? x : std::llround(static_cast<double>(x) / downsample);
  const int64_t top = level == 0 ? y : std::llround(static_cast<double>(y) / downsample);
  std::memset(rgb, 255, static_cast<size_t>(w * h * 3));
  const int64_t x0 = std::max<int64_t>(left, 0), x1 = std::min(left + w, l.width);
  const int64_t y0 = std::max<int64_t>(top, 0), y1 = std::min(top + h, l.height);
  if (x0 >= x1 || y0 >= y1) return;
  for (int64_t row = y0 / l.tile_height; row <= (y1 - 1) / l.tile_height; ++row) {
    for (int64_t column = x0 / l.tile_width; column <= (x1 - 1) / l.tile_width; ++column) {
      const uint8_t* pixels = tile(level, column, row);
      if (!pixels) continue;
      const int64_t tx = column * l.tile_width, ty = row * l.tile_height;
      const int64_t cx0 = std::max(x0, tx), cx1 = std::min(x1, tx + l.tile_width);
      const int64_t cy0 = std::max(y0, ty), cy1 = std::min(y1, ty + l.tile_height);
      for (int64_t yy = cy0; yy < cy1; ++yy) {
        std::memcpy(rgb + ((yy - top) * w + (cx0 - left)) * 3, pixels + ((yy - ty) * l.tile_width + (cx0 - tx)) * 3,
                    static_cast<size_t>((cx1 - cx0) * 3));
      }
    }
  }
}

}  // namespace pathvlm::wsi
