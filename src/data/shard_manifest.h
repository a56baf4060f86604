// Where a set of shards is: a manifest.json (its folder, or the file itself) listing the shards with their record
// counts, or one .h5 shard given directly. Every shard reader (tiles, tile_features) opens its path through this.
//
//   ShardManifest m = read_shard_manifest("shards/", "tiles/1", "tiles data");
//   for (const auto& s : m.shards) { ...open s.path, check its count against s.records (-1: not listed)... }
//   m.check_total(records_read);   // the manifest's "records" against what the shards hold
//
// Manifest: {"pathvlm_manifest": "<kind>/1", "records": N, "shards": [{"file": "x-00000.h5", "records": n}, ...]};
// relative files resolve against the manifest's folder. Errors name the manifest (or the missing path).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm::data {

struct ShardManifestEntry {
  std::string path;      // resolved shard path
  int64_t records = -1;  // as the manifest lists it; -1 for a shard given directly
};

struct ShardManifest {
  std::string source;  // the manifest, or the single shard
  bool single_shard = false;
  int64_t records = -1;  // the manifest's total; -1 when it has none or for a single shard
  std::vector<ShardManifestEntry> shards;

  // "manifest 'x': " for messages about its shards, "" for a single shard.
  std::string context() const;
  // Throws naming the manifest when its total differs from `held`, the records its shards hold.
  void check_total(int64_t held) const;
};

// `tag` is the expected "pathvlm_manifest" value ("tiles/1"); `what` names the data in errors ("tiles data").
ShardManifest read_shard_manifest(const std::string& path, const std::string& tag, const std::string& what);

}  // namespace pathvlm::data
