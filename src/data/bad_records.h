// The bad training records a run met (data/tile_validate.h says what is bad): counted, listed in the run's
// bad_records.csv and, past a share of the dataset, a stop with a clear error; never a crash on record 5 of a
// million.
//
// Every rank holds the same log: the task adds the union of the records all ranks replaced in a step (sorted),
// so the count, the CSV and the step at which a run stops are the same for any number of ranks.
//
//   BadRecordLog bad(dataset, tokenizer, run_dir + "/bad_records.csv", rank == 0, 0.01, "clip.data.max_bad_fraction");
//   bad.add({5, 17});            // logs and lists the new ones; throws once more than 1% of the records are bad
//   state["bad_records"] = bad.records();   // resume: bad.restore(...)
//
// bad_records.csv (docs/formats.md): index,shard,record,id,reason, one row per bad record in the order met;
// appended to by a resumed run (rows already there are not repeated).
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "data/tile_shards.h"
#include "text/clip_tokenizer.h"

namespace pathvlm::data {

class BadRecordLog {
 public:
  // `tokenizer` (may be null): the loader's, so the listed reasons are the loader's. `writer`: this process logs and
  // writes the CSV (rank 0). `max_fraction` in [0, 1]; `key` is the config key the error names.
  BadRecordLog(std::shared_ptr<const TileDataset> dataset, std::shared_ptr<const text::ClipTokenizer> tokenizer,
               std::string csv_path, bool writer, double max_fraction, std::string key);

  // Records not met before are logged (the first few one by one, then the count at each doubling) and appended
  // to the CSV; throws once more than max_fraction of the dataset is bad.
  void add(const std::vector<int64_t>& records);
  // The records of a checkpoint's state (no logging, no CSV rows, no fraction check).
  void restore(const std::vector<int64_t>& records);

  std::vector<int64_t> records() const { return {met_.begin(), met_.end()}; }
  int64_t count() const { return static_cast<int64_t>(met_.size()); }
  const std::string& csv_path() const { return csv_path_; }

 private:
  std::ofstream open_csv() const;  // with its header when new

  std::shared_ptr<const TileDataset> dataset_;
  std::shared_ptr<const text::ClipTokenizer> tokenizer_;
  std::string csv_path_, key_;
  bool writer_ = false;
  double max_fraction_ = 0;
  std::set<int64_t> met_, listed_;  // listed_: indices already in the CSV (a resumed run's file)
};

}  // namespace pathvlm::data
