// The HDF5 shard schemas (DESIGN.md "HDF5 shard schemas"): the root attribute `pathvlm_schema` = "<kind>/<version>"
// and, per kind, the datasets a shard must hold:
//
//   tiles          /images   uint8 [N,H,W,3] or vlen uint8 [N] (encoded JPEG/PNG)
//                  /captions vlen UTF-8 [N], /ids vlen UTF-8 [N], optional /labels int32 [N]
//   tile_features  /features float16 or float32 [N,T,D], /ids vlen UTF-8 [N]
//   slides         /slides/<slide_id>/features float16 or float32 [n,D], /slides/<slide_id>/coords int64 [n,2]
//                  (level-0 top-left x,y), attributes patch_size, patch_size_level0 (int), mpp, magnification
//                  (float), encoder (string) on each slide group; optional /reports/slide_id and /reports/text
//                  vlen UTF-8 [M] (one report per row)
//
// Writers call write_schema() and then create the datasets; readers call check_schema() once per shard.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "io/hdf5.h"

namespace pathvlm::shards {

enum class ShardKind { Tiles, TileFeatures, Slides };

constexpr int kSchemaVersion = 1;
constexpr const char* kSchemaAttr = "pathvlm_schema";

std::string kind_name(ShardKind kind);                // "tiles", "tile_features", "slides"
ShardKind kind_from_name(const std::string& name);    // throws listing the known kinds

// The kind named by the root attribute; errors name the file when it is missing, malformed, of an unknown kind
// or of a newer version than this build reads.
ShardKind read_schema(const h5::File& file);
int read_schema_version(const h5::File& file);
void write_schema(h5::File& file, ShardKind kind);    // "<kind>/1"

// read_schema() plus the kind's required datasets, their dtypes and ranks, and consistent record counts
// (slides: every slide group, without reading features). Throws naming the file and the dataset.
ShardKind check_schema(const h5::File& file);

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

// check_schema(), then reads every record: tiles need a non-empty caption and id, unique ids, and encoded images
// with a JPEG or PNG signature; features must be finite; slides need matching features/coords rows, the slide
// attributes, finite features, and reports that name existing slides with non-empty text.
ValidateReport validate(const h5::File& file, const ValidateOptions& options = {});

}  // namespace pathvlm::shards
