#include "io/dicom.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace pathvlm::dicom {
namespace {

constexpr uint32_t kItem = tag(0xFFFE, 0xE000), kItemEnd = tag(0xFFFE, 0xE00D), kSequenceEnd = tag(0xFFFE, 0xE0DD);
constexpr uint32_t kExtendedOffsetTable = tag(0x7FE0, 0x0001);
constexpr uint32_t kTransferSyntax = tag(0x0002, 0x0010);
constexpr uint32_t kUndefinedLength = 0xFFFFFFFF;
constexpr uint64_t kPreamble = 132;  // 128 bytes, then "DICM"
constexpr size_t kMaxKeptValue = size_t{1} << 20;
constexpr int kMaxDepth = 16;
constexpr uint64_t kMaxFrameBytes = uint64_t{1} << 30;

uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | p[1] << 8); }
uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
uint64_t le64(const uint8_t* p) { return uint64_t{le32(p)} | uint64_t{le32(p + 4)} << 32; }

std::string tag_name(uint32_t t) {
  char name[16];
  std::snprintf(name, sizeof(name), "(%04X,%04X)", t >> 16, t & 0xFFFF);
  return name;
}

bool vr_is(const char* vr, const char* name) { return vr[0] == name[0] && vr[1] == name[1]; }

// VRs whose length takes 4 bytes after 2 reserved ones (PS3.5 7.1.2).
bool long_length_vr(const char* vr) {
  for (const char* v : {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
    if (vr_is(vr, v)) return true;
  return false;
}

bool string_vr(const char* vr) {
  for (const char* v :
       {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"})
    if (vr_is(vr, v)) return true;
  return false;
}

// Bytes per value of a binary numeric VR; 0 for others.
size_t binary_number_size(const char* vr) {
  if (vr_is(vr, "US") || vr_is(vr, "SS")) return 2;
  if (vr_is(vr, "UL") || vr_is(vr, "SL") || vr_is(vr, "FL")) return 4;
  if (vr_is(vr, "UV") || vr_is(vr, "SV") || vr_is(vr, "FD")) return 8;
  return 0;
}

// All of n bytes at offset; false when the file ends first or the read fails.
bool pread_all(int fd, uint64_t offset, uint8_t* out, size_t n) {
  while (n > 0) {
    const ssize_t got = ::pread(fd, out, n, static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return false;
    out += got, offset += static_cast<uint64_t>(got), n -= static_cast<size_t>(got);
  }
  return true;
}

int open_or_throw(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  PATHVLM_CHECK(fd >= 0, "DICOM file '", path, "': cannot open it (", std::strerror(errno), ")");
  return fd;
}

// Parses a file's data sets through a read window, so the many small elements of a header cost few system calls.
class Parser {
 public:
  Parser(File& file, uint32_t last_tag) : f_(file), last_tag_(last_tag) {
    fd_ = open_or_throw(file.path);
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      ::close(fd_);
      throw Error(str("DICOM file '", file.path, "': cannot inspect it (", std::strerror(errno), ")"));
    }
    f_.size = static_cast<uint64_t>(st.st_size);
  }
  ~Parser() { ::close(fd_); }
  Parser(const Parser&) = delete;
  Parser& operator=(const Parser&) = delete;

  void run() {
    uint8_t magic[4];
    if (f_.size < kPreamble || !read_raw(128, magic, 4) || std::memcmp(magic, "DICM", 4) != 0)
      throw Error(str("DICOM file '", f_.path, "': not a DICOM file (no 'DICM' after the 128-byte preamble)"));
    uint64_t pos = parse_set(f_.meta, kPreamble, f_.size, Mode::Meta, 0);
    f_.transfer_syntax = f_.meta.string(kTransferSyntax).value_or("");
    PATHVLM_CHECK(!f_.transfer_syntax.empty(), "DICOM file '", f_.path,
                  "': no transfer syntax (0002,0010) in the file meta information");
    const char* unread = f_.transfer_syntax == "1.2.840.10008.1.2"        ? "implicit VR little endian"
                         : f_.transfer_syntax == "1.2.840.10008.1.2.2"    ? "explicit VR big endian"
                         : f_.transfer_syntax == "1.2.840.10008.1.2.1.99" ? "deflated explicit VR little endian"
                                                                          : nullptr;
    PATHVLM_CHECK(!unread, "DICOM file '", f_.path, "': transfer syntax ", f_.transfer_syntax, " (", unread,
                  ") is not read; whole-slide images are stored with explicit VR little endian data sets");
    parse_set(f_.data, pos, f_.size, Mode::Top, 0);
  }

 private:
  enum class Mode { Meta, Top, Item, DelimitedItem };

  [[noreturn]] void fail(uint64_t at, const std::string& what) const {
    throw Error(str("DICOM file '", f_.path, "': ", what, " (byte ", at, ")"));
  }

  bool read_raw(uint64_t offset, uint8_t* out, size_t n) {
    if (offset > f_.size || n > f_.size - offset) return false;
    if (n == 0) return true;  // an empty value or offset table: nothing to copy (`out` may be null)
    if (offset >= window_at_ && offset + n <= window_at_ + window_.size()) {
      std::memcpy(out, window_.data() + (offset - window_at_), n);
      return true;
    }
    if (n > kWindow / 2) return pread_all(fd_, offset, out, n);
    // The first read is small: telling a file's series (read with a small last_tag) needs only its first elements.
    const size_t window = window_.empty() ? std::max(n, kFirstWindow) : kWindow;
    window_.resize(static_cast<size_t>(std::min<uint64_t>(window, f_.size - offset)));
    window_at_ = offset;
    if (!pread_all(fd_, offset, window_.data(), window_.size())) {
      window_.clear();
      return false;
    }
    std::memcpy(out, window_.data(), n);
    return true;
  }

  void read(uint64_t offset, uint8_t* out, size_t n, const char* what) {
    if (!read_raw(offset, out, n)) fail(offset, str(what, " cut short: the file ends at byte ", f_.size));
  }

  // The elements from `pos` up to `end` (or the item delimiter, or in Meta mode the first element of another
  // group); returns the position after them.
  uint64_t parse_set(DataSet& set, uint64_t pos, uint64_t end, Mode mode, int depth) {
    while (pos < end) {
      uint8_t h[12];
      read(pos, h, 8, "an element header");
      const uint32_t t = tag(le16(h), le16(h + 2));
      if (mode == Mode::Meta && (t >> 16) != 0x0002) return pos;
      if (t >> 16 == 0xFFFE) {
        if (t == kItemEnd && mode == Mode::DelimitedItem) return pos + 8;
        fail(pos, str("item tag ", tag_name(t), " where a data element belongs"));
      }
      const char vr[2] = {static_cast<char>(h[4]), static_cast<char>(h[5])};
      if (vr[0] < 'A' || vr[0] > 'Z' || vr[1] < 'A' || vr[1] > 'Z')
        fail(pos, str("element ", tag_name(t), " has no explicit VR (the data set is not explicit VR little endian)"));
      uint64_t length = le16(h + 6), header = 8;
      if (long_length_vr(vr)) {
        read(pos + 8, h + 8, 4, "an element header");
        length = le32(h + 8), header = 12;
      }
      const uint64_t start = pos;
      pos += header;
      if (mode == Mode::Top && t > last_tag_) return f_.size;
      if (mode == Mode::Top && t == kPixelDataTag) {
        pixel_data(set, pos, length);
        return f_.size;  // what follows the pixels (padding, signatures) is not read
      }
      Element element;
      element.tag = t, element.vr[0] = vr[0], element.vr[1] = vr[1];
      if (vr_is(vr, "SQ")) {
        if (depth >= kMaxDepth) fail(start, str("sequences nested more than ", kMaxDepth, " deep"));
        if (length == kUndefinedLength) {
          pos = parse_items(element.items, pos, end, true, depth + 1);
        } else {
          if (length > end - pos)
            fail(start, str("sequence ", tag_name(t), " of ", length, " bytes runs past its end"));
          parse_items(element.items, pos, pos + length, false, depth + 1);
          pos += length;
        }
      } else if (length == kUndefinedLength) {
        // A sequence a writer did not know (a private one, say), kept as UN: its items are implicit VR (PS3.5 6.2.2).
        if (!vr_is(vr, "UN"))
          fail(start, str("element ", tag_name(t), " of VR ", std::string(vr, 2), " has an undefined length"));
        pos = skip_implicit_items(pos, end, depth + 1);
        continue;
      } else {
        if (length > end - pos)
          fail(start, str("element ", tag_name(t), " of ", length, " bytes runs past the end of ",
                          end == f_.size ? "the file" : "its item"));
        if (length <= kMaxKeptValue) {
          element.value.resize(static_cast<size_t>(length));
          read(pos, reinterpret_cast<uint8_t*>(element.value.data()), element.value.size(), "an element value");
        }
        pos += length;
      }
      set.elements.push_back(std::move(element));
    }
    if (mode == Mode::DelimitedItem) fail(pos, "an item without its end (FFFE,E00D)");
    return pos;
  }

  // Items up to `end`, or up to the sequence delimiter when `delimited`; returns the position after them.
  uint64_t parse_items(std::vector<DataSet>& items, uint64_t pos, uint64_t end, bool delimited, int depth) {
    for (;;) {
      if (!delimited && pos == end) return pos;
      uint8_t h[8];
      if (end - pos < 8 && !delimited) fail(pos, "a sequence item header cut short");
      read(pos, h, 8, "a sequence");
      const uint32_t t = tag(le16(h), le16(h + 2));
      const uint32_t length = le32(h + 4);
      if (t == kSequenceEnd && delimited) return pos + 8;
      if (t != kItem) fail(pos, str("element ", tag_name(t), " where a sequence item belongs"));
      pos += 8;
      DataSet item;
      if (length == kUndefinedLength) {
        pos = parse_set(item, pos, end, Mode::DelimitedItem, depth);
      } else {
        if (length > end - pos) fail(pos - 8, str("sequence item of ", length, " bytes runs past its end"));
        parse_set(item, pos, pos + length, Mode::Item, depth);
        pos += length;
      }
      items.push_back(std::move(item));
    }
  }

  // Skips the items of an implicit-VR sequence up to its delimiter; returns the position after it.
  uint64_t skip_implicit_items(uint64_t pos, uint64_t end, int depth) {
    if (depth >= kMaxDepth) fail(pos, str("sequences nested more than ", kMaxDepth, " deep"));
    for (;;) {
      uint8_t h[8];
      read(pos, h, 8, "an implicit-VR sequence");
      const uint32_t t = tag(le16(h), le16(h + 2));
      const uint32_t length = le32(h + 4);
      pos += 8;
      if (t == kSequenceEnd) return pos;
      if (t != kItem) fail(pos - 8, str("element ", tag_name(t), " where an implicit-VR sequence item belongs"));
      if (length != kUndefinedLength) {
        if (length > end - pos) fail(pos - 8, str("sequence item of ", length, " bytes runs past its end"));
        pos += length;
        continue;
      }
      // An item of undefined length: its elements up to the item delimiter; undefined lengths are sequences.
      for (;;) {
        read(pos, h, 8, "an implicit-VR element header");
        const uint32_t inner = tag(le16(h), le16(h + 2));
        const uint32_t inner_length = le32(h + 4);
        pos += 8;
        if (inner == kItemEnd) break;
        if (inner_length == kUndefinedLength) {
          pos = skip_implicit_items(pos, end, depth + 1);
        } else {
          if (inner_length > end - pos)
            fail(pos - 8, str("element ", tag_name(inner), " of ", inner_length, " bytes runs past its end"));
          pos += inner_length;
        }
      }
    }
  }

  void pixel_data(const DataSet& set, uint64_t pos, uint64_t length) {
    f_.has_pixel_data = true;
    if (length != kUndefinedLength) {
      if (length > f_.size - pos)
        fail(pos, str("pixel data of ", length, " bytes cut short: the file ends at byte ", f_.size));
      f_.pixel_offset = pos, f_.pixel_length = length;
      return;
    }
    f_.encapsulated = true;
    uint8_t h[8];
    read(pos, h, 8, "the pixel data's offset table");
    if (tag(le16(h), le16(h + 2)) != kItem) fail(pos, "encapsulated pixel data without its offset table item");
    const uint32_t table_bytes = le32(h + 4);
    if (table_bytes % 4 != 0 || table_bytes > f_.size - pos - 8)
      fail(pos, str("a basic offset table of ", table_bytes, " bytes"));
    std::vector<uint8_t> table(table_bytes);
    read(pos + 8, table.data(), table.size(), "the basic offset table");
    for (size_t i = 0; i < table.size(); i += 4) f_.offset_table.push_back(le32(table.data() + i));
    if (const Element* extended = set.find(kExtendedOffsetTable)) {
      if (!f_.offset_table.empty()) fail(pos, "both a basic and an extended offset table");
      if (extended->value.size() % 8 != 0) fail(pos, "an extended offset table whose length is not a multiple of 8");
      const auto* p = reinterpret_cast<const uint8_t*>(extended->value.data());
      for (size_t i = 0; i < extended->value.size(); i += 8) f_.offset_table.push_back(le64(p + i));
    }
    pos += 8 + table_bytes;
    // Fragments are listed by direct reads: the window would otherwise read every pixel of the file.
    while (pos < f_.size) {
      if (f_.size - pos < 8 || !pread_all(fd_, pos, h, 8)) fail(pos, "pixel data fragment header cut short");
      const uint32_t t = tag(le16(h), le16(h + 2));
      if (t == kSequenceEnd) return;
      if (t != kItem) fail(pos, str("element ", tag_name(t), " where a pixel data fragment belongs"));
      const uint64_t fragment = le32(h + 4);
      if (fragment > f_.size - pos - 8)
        fail(pos, str("pixel data fragment ", f_.fragments.size(), " of ", fragment,
                      " bytes cut short: the file ends at byte ", f_.size));
      f_.fragments.push_back({pos, pos + 8, fragment});
      pos += 8 + fragment;
    }
  }

  static constexpr size_t kFirstWindow = size_t{1} << 12, kWindow = size_t{1} << 16;
  File& f_;
  uint32_t last_tag_;
  int fd_ = -1;
  std::vector<uint8_t> window_;
  uint64_t window_at_ = 0;
};

// Value `index` of a backslash-separated string, blanks and NULs trimmed.
std::optional<std::string> nth_value(const std::string& value, size_t index) {
  size_t begin = 0;
  for (size_t i = 0; i < index; ++i) {
    begin = value.find('\\', begin);
    if (begin == std::string::npos) return std::nullopt;
    ++begin;
  }
  size_t end = value.find('\\', begin);
  if (end == std::string::npos) end = value.size();
  while (begin < end && (value[begin] == ' ' || value[begin] == '\0')) ++begin;
  while (end > begin && (value[end - 1] == ' ' || value[end - 1] == '\0')) --end;
  return value.substr(begin, end - begin);
}

}  // namespace

ValueKind value_kind(const char* vr) {
  if (vr_is(vr, "IS")) return ValueKind::Integer;
  if (vr_is(vr, "DS") || vr_is(vr, "FL") || vr_is(vr, "FD")) return ValueKind::Decimal;
  if (binary_number_size(vr)) return ValueKind::Integer;
  return string_vr(vr) ? ValueKind::Text : ValueKind::Other;
}

const Element* DataSet::find(uint32_t t) const {
  for (const Element& e : elements)
    if (e.tag == t) return &e;
  return nullptr;
}

std::optional<std::string> DataSet::string(uint32_t t, size_t index) const {
  const Element* e = find(t);
  if (!e || !string_vr(e->vr)) return std::nullopt;
  return nth_value(e->value, index);
}

std::optional<double> DataSet::number(uint32_t t, size_t index) const {
  const Element* e = find(t);
  if (!e) return std::nullopt;
  if (const size_t size = binary_number_size(e->vr)) {
    if (index >= e->value.size() / size) return std::nullopt;
    const auto* p = reinterpret_cast<const uint8_t*>(e->value.data()) + index * size;
    if (vr_is(e->vr, "US")) return le16(p);
    if (vr_is(e->vr, "SS")) return static_cast<int16_t>(le16(p));
    if (vr_is(e->vr, "UL")) return le32(p);
    if (vr_is(e->vr, "SL")) return static_cast<int32_t>(le32(p));
    if (vr_is(e->vr, "UV")) return static_cast<double>(le64(p));
    if (vr_is(e->vr, "SV")) return static_cast<double>(static_cast<int64_t>(le64(p)));
    if (vr_is(e->vr, "FL")) {
      float v;
      const uint32_t bits = le32(p);
      std::memcpy(&v, &bits, 4);
      return v;
    }
    double v;
    const uint64_t bits = le64(p);
    std::memcpy(&v, &bits, 8);
    return v;
  }
  if (!vr_is(e->vr, "IS") && !vr_is(e->vr, "DS")) return std::nullopt;
  const auto text = nth_value(e->value, index);
  if (!text || text->empty()) return std::nullopt;
  char* stop = nullptr;
  const double v = std::strtod(text->c_str(), &stop);
  if (stop != text->c_str() + text->size() || !std::isfinite(v)) return std::nullopt;
  return v;
}

size_t DataSet::count(uint32_t t) const {
  const Element* e = find(t);
  if (!e) return 0;
  if (vr_is(e->vr, "SQ")) return e->items.size();
  if (const size_t size = binary_number_size(e->vr)) return e->value.size() / size;
  if (!string_vr(e->vr) || e->value.empty()) return 0;
  size_t n = 1;
  for (char c : e->value) n += c == '\\';
  return n;
}

const DataSet* DataSet::item(uint32_t t, size_t index) const {
  const Element* e = find(t);
  if (!e || index >= e->items.size()) return nullptr;
  return &e->items[index];
}

bool is_dicom(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  uint8_t magic[4];
  const bool dicom = pread_all(fd, 128, magic, 4) && std::memcmp(magic, "DICM", 4) == 0;
  ::close(fd);
  return dicom;
}

File read(const std::string& path, uint32_t last_tag) {
  File f;
  f.path = path;
  Parser parser(f, last_tag);
  parser.run();
  return f;
}

Frames::Frames(const File& file, int64_t count, uint64_t native_frame_bytes) : path_(file.path) {
  const std::string where = str("DICOM file '", file.path, "'");
  PATHVLM_CHECK(file.has_pixel_data, where, ": no pixel data (7FE0,0010)");
  PATHVLM_CHECK(count >= 1, where, ": ", count, " frames");
  if (!file.encapsulated) {
    PATHVLM_CHECK(native_frame_bytes > 0 && static_cast<uint64_t>(count) <= file.pixel_length / native_frame_bytes,
                  where, ": its pixel data holds ", file.pixel_length, " bytes, too few for ", count, " frames of ",
                  native_frame_bytes, " bytes");
    for (int64_t i = 0; i < count; ++i) {
      pieces_.push_back({0, file.pixel_offset + static_cast<uint64_t>(i) * native_frame_bytes, native_frame_bytes});
      first_.push_back(static_cast<size_t>(i));
    }
  } else {
    pieces_ = file.fragments;
    const size_t n = pieces_.size();
    PATHVLM_CHECK(n > 0, where, ": its encapsulated pixel data has no fragments");
    if (!file.offset_table.empty()) {
      PATHVLM_CHECK(file.offset_table.size() == static_cast<size_t>(count), where, ": its offset table lists ",
                    file.offset_table.size(), " frames, NumberOfFrames says ", count);
      size_t k = 0;
      for (size_t i = 0; i < file.offset_table.size(); ++i) {
        const uint64_t at = pieces_[0].item + file.offset_table[i];
        while (k < n && pieces_[k].item < at) ++k;
        PATHVLM_CHECK(k < n && pieces_[k].item == at && (i == 0 || k > first_.back()), where, ": offset table entry ",
                      i, " (", file.offset_table[i], ") is not the start of a fragment after the previous frame's");
        first_.push_back(k);
      }
    } else if (n == static_cast<size_t>(count)) {
      for (size_t i = 0; i < n; ++i) first_.push_back(i);
    } else {
      PATHVLM_CHECK(count == 1, where, ": ", n, " pixel data fragments for ", count,
                    " frames and no offset table to tell which fragments form each frame");
      first_.push_back(0);
    }
  }
  first_.push_back(pieces_.size());
  fd_ = open_or_throw(path_);
}

Frames::~Frames() {
  if (fd_ >= 0) ::close(fd_);
}

std::vector<uint8_t> Frames::read(int64_t index) const {
  PATHVLM_CHECK(index >= 0 && index < count(), "DICOM file '", path_, "': frame ", index, " does not exist (", count(),
                " frames)");
  uint64_t total = 0;
  for (size_t k = first_[index]; k < first_[index + 1]; ++k) total += pieces_[k].length;
  PATHVLM_CHECK(total <= kMaxFrameBytes, "DICOM file '", path_, "': frame ", index, " is ", total,
                " bytes, more than a frame may be");
  std::vector<uint8_t> bytes(static_cast<size_t>(total));
  uint8_t* out = bytes.data();
  for (size_t k = first_[index]; k < first_[index + 1]; ++k) {
    PATHVLM_CHECK(pread_all(fd_, pieces_[k].offset, out, pieces_[k].length), "DICOM file '", path_, "': frame ", index,
                  ": cannot read its ", pieces_[k].length, " bytes at byte ", pieces_[k].offset,
                  " (the file changed or is cut short)");
    out += pieces_[k].length;
  }
  return bytes;
}

}  // namespace pathvlm::dicom
