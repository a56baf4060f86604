// DICOM Part 10 files as whole-slide images are stored (explicit VR little endian data sets): the data set as a
// tree of elements, and where each frame of the pixel data lies, found without reading the pixels.
//
//   dicom::File f = dicom::read("level0.dcm");                       // throws pathvlm::Error naming the file
//   auto series = f.data.string(dicom::tag(0x0020, 0x000E));          // SeriesInstanceUID
//   dicom::Frames frames(f, f.data.number(dicom::tag(0x0028, 0x0008)).value_or(1), 256 * 256 * 3);
//   std::vector<uint8_t> jpeg = frames.read(17);                      // frame 17 (0-based): its bytes
//
// Damage (a length past the end of the file, an element where an item belongs, sequences nested too deep, an
// implicit-VR or big-endian data set) is an Error naming the file and the byte offset.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace pathvlm::dicom {

constexpr uint32_t tag(uint16_t group, uint16_t element) { return uint32_t{group} << 16 | element; }

// What a VR's values are: text, whole numbers (IS and the binary integers), decimals (DS, FL, FD), or other (binary
// data, sequences). DataSet::number reads integers and decimals, DataSet::string text and IS / DS.
enum class ValueKind { Text, Integer, Decimal, Other };
ValueKind value_kind(const char* vr);

struct DataSet;

struct Element {
  uint32_t tag = 0;
  char vr[2] = {0, 0};
  std::string value;           // the raw bytes (little endian); values over 1 MiB (ICC profiles) are not kept
  std::vector<DataSet> items;  // a sequence's items
};

struct DataSet {
  std::vector<Element> elements;  // in file order

  const Element* find(uint32_t tag) const;
  // Value `index` of a string element, split at '\' with blanks and NULs trimmed; nullopt when absent.
  std::optional<std::string> string(uint32_t tag, size_t index = 0) const;
  // Value `index` of a number: binary (US, SS, UL, SL, UV, SV, FL, FD) or text (IS, DS); nullopt when absent or
  // not a number.
  std::optional<double> number(uint32_t tag, size_t index = 0) const;
  // How many values the element holds (0 when absent).
  size_t count(uint32_t tag) const;
  // Item `index` of a sequence; nullptr when absent.
  const DataSet* item(uint32_t tag, size_t index = 0) const;
};

// The bytes of one fragment of encapsulated pixel data.
struct Fragment {
  uint64_t item = 0;    // where its item header starts (what offset tables point at)
  uint64_t offset = 0;  // its first byte
  uint64_t length = 0;
};

struct File {
  std::string path;
  uint64_t size = 0;
  std::string transfer_syntax;  // (0002,0010)
  DataSet meta;                 // group 0002
  DataSet data;
  bool has_pixel_data = false;
  bool encapsulated = false;                    // compressed frames in fragments
  uint64_t pixel_offset = 0, pixel_length = 0;  // native (uncompressed) pixel data
  std::vector<uint64_t> offset_table;           // the basic (or extended) offset table; may be empty
  std::vector<Fragment> fragments;
};

constexpr uint32_t kPixelDataTag = tag(0x7FE0, 0x0010);

// "DICM" at byte 128.
bool is_dicom(const std::string& path);

// The file's data sets, their top-level elements up to `last_tag` (elements come in tag order, so a small
// `last_tag` reads only the start of the header: enough to tell a file's series and image type). When the pixel
// data is within reach, encapsulated pixel data is listed fragment by fragment (one small read each).
File read(const std::string& path, uint32_t last_tag = kPixelDataTag);

// The frames of a file's pixel data, opened for reading.
class Frames {
 public:
  // `count` frames; native pixel data holds `native_frame_bytes` per frame. Encapsulated fragments are assigned to
  // frames by the offset table, else one per frame, else all to a single frame; otherwise an Error.
  Frames(const File& file, int64_t count, uint64_t native_frame_bytes);
  ~Frames();
  Frames(const Frames&) = delete;
  Frames& operator=(const Frames&) = delete;

  int64_t count() const { return static_cast<int64_t>(first_.size()) - 1; }
  // Frame `index`'s bytes (its fragments joined); an Error naming the file and the frame when they cannot be read.
  std::vector<uint8_t> read(int64_t index) const;

 private:
  std::string path_;
  int fd_ = -1;
  std::vector<Fragment> pieces_;
  std::vector<size_t> first_;  // frame i is pieces_[first_[i] .. first_[i + 1])
};

}  // namespace pathvlm::dicom
