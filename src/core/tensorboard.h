// TensorBoard event files, encoded here (no protobuf or TensorFlow dependency): TFRecord framing
// (uint64 length, masked CRC32C of the length, payload, masked CRC32C of the payload) around
// Event protobufs {wall_time, step, file_version | summary{value{tag, simple_value}}}.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm {

// CRC-32C (Castagnoli), and the masked form TFRecord stores.
uint32_t crc32c(const void* data, size_t size, uint32_t crc = 0);
uint32_t masked_crc32c(const void* data, size_t size);

class EventFileWriter {
 public:
  // Creates `dir`/events.out.tfevents.<unix seconds>.<hostname> (a numeric suffix if that exists) and
  // writes the first record, file_version "brain.Event:2".
  explicit EventFileWriter(const std::string& dir);
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  // One Event holding every scalar (stored as float32, as TensorBoard's simple_value is).
  void add_scalars(int64_t step, double wall_time, const std::vector<std::pair<std::string, double>>& scalars);
  void add_scalar(int64_t step, double wall_time, const std::string& tag, double value) {
    add_scalars(step, wall_time, {{tag, value}});
  }
  void flush();
  const std::string& path() const { return path_; }

 private:
  void write_record(const std::string& payload);
  std::string path_;
  std::FILE* file_ = nullptr;
};

}  // namespace pathvlm
