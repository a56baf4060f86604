// Records of a schema-2 shard read with their checksums (io/shard_envelope.h covers the rest of the file):
//
//   numeric rows   X [N, ...] contiguous  +  X_crc32 int64 [N]     (CRC-32 of each row's little-endian bytes)
//   byte records   X uint8 [total]         +  X_offsets int64 [N+1] (record i = bytes [offsets[i], offsets[i+1]))
//                                          +  X_crc32 int64 [N]     (CRC-32 of each record's bytes)
//
//   shards::CheckedRows features(file, "features");
//   torch::Tensor x = features.read_rows(10, 4);     // throws "shard 'f.h5' record 12: features checksum mismatch"
//   shards::CheckedBytes images(file, "images");
//   h5::Blob jpeg = images.read(3);
//
// A record whose bytes were damaged is an error naming the shard and the record, so a reader can skip that record
// and go on. Construction reads the (small) checksum and offset datasets and checks their counts and ranges.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "io/hdf5.h"

namespace pathvlm::shards {

class CheckedRows {
 public:
  CheckedRows(const h5::Group& group, const std::string& name);
  const h5::Dataset& dataset() const { return data_; }
  int64_t rows() const { return static_cast<int64_t>(crc_.size()); }
  torch::Tensor read_rows(int64_t begin, int64_t count) const;
  torch::Tensor read_row_list(const std::vector<int64_t>& rows) const;  // strictly increasing rows

 private:
  void check(const torch::Tensor& rows, const std::vector<int64_t>& index) const;
  h5::Dataset data_;
  std::vector<uint32_t> crc_;
};

class CheckedBytes {
 public:
  CheckedBytes(const h5::Group& group, const std::string& name);
  int64_t size() const { return static_cast<int64_t>(crc_.size()); }
  h5::Blob read(int64_t i) const;

 private:
  h5::Dataset data_;
  std::vector<int64_t> offsets_;
  std::vector<uint32_t> crc_;
};

// The checksums of `rows` ([N, ...], any dtype): what writers store in X_crc32.
torch::Tensor row_checksums(const torch::Tensor& rows);

}  // namespace pathvlm::shards
