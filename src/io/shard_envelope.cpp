#include "io/shard_envelope.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/error.h"
#include "io/crc32.h"

namespace pathvlm::shards {
namespace {

constexpr char kMagic[8] = {'P', 'V', 'L', 'M', 'S', 'H', 'R', 'D'};
constexpr uint32_t kEnvelopeVersion = 1;
constexpr size_t kFixedBytes = 32, kRegionBytes = 16;

// A file descriptor closed on every path.
struct Fd {
  int fd = -1;
  Fd(const std::string& path, int flags) : fd(::open(path.c_str(), flags | O_CLOEXEC)) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

std::string errno_text() { return std::strerror(errno); }

void read_exact(int fd, void* out, size_t size, int64_t offset, const std::string& path) {
  auto* p = static_cast<char*>(out);
  while (size > 0) {
    const ssize_t n = ::pread(fd, p, size, offset);
    if (n < 0 && errno == EINTR) continue;
    PATHVLM_CHECK(n > 0, "shard '", path, "': read failed at byte ", offset, ": ", n < 0 ? errno_text() : "end of file");
    p += n, size -= static_cast<size_t>(n), offset += n;
  }
}

template <class T>
void put(std::vector<uint8_t>& out, size_t at, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out[at + i] = static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i));
}
template <class T>
T get(const std::vector<uint8_t>& in, size_t at) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) v |= static_cast<uint64_t>(in[at + i]) << (8 * i);
  return static_cast<T>(v);
}

// CRC of bytes [begin, end) of the file, skipping `regions` (sorted); reads are bounded by the range.
uint32_t crc_outside(int fd, int64_t begin, int64_t end, const std::vector<Region>& regions, const std::string& path) {
  std::vector<uint8_t> buffer(1 << 20);
  uint32_t crc = 0;
  auto add = [&](int64_t from, int64_t to) {
    while (from < to) {
      const size_t n = static_cast<size_t>(std::min<int64_t>(to - from, static_cast<int64_t>(buffer.size())));
      read_exact(fd, buffer.data(), n, from, path);
      crc = crc32(buffer.data(), n, crc);
      from += static_cast<int64_t>(n);
    }
  };
  int64_t at = begin;
  for (const auto& r : regions) {
    add(at, r.offset);
    at = r.offset + r.bytes;
  }
  add(at, end);
  return crc;
}

int64_t file_size(int fd, const std::string& path) {
  struct stat st{};
  PATHVLM_CHECK(::fstat(fd, &st) == 0, "shard '", path, "': stat failed: ", errno_text());
  return static_cast<int64_t>(st.st_size);
}

}  // namespace

int64_t envelope_bytes(size_t regions) {
  int64_t bytes = 512;
  while (bytes < static_cast<int64_t>(kFixedBytes + kRegionBytes * regions + 4)) bytes *= 2;
  return bytes;
}

bool has_envelope(const std::string& path) {
  Fd f(path, O_RDONLY);
  if (f.fd < 0) return false;
  char magic[sizeof kMagic] = {};
  const ssize_t n = ::pread(f.fd, magic, sizeof magic, 0);
  return n == static_cast<ssize_t>(sizeof magic) && std::memcmp(magic, kMagic, sizeof magic) == 0;
}

void seal_envelope(const std::string& path, int64_t block, std::vector<Region> regions) {
  std::sort(regions.begin(), regions.end(), [](const Region& a, const Region& b) { return a.offset < b.offset; });
  PATHVLM_CHECK(block >= envelope_bytes(regions.size()) && (block & (block - 1)) == 0, "shard '", path,
                "': a user block of ", block, " bytes cannot hold ", regions.size(), " regions");
  Fd f(path, O_RDWR);
  PATHVLM_CHECK(f.fd >= 0, "shard '", path, "': cannot open to seal: ", errno_text());
  const int64_t size = file_size(f.fd, path);
  for (size_t i = 0; i < regions.size(); ++i) {
    const Region& r = regions[i];
    PATHVLM_CHECK(r.offset >= block && r.bytes > 0 && r.offset + r.bytes <= size &&
                      (i == 0 || regions[i - 1].offset + regions[i - 1].bytes <= r.offset),
                  "shard '", path, "': raw region ", i, " [", r.offset, ", +", r.bytes, ") is not inside the file");
  }
  std::vector<uint8_t> header(static_cast<size_t>(block), 0);
  std::memcpy(header.data(), kMagic, sizeof kMagic);
  put<uint32_t>(header, 8, kEnvelopeVersion);
  put<uint32_t>(header, 12, static_cast<uint32_t>(block));
  put<uint64_t>(header, 16, static_cast<uint64_t>(size));
  put<uint32_t>(header, 24, static_cast<uint32_t>(regions.size()));
  put<uint32_t>(header, 28, crc_outside(f.fd, block, size, regions, path));
  size_t at = kFixedBytes;
  for (const auto& r : regions) {
    put<uint64_t>(header, at, static_cast<uint64_t>(r.offset));
    put<uint64_t>(header, at + 8, static_cast<uint64_t>(r.bytes));
    at += kRegionBytes;
  }
  put<uint32_t>(header, at, crc32(header.data(), at));
  size_t done = 0;
  while (done < header.size()) {
    const ssize_t n = ::pwrite(f.fd, header.data() + done, header.size() - done, static_cast<off_t>(done));
    if (n < 0 && errno == EINTR) continue;
    PATHVLM_CHECK(n > 0, "shard '", path, "': cannot write its integrity header: ", errno_text());
    done += static_cast<size_t>(n);
  }
  PATHVLM_CHECK(::fsync(f.fd) == 0, "shard '", path, "': cannot flush it to disk: ", errno_text());
}

std::vector<Region> check_envelope(const std::string& path) {
  Fd f(path, O_RDONLY);
  PATHVLM_CHECK(f.fd >= 0, "shard '", path, "': cannot open: ", errno_text());
  const int64_t size = file_size(f.fd, path);
  const std::string corrupt = str("shard '", path, "' is corrupt: ");
  PATHVLM_CHECK(size >= static_cast<int64_t>(kFixedBytes), "shard '", path, "' is truncated: ", size,
                " bytes, shorter than its header");
  std::vector<uint8_t> fixed(kFixedBytes);
  read_exact(f.fd, fixed.data(), kFixedBytes, 0, path);
  PATHVLM_CHECK(std::memcmp(fixed.data(), kMagic, sizeof kMagic) == 0, corrupt, "no integrity header magic");
  const auto version = get<uint32_t>(fixed, 8);
  PATHVLM_CHECK(version == kEnvelopeVersion, corrupt, "integrity header version ", version, " (this build reads ",
                kEnvelopeVersion, ")");
  const auto block = static_cast<int64_t>(get<uint32_t>(fixed, 12));
  const auto count = get<uint32_t>(fixed, 24);
  PATHVLM_CHECK(block >= 512 && (block & (block - 1)) == 0 && block <= (int64_t(1) << 30), corrupt,
                "user block size ", block, " is not a power of two >= 512");
  PATHVLM_CHECK(static_cast<int64_t>(kFixedBytes + kRegionBytes * uint64_t(count) + 4) <= block, corrupt, count,
                " regions do not fit the ", block, "-byte header");
  PATHVLM_CHECK(size >= block, "shard '", path, "' is truncated: ", size, " bytes, shorter than its ", block,
                "-byte header");
  std::vector<uint8_t> header(static_cast<size_t>(block));
  read_exact(f.fd, header.data(), header.size(), 0, path);
  const size_t end = kFixedBytes + kRegionBytes * count;
  PATHVLM_CHECK(get<uint32_t>(header, end) == crc32(header.data(), end), corrupt, "header checksum mismatch");
  PATHVLM_CHECK(std::all_of(header.begin() + static_cast<int64_t>(end) + 4, header.end(), [](uint8_t b) { return b == 0; }),
                corrupt, "bytes after the header are not zero");
  const auto expected = static_cast<int64_t>(get<uint64_t>(header, 16));
  PATHVLM_CHECK(size >= expected, "shard '", path, "' is truncated: ", size, " of ", expected, " bytes");
  PATHVLM_CHECK(size == expected, corrupt, size, " bytes, its header says ", expected);
  std::vector<Region> regions(count);
  for (uint32_t i = 0; i < count; ++i) {
    Region& r = regions[i];
    r.offset = static_cast<int64_t>(get<uint64_t>(header, kFixedBytes + kRegionBytes * i));
    r.bytes = static_cast<int64_t>(get<uint64_t>(header, kFixedBytes + kRegionBytes * i + 8));
    PATHVLM_CHECK(r.offset >= block && r.bytes > 0 && r.bytes <= size && r.offset <= size - r.bytes &&
                      (i == 0 || regions[i - 1].offset + regions[i - 1].bytes <= r.offset),
                  corrupt, "raw region ", i, " is outside the file or out of order");
  }
  PATHVLM_CHECK(crc_outside(f.fd, block, size, regions, path) == get<uint32_t>(header, 28), corrupt,
                "metadata checksum mismatch");
  return regions;
}

}  // namespace pathvlm::shards
