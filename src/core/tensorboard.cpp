// The event-file encoder: just enough protobuf wire format for scalar summaries.
#include "core/tensorboard.h"

#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"

namespace pathvlm {

namespace {

const std::array<uint32_t, 256>& crc_table() {
  static const std::array<uint32_t, 256> table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
      t[i] = c;
    }
    return t;
  }();
  return table;
}

// Protobuf wire format: field keys, varints, fixed-width numbers and length-delimited bytes.
void put_varint(std::string& out, uint64_t v) {
  while (v >= 0x80) out.push_back(static_cast<char>((v & 0x7f) | 0x80)), v >>= 7;
  out.push_back(static_cast<char>(v));
}
void put_key(std::string& out, int field, int wire_type) { put_varint(out, (uint64_t(field) << 3) | wire_type); }
void put_bytes(std::string& out, int field, const std::string& bytes) {
  put_key(out, field, 2);
  put_varint(out, bytes.size());
  out += bytes;
}
void put_double(std::string& out, int field, double v) {
  put_key(out, field, 1);
  char raw[8];
  std::memcpy(raw, &v, 8);  // little-endian hosts only, like the rest of the formats we write
  out.append(raw, 8);
}
void put_float(std::string& out, int field, float v) {
  put_key(out, field, 5);
  char raw[4];
  std::memcpy(raw, &v, 4);
  out.append(raw, 4);
}
void put_int64(std::string& out, int field, int64_t v) {
  put_key(out, field, 0);
  put_varint(out, static_cast<uint64_t>(v));
}

// Event fields: 1 wall_time (double), 2 step (int64), 3 file_version (string), 5 summary (Summary).
std::string event(double wall_time, int64_t step) {
  std::string e;
  put_double(e, 1, wall_time);
  put_int64(e, 2, step);
  return e;
}

}  // namespace

uint32_t crc32c(const void* data, size_t size, uint32_t crc) {
  const auto& table = crc_table();
  auto* p = static_cast<const unsigned char*>(data);
  crc = ~crc;
  for (size_t i = 0; i < size; ++i) crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
  return ~crc;
}

uint32_t masked_crc32c(const void* data, size_t size) {
  uint32_t crc = crc32c(data, size);
  return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

EventFileWriter::EventFileWriter(const std::string& dir) {
  char host[256] = "localhost";
  gethostname(host, sizeof host - 1);
  std::string base = dir + "/events.out.tfevents." + std::to_string(std::time(nullptr)) + "." + host;
  path_ = base;
  for (int n = 1; std::filesystem::exists(path_); ++n) path_ = base + "." + std::to_string(n);
  file_ = std::fopen(path_.c_str(), "wb");
  PATHVLM_CHECK(file_, "TensorBoard event file '", path_, "' cannot be created: ", std::strerror(errno));
  std::string first = event(static_cast<double>(std::time(nullptr)), 0);
  put_bytes(first, 3, "brain.Event:2");
  write_record(first);
  flush();
}

EventFileWriter::~EventFileWriter() {
  if (file_) std::fclose(file_);
}

void EventFileWriter::add_scalars(int64_t step, double wall_time,
                                  const std::vector<std::pair<std::string, double>>& scalars) {
  // Summary field 1: repeated Value; Value fields: 1 tag (string), 2 simple_value (float).
  std::string summary;
  for (const auto& [tag, value] : scalars) {
    std::string v;
    put_bytes(v, 1, tag);
    put_float(v, 2, static_cast<float>(value));
    put_bytes(summary, 1, v);
  }
  std::string e = event(wall_time, step);
  put_bytes(e, 5, summary);
  write_record(e);
}

void EventFileWriter::write_record(const std::string& payload) {
  uint64_t length = payload.size();
  uint32_t length_crc = masked_crc32c(&length, 8);
  uint32_t payload_crc = masked_crc32c(payload.data(), payload.size());
  bool ok = std::fwrite(&length, 8, 1, file_) == 1 && std::fwrite(&length_crc, 4, 1, file_) == 1 &&
            std::fwrite(payload.data(), 1, payload.size(), file_) == payload.size() &&
            std::fwrite(&payload_crc, 4, 1, file_) == 1;
  PATHVLM_CHECK(ok, "TensorBoard event file '", path_, "': write failed: ", std::strerror(errno));
}

void EventFileWriter::flush() {
  PATHVLM_CHECK(std::fflush(file_) == 0, "TensorBoard event file '", path_, "': flush failed: ", std::strerror(errno));
}

}  // namespace pathvlm
