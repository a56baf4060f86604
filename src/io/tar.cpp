#include "io/tar.h"

#include <cstring>
#include <fstream>
#include <optional>

#include "core/error.h"

namespace pathvlm::tar {
namespace {

constexpr uint64_t kBlock = 512;
constexpr uint64_t kNoSize = UINT64_MAX;

// Field offsets and widths of the 512-byte header (POSIX ustar).
struct Field {
  size_t at, width;
};
constexpr Field kName{0, 100}, kSize{124, 12}, kChecksum{148, 8}, kMagic{257, 6}, kPrefix{345, 155};
constexpr size_t kType = 156;

std::string text_field(const char* header, Field f) {
  return std::string(header + f.at, strnlen(header + f.at, f.width));
}

// An octal number (NUL- or space-terminated, leading spaces allowed) or GNU's base-256 form (high bit set).
std::optional<uint64_t> number_field(const char* header, Field f) {
  const auto* p = reinterpret_cast<const unsigned char*>(header + f.at);
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return std::nullopt;  // negative, or more than 64 bits
    uint64_t v = 0;
    for (size_t i = 1; i < f.width; ++i) {
      if (v >> 56) return std::nullopt;
      v = v << 8 | p[i];
    }
    return v;
  }
  size_t i = 0;
  while (i < f.width && p[i] == ' ') ++i;
  uint64_t v = 0;
  bool digits = false;
  for (; i < f.width && p[i] >= '0' && p[i] <= '7'; ++i, digits = true) {
    if (v >> 61) return std::nullopt;
    v = v << 3 | (p[i] - '0');
  }
  if (!digits || (i < f.width && p[i] != ' ' && p[i] != '\0')) return std::nullopt;
  return v;
}

// The stored checksum matches the header's byte sum (its own field counted as spaces); old tars summed signed bytes.
bool checksum_matches(const char* header) {
  const auto stored = number_field(header, kChecksum);
  if (!stored) return false;
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    const bool in_field = i >= kChecksum.at && i < kChecksum.at + kChecksum.width;
    unsigned_sum += in_field ? ' ' : static_cast<unsigned char>(header[i]);
    signed_sum += in_field ? ' ' : static_cast<signed char>(header[i]);
  }
  return static_cast<int64_t>(*stored) == unsigned_sum || static_cast<int64_t>(*stored) == signed_sum;
}

bool all_zero(const char* block) {
  for (size_t i = 0; i < kBlock; ++i)
    if (block[i]) return false;
  return true;
}

// The `path` and `size` of pax extended-header records "<length> <key>=<value>\n".
bool parse_pax(const std::string& records, std::optional<std::string>& path, uint64_t& size) {
  size_t pos = 0;
  while (pos < records.size()) {
    size_t space = records.find(' ', pos);
    if (space == std::string::npos || space == pos || space - pos > 20) return false;
    uint64_t length = 0;
    for (size_t i = pos; i < space; ++i) {
      if (records[i] < '0' || records[i] > '9') return false;
      length = length * 10 + static_cast<uint64_t>(records[i] - '0');
    }
    if (length <= space - pos + 1 || length > records.size() - pos || records[pos + length - 1] != '\n') return false;
    const std::string record = records.substr(space + 1, pos + length - 1 - (space + 1));
    const size_t eq = record.find('=');
    if (eq == std::string::npos) return false;
    const std::string key = record.substr(0, eq), value = record.substr(eq + 1);
    if (key == "path") path = value;
    if (key == "size") {
      if (value.empty() || value.size() > 19 || value.find_first_not_of("0123456789") != std::string::npos)
        return false;
      size = std::stoull(value);
    }
    pos += length;
  }
  return true;
}

}  // namespace

Reader::Reader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  PATHVLM_CHECK(in_, "tar '", path, "': cannot open it");
  in_.seekg(0, std::ios::end);
  size_ = static_cast<uint64_t>(in_.tellg());
}

bool Reader::read_at(uint64_t offset, char* out, uint64_t n) {
  if (offset > size_ || n > size_ - offset) return false;
  in_.clear();
  in_.seekg(static_cast<std::streamoff>(offset));
  return static_cast<bool>(in_.read(out, static_cast<std::streamsize>(n)));
}

std::vector<uint8_t> Reader::read(const Member& member) {
  std::vector<uint8_t> bytes(member.size);
  PATHVLM_CHECK(read_at(member.offset, reinterpret_cast<char*>(bytes.data()), member.size), "tar '", path_,
                "': cannot read member '", member.name, "' (", member.size, " bytes at byte ", member.offset,
                "; the archive has ", size_, ")");
  return bytes;
}

std::vector<uint8_t> read(const std::string& path, const Member& member) { return Reader(path).read(member); }

Listing list(const std::string& path) {
  Listing listing;
  listing.path = path;
  Reader file(path);
  std::optional<std::string> long_name;  // from a GNU 'L' record or a pax header, for the next member
  uint64_t long_size = kNoSize;          // from a pax header
  if (file.size() == 0) listing.problem = "empty file (0 bytes)";
  char header[kBlock];
  for (uint64_t at = 0;;) {
    auto fail = [&](const std::string& problem) { listing.problem = str(problem, " (at byte ", at, ")"); };
    if (at == file.size()) break;  // no end-of-archive blocks: Python's tarfile accepts that too
    if (!file.read_at(at, header, kBlock)) {
      fail(str("cut short: ", file.size() - at, " bytes where a 512-byte header should be"));
      break;
    }
    if (all_zero(header)) break;  // end of archive
    if (!checksum_matches(header)) {
      const auto* b = reinterpret_cast<const unsigned char*>(header);
      if (at == 0 && b[0] == 0x1f && b[1] == 0x8b)
        fail("gzip-compressed: decompress it first (gunzip)");
      else
        fail(at == 0 ? "not a tar archive (bad header checksum)" : "damaged header (bad checksum)");
      break;
    }
    const auto stored_size = number_field(header, kSize);
    if (!stored_size) {
      fail("damaged header (bad size field)");
      break;
    }
    const char type = header[kType];
    const bool extension = type == 'L' || type == 'x' || type == 'g' || type == 'K';  // about the next member
    const uint64_t size = extension || long_size == kNoSize ? *stored_size : long_size;
    const uint64_t data_at = at + kBlock;
    if (size > file.size() - data_at) {
      fail(str("cut short: the member at this header claims ", size, " bytes, ", file.size() - data_at, " remain"));
      break;
    }
    if (type == 'L' || type == 'x') {  // the next member's name, or its pax attributes
      if (size > (1u << 20)) {
        fail(str("an extended header of ", size, " bytes (more than 1 MiB)"));
        break;
      }
      std::string data(size, '\0');
      file.read_at(data_at, data.data(), size);
      if (type == 'L') {
        long_name = std::string(data.c_str());
      } else if (!parse_pax(data, long_name, long_size)) {
        fail("malformed pax extended header");
        break;
      }
    } else if (!extension) {
      if (type == '0' || type == '\0' || type == '7') {
        std::string name = long_name.value_or(text_field(header, kName));
        const std::string prefix = text_field(header, kPrefix);
        // POSIX ustar keeps long names' folders in `prefix`; the old GNU format uses that area for times.
        if (!long_name && std::memcmp(header + kMagic.at, "ustar\0", 6) == 0 && !prefix.empty())
          name = prefix + "/" + name;
        if (name.empty() || name.back() != '/') listing.members.push_back({name, data_at, size});  // old tars' folders
      }
      long_name.reset();
      long_size = kNoSize;
    }
    at = data_at + (size + kBlock - 1) / kBlock * kBlock;
    if (at > file.size()) break;  // the last member's padding is missing: its bytes are all there
  }
  return listing;
}

}  // namespace pathvlm::tar
