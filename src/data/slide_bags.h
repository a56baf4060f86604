// Whole slides as bags of tile features, each with its report, for slide <-> report alignment: per-slide .h5
// files in TRIDENT/CLAM layout listed by a CSV manifest (data/slide_manifest.h), and `slides` shards (written by
// `pathvlm embed`, reports from their /reports), in any mix.
//
//   SlideBagOptions o;  o.max_tiles = 4096;  o.max_bad_fraction = 0.01;
//   auto bags = SlideBagDataset::open({"train.csv", "feats/shards/"}, o);
//   log(bags.report().summary());                        // listed / usable / bad per source, with the problems
//   Loader loader("slides", bags.size(), bags.builder(/*train=*/true), loader_options);
//   // batch: features float32 [B,Nmax,D] (0 padding), coords int64 [B,Nmax,2], mask bool [B,Nmax],
//   //        slide_index int64 [B]; strings slide_id, report, label; tokens = real tiles
//
// Streaming: open() reads metadata only (shapes, dtypes, ids, reports); a batch reads only its sampled rows of each
// slide (h5::Dataset::read_row_list), through a few recently used open files (no file stays open per slide).
// Training samples min(n, max_tiles) distinct tiles per slide, a pure function of (seed, epoch, record), so a
// resumed run reads the same tiles; evaluation takes all tiles, or eval_max_tiles evenly spaced ones.
//
// Bad slides are skipped at open() and counted per source and problem: missing file, unreadable (truncated or
// damaged h5, HDF5's message), no features / coords dataset, bad features / coords (dtype or shape), features/coords
// rows differ, 0 tiles, feature width (not the width most slides have), empty or missing report. A source whose bad
// share exceeds max_bad_fraction is an error naming it, its counts and its first problems. A slide id listed
// twice (in one source or two) is an error naming both places.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "data/loader.h"

namespace pathvlm::data {

struct SlideBagOptions {
  int64_t max_tiles = 4096;       // training: tiles sampled per slide per step (all when the slide has fewer); 0 = all
  int64_t eval_max_tiles = 0;     // evaluation: 0 = all tiles, else at most this many, evenly spaced
  double max_bad_fraction = 0.0;  // share of a source's listed slides that may be missing/unreadable before open() throws
  bool reports_required = true;   // false: labelled slides for zero-shot, a missing or empty report no problem
};

struct SlideInfo {
  std::string id, report, label;
  std::string source;  // "file 'x.h5'" or "shard 'y.h5' slide 'id'"
  int64_t tiles = 0;
  int64_t patch_size_level0 = 0;  // tile edge in level-0 pixels, from the file's `patch_size_level0`; 0: not recorded
};

class SlideBagDataset {
 public:
  // Counts of one source (a CSV manifest, a shard manifest or a single shard).
  struct SourceReport {
    static constexpr size_t kReportedProblems = 5;
    std::string source;
    int64_t listed = 0, usable = 0, bad = 0;
    std::map<std::string, int64_t> problems;  // problem kind -> bad slides
    std::vector<std::string> first_problems;  // "slide 'a' (file 'a.h5'): missing file", the first few
    // "train.csv: 10 slides listed, 8 usable, 2 bad (missing file: 1, 0 tiles: 1; slide 'a' (...): ...; ...)"
    std::string summary() const;
  };
  struct Report {
    std::vector<SourceReport> sources;
    int64_t listed() const;
    int64_t usable() const;
    int64_t bad() const;
    // One log line: "slides: 2 sources, 110 listed, 108 usable, 2 bad (missing file: 1, unreadable: 1)"
    std::string summary() const;
  };

  // `sources`: `slides` shards (a manifest.json, its folder, or one .h5) and CSV manifests (.csv), in any mix;
  // slides keep the order of the sources, then of the CSV rows / shard slide groups.
  static SlideBagDataset open(const std::vector<std::string>& sources, const SlideBagOptions& options);

  int64_t size() const;
  int64_t feature_dim() const;
  const SlideInfo& slide(int64_t i) const;
  std::optional<int64_t> index_of(const std::string& slide_id) const;
  const SlideBagOptions& options() const;
  const Report& report() const;

  // The tile rows record `record` uses, sorted and distinct. Training: min(n, max_tiles) rows drawn from
  // data::record_seed(seed, epoch, record) (all rows when n <= max_tiles or max_tiles is 0); evaluation: all
  // rows, or eval_max_tiles evenly spaced ones (row i * n / k).
  std::vector<int64_t> tile_rows(int64_t record, bool train, uint64_t seed, int64_t epoch) const;

  // The features and coords of `rows` (from tile_rows) of slide `record`: float32 [k,D] and int64 [k,2].
  std::pair<torch::Tensor, torch::Tensor> read_tiles(int64_t record, const std::vector<int64_t>& rows) const;

  // The Loader's builder (thread-safe; it shares this dataset's contents, so it may outlive the object).
  BatchBuilder builder(bool train) const;

 private:
  struct Slide {
    SlideInfo info;
    std::string file;    // the .h5 holding the slide
    std::string prefix;  // "" for a per-slide file, "slides/<id>/" in a shard
  };
  struct Contents {
    SlideBagOptions options;
    std::vector<Slide> slides;
    std::unordered_map<std::string, int64_t> index;
    int64_t dim = 0;
    Report report;
  };
  class OpenFiles;

  const Slide& at(int64_t i) const;

  std::shared_ptr<const Contents> contents_;
  std::shared_ptr<OpenFiles> files_;
};

}  // namespace pathvlm::data
