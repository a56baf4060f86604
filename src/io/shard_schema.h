// The HDF5 shard schemas (DESIGN.md "HDF5 shard schemas", docs/formats.md): the root attribute
// `pathvlm_schema` = "<kind>/<version>" and, per kind, the datasets a shard must hold. Schema 2 (sealed, what
// readers accept; X_crc32 and X_offsets as in io/checked_rows.h, the whole file in an envelope, io/shard_envelope.h):
//
//   tiles          /images uint8 [bytes] + /images_offsets int64 [N+1] (encoded JPEG/PNG), or uint8 [N,H,W,3] (raw);
//                  /images_crc32 int64 [N]; /captions vlen UTF-8 [N], /ids vlen UTF-8 [N], optional /labels int32 [N]
//   tile_features  /features float16 or float32 [N,T,D] + /features_crc32 int64 [N], /ids vlen UTF-8 [N]
//   slides         /slides/<slide_id>/features float16 or float32 [n,D] + features_crc32 int64 [n],
//                  /slides/<slide_id>/coords int64 [n,2] (level-0 top-left x,y), attributes patch_size,
//                  patch_size_level0 (int), mpp, magnification (float), encoder (string) on each slide group;
//                  optional /reports/slide_id and /reports/text vlen UTF-8 [M] (one report per row)
//
// Schema 1 (the streaming layout writers fill before sealing, and what pathvlm wrote before schema 2) has the same
// datasets without _crc32 / _offsets, encoded images as vlen uint8 [N], and no envelope.
//
// Writers call write_schema() (schema 1) on a staging file, create the datasets, then shards::seal_shard()
// (io/shard_seal.h). Readers call open_shard() and check_schema() once per shard.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/hdf5.h"

namespace pathvlm::shards {

enum class ShardKind { Tiles, TileFeatures, Slides };

constexpr int kSchemaVersion = 2;     // sealed shards
constexpr int kStreamingVersion = 1;  // staging files and shards of older pathvlm versions
constexpr const char* kSchemaAttr = "pathvlm_schema";

std::string kind_name(ShardKind kind);                // "tiles", "tile_features", "slides"
ShardKind kind_from_name(const std::string& name);    // throws listing the known kinds

// The kind named by the root attribute; errors name the file when it is missing, malformed, of an unknown kind
// or of a newer version than this build reads.
ShardKind read_schema(const h5::File& file);
int read_schema_version(const h5::File& file);
void write_schema(h5::File& file, ShardKind kind);    // "<kind>/1": the streaming layout, sealed later

// Opens a sealed shard read-only after check_envelope() (io/shard_envelope.h): damaged files are errors naming them
// before libhdf5 reads a byte. A file without an envelope (schema 1, or not a pathvlm shard) is refused with the
// `pathvlm shards upgrade` command to run; libhdf5 never opens it here.
h5::File open_shard(const std::string& path);

// read_schema() plus the kind's required datasets (of the file's schema version), their dtypes and ranks, and
// consistent record counts (slides: every slide group, without reading features). Throws naming the file and the
// dataset. `each_slide` false: slide groups are not checked one by one (validate() and seal_shard() take them as
// they are and name the broken ones).
ShardKind check_schema(const h5::File& file, bool each_slide = true);

// Records in a shard: tiles and features for tiles/tile_features, slide groups for slides.
int64_t record_count(const h5::File& file, ShardKind kind);

struct BadRecord {
  int64_t index = -1;  // record number (-1 for problems not tied to one record)
  std::string id;      // the record's id or slide id when known
  std::string problem;
};

struct ValidateOptions {
  // Extra check of one encoded tile image (after the built-in JPEG/PNG magic check); returns "" when it is fine.
  std::function<std::string(const h5::Blob& bytes)> check_image = {};
  // Stop collecting after this many bad records (0 = no limit); counting continues.
  int64_t max_reported = 0;
};

struct ValidateReport {
  ShardKind kind = ShardKind::Tiles;
  int64_t records = 0;
  int64_t bad_records = 0;
  std::vector<BadRecord> bad;  // at most max_reported entries when that is set
};

// check_schema(), then reads every record of a sealed shard with its checksum: tiles need a non-empty caption and
// id, unique ids, and encoded images with a JPEG or PNG signature; features must be finite; slides need matching
// features/coords rows, the slide attributes, finite features, and reports that name existing slides with
// non-empty text. A record whose checksum does not match is a bad record ("checksum mismatch").
ValidateReport validate(const h5::File& file, const ValidateOptions& options = {});

}  // namespace pathvlm::shards
