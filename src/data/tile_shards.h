// `tiles` shards (DESIGN.md): building them from a folder of images plus a CSV/TSV or JSONL of captions, or from
// WebDataset tar shards, and reading them back through their manifest.
//
// Writing:
//   TileShardBuildOptions o;  o.records = "captions.csv";  o.images_dir = "tiles/";  o.out_dir = "shards/";
//   auto report = build_tile_shards(o);   // shards/tiles-00000.h5 ..., shards/manifest.json, shards/bad_records.tsv
//
// Records: CSV (comma) or TSV (tab, by the .tsv extension) with a header naming at least `filepath` and
// `caption` (optional `label`: integer class, `id`: unique id, default the filepath); or JSONL with the same
// keys (`image` and `text` are accepted too). Relative file paths resolve against images_dir (default: the
// records file's folder). A record whose file is missing, whose image does not decode, whose caption is empty or
// not UTF-8, whose label is not an integer or whose id repeats is listed in bad_records.tsv (line, file, problem)
// and skipped; the summary counts it.
//
// WebDataset shards (open_clip's and img2dataset's tars, data/webdataset.h): each sample's image is its jpg, png,
// jpeg, webp or tif member, its caption its txt (or a json's caption), its label its cls, its id
// "<tar name>/<key>"; bad_records.tsv names the sample by tar and member, with its number in the tar for a line.
// A damaged tar keeps the samples before the damage and lists the problem.
//
// The manifest (manifest.json next to the shards) lists every shard with its record count:
//   {"pathvlm_manifest": "tiles/1", "records": 1000, "shards": [{"file": "tiles-00000.h5", "records": 500}, ...],
//    "images": "encoded" | "raw", "image_size": [H, W] (raw only), "labels": true, "bad_records": 3, ...}
//
// Reading:
//   auto ds = TileDataset::open("shards/");   // a manifest.json, its folder, or a single .h5 shard
//   auto both = TileDataset::open("pathcap/::quilt/manifest.json");   // several sets joined by "::", in order
//   TileRecord r = ds.read(17);               // decoded RGB uint8 [H,W,3], caption, id, label
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "io/checked_rows.h"

namespace pathvlm::data {

struct TileShardBuildOptions {
  std::string records;            // CSV / TSV / JSONL file, or:
  std::vector<std::string> webdataset;  // WebDataset .tar shards
  std::string images_dir;         // base of relative file paths; "" = the records file's folder
  std::string out_dir;            // created if missing
  std::string prefix = "tiles";   // shard names: <prefix>-00000.h5
  int64_t shard_size = 10000;     // records per shard
  // "encoded": keep the original JPEG/PNG bytes; "jpeg" / "png": re-encode; "raw": uint8 [N,H,W,3] pixels.
  std::string storage = "encoded";
  int size = 0;                   // > 0: shortest side to `size` and center crop (re-encodes); raw needs equal sizes
  int jpeg_quality = 95;
  char separator = 0;             // CSV separator; 0 = by extension (.tsv tab, otherwise comma)
  // The CSV columns / JSONL keys of the image path and the caption; "": filepath|image|path, caption|text|title.
  std::string image_key, caption_key;
  int threads = 2;                // image decode/encode threads
  bool progress = true;           // progress bar on stderr
};

struct TileBadRecord {
  int64_t line = 0;  // 1-based line of the records file (CSV: the record's first line), or sample in its tar
  std::string file;  // as written in the records file, or "<tar>:<member>"
  std::string problem;
};

struct TileShardBuildReport {
  int64_t records = 0;  // records read from the records file or samples from the tars
  int64_t written = 0;
  std::vector<TileBadRecord> bad;
  std::vector<std::string> shards;  // paths
  std::string manifest, bad_records_file;
};

TileShardBuildReport build_tile_shards(const TileShardBuildOptions& options);

struct TileRecord {
  torch::Tensor image;  // RGB uint8 [H,W,3]
  std::string caption, id;
  int32_t label = -1;  // -1 when the shards have no labels
};

// Random access to the records of a set of tiles shards. Captions, ids and labels are held in memory; images
// are read on demand. Safe to use from several threads (HDF5 reads are serialised, decoding is not).
class TileDataset {
 public:
  // A manifest.json, a folder holding one, or a single tiles shard (.h5); or several of these joined by "::", their
  // records one after the other. Checks every shard's schema and that its record count matches the manifest; errors
  // name the manifest and the shard.
  static TileDataset open(const std::string& path);

  int64_t size() const { return static_cast<int64_t>(captions_.size()); }
  bool has_labels() const { return has_labels_; }
  const std::string& source() const { return source_; }
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }

  const std::string& caption(int64_t i) const;
  const std::string& id(int64_t i) const;
  int32_t label(int64_t i) const;  // -1 without labels
  // The image as RGB uint8 [H,W,3]: decoded from the stored bytes, or the stored pixels of raw shards.
  // A record that does not decode throws naming the shard and record.
  torch::Tensor image(int64_t i) const;
  TileRecord read(int64_t i) const;
  std::string where(int64_t i) const;  // "shard 'x.h5' record 12 (id 'a.png')"
  std::pair<std::string, int64_t> locate(int64_t i) const;  // the shard holding record i, and i's number in it

 private:
  struct Shard {
    std::string path;
    std::shared_ptr<const shards::CheckedBytes> encoded;  // one of these two
    std::shared_ptr<const shards::CheckedRows> raw;
    int64_t first = 0, count = 0;
  };
  const Shard& shard_of(int64_t i, int64_t& local) const;
  void check_index(int64_t i) const;
  void add_shard(const std::string& path, int64_t expected_records, const std::string& context);

  std::string source_;
  std::vector<Shard> shards_;
  std::vector<std::string> shard_paths_, captions_, ids_;
  std::vector<int32_t> labels_;
  bool has_labels_ = false;
};

}  // namespace pathvlm::data
