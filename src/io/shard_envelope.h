// The integrity header of a pathvlm shard (schema 2): libhdf5 never parses a byte of a shard that was not checked.
//
// A shard is an HDF5 file with a user block (the bytes before HDF5's superblock, which HDF5 leaves to the
// application). After the HDF5 file is closed, seal_envelope() writes into the user block, little-endian:
//
//   0  "PVLMSHRD"  magic                       24 u32  region count R
//   8  u32  envelope version (1)               28 u32  CRC-32 of every file byte outside the user block and the regions
//   12 u32  user block size (power of 2)       32 R x (u64 offset, u64 bytes): the raw data of the big contiguous
//   16 u64  file size                              datasets, sorted, inside the file, not overlapping
//                                              32+16R  u32 CRC-32 of the header bytes before it; zeros to the block end
//
// Regions hold only the raw values of contiguous datasets (libhdf5 copies them without interpreting them); they
// are covered by the per-row checksums the readers check (io/checked_rows.h). Everything else (superblock, object
// headers, B-trees, heaps, attributes, small datasets) is the "metadata" the header's CRC covers, so
// check_envelope() verifies it with plain reads before H5Fopen is called: a flipped bit, a block overwritten or a
// truncated file is an error naming the file, never a crash or a hang inside libhdf5.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::shards {

struct Region {
  int64_t offset = 0, bytes = 0;
};

// The user block size that holds a header with `regions` regions (a power of two, at least 512).
int64_t envelope_bytes(size_t regions);

// True when `path` starts with the envelope magic (a schema-2 shard, intact or not); false for other files
// (HDF5 files without a header: shards of schema 1 or foreign files) and files that cannot be opened.
bool has_envelope(const std::string& path);

// Writes the header into the user block (of `userblock_bytes`, at least envelope_bytes(regions.size())) of the
// closed HDF5 file `path` and flushes the file to disk. Errors name the file.
void seal_envelope(const std::string& path, int64_t userblock_bytes, std::vector<Region> regions);

// Checks the header and the metadata CRC; returns the regions. Errors: "shard 'X' is corrupt: ..." (bad magic,
// header checksum, metadata checksum mismatch) or "shard 'X' is truncated: N of M bytes".
std::vector<Region> check_envelope(const std::string& path);

}  // namespace pathvlm::shards
