// Turning a shard in the streaming layout into a sealed schema-2 shard, and upgrading old shards.
//
// Writers stream records into HDF5's extendable datasets (vlen image blobs, chunked rows: schema 1, the layout
// pathvlm wrote before schema 2) in a staging file, then seal it:
//
//   shards::seal_shard("x.h5.staging", "x.h5");   // x.h5.sealing, renamed to x.h5 once complete and on disk
//
// Sealing copies every group, dataset and attribute into a new file with an integrity envelope
// (io/shard_envelope.h), stores the kind's record data as checked rows (io/checked_rows.h): tiles /images
// (encoded: uint8 bytes + /images_offsets; raw: [N,H,W,3]), tile_features /features, slides /slides/<id>/features,
// each contiguous with its _crc32; every other dataset contiguous; and sets `pathvlm_schema` to "<kind>/2". On
// failure (a full disk) nothing is left under `target` (nor the .sealing file) and the error names `target`.
//
// upgrade_shard(path) does the same for a shard written by an older pathvlm, but reads the old file in a child
// process with a time limit: libhdf5 can crash or spin on a damaged schema-1 file, which then becomes an error
// naming the file. The upgraded file replaces the old one under the same name (atomic rename; the old file is
// kept only when the upgrade fails).
#pragma once
#include <string>

namespace pathvlm::shards {

void seal_shard(const std::string& source, const std::string& target);

enum class UpgradeResult { Upgraded, AlreadyCurrent };

// `timeout_s` <= 0: 60 s plus 1 s per 20 MB of the file.
UpgradeResult upgrade_shard(const std::string& path, double timeout_s = 0);

}  // namespace pathvlm::shards
