#include "data/bad_records.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "data/csv.h"
#include "data/tile_validate.h"

namespace pathvlm::data {

namespace {
constexpr int64_t kLoggedOneByOne = 10;  // then only the count, at each doubling
}

BadRecordLog::BadRecordLog(std::shared_ptr<const TileDataset> dataset, std::shared_ptr<const text::ClipTokenizer> tokenizer,
                           std::string csv_path, bool writer, double max_fraction, std::string key)
    : dataset_(std::move(dataset)),
      tokenizer_(std::move(tokenizer)),
      csv_path_(std::move(csv_path)),
      key_(std::move(key)),
      writer_(writer),
      max_fraction_(max_fraction) {
  PATHVLM_CHECK(dataset_, "BadRecordLog: no dataset");
  PATHVLM_CHECK(max_fraction_ >= 0.0 && max_fraction_ <= 1.0, key_, " must be in [0, 1], got ", max_fraction_);
  if (!writer_ || !std::filesystem::exists(csv_path_)) return;
  // A resumed run appends: the records already listed are not listed again.
  auto rows = parse_csv(data::read_text_file(csv_path_, "bad records list"), ',', csv_path_, "bad records list");
  for (size_t r = 1; r < rows.size(); ++r) {
    const std::string& index = rows[r].fields[0];
    PATHVLM_CHECK(!index.empty() && index.find_first_not_of("0123456789") == std::string::npos, "bad records list '",
                  csv_path_, "' line ", rows[r].line, ": index '", index, "' is not a record number (remove the file "
                  "to start the list again)");
    listed_.insert(std::stoll(index));
  }
}

void BadRecordLog::restore(const std::vector<int64_t>& records) { met_.insert(records.begin(), records.end()); }

void BadRecordLog::add(const std::vector<int64_t>& records) {
  std::vector<int64_t> fresh;
  for (int64_t i : records)
    if (met_.insert(i).second) fresh.push_back(i);
  if (fresh.empty()) return;
  const int64_t total = dataset_->size(), bad = count();
  if (writer_) {
    std::ofstream csv = open_csv();
    for (size_t k = 0; k < fresh.size(); ++k) {
      const int64_t i = fresh[k];
      std::string reason = check_tile_record(*dataset_, i, tokenizer_.get()).problem;
      if (reason.empty()) reason = "failed while training but decodes when checked again (out of memory?)";
      const int64_t n = bad - static_cast<int64_t>(fresh.size()) + static_cast<int64_t>(k) + 1;
      if (n <= kLoggedOneByOne)
        log_warn("skipping bad training record ", dataset_->where(i), ": ", reason, " (", n, " so far",
                 n == kLoggedOneByOne ? str("; further ones are only counted, all are listed in '", csv_path_, "'")
                                      : "",
                 ")");
      else if ((n & (n - 1)) == 0)
        log_warn(n, " bad training records skipped so far (of ", total, "; listed in '", csv_path_, "')");
      if (!listed_.insert(i).second) continue;
      const auto [shard, local] = dataset_->locate(i);
      csv << i << "," << csv_field(shard) << "," << local << "," << csv_field(dataset_->id(i)) << ","
          << csv_field(reason) << "\n";
    }
    PATHVLM_CHECK(csv.flush(), "cannot write '", csv_path_, "'");
  }
  const double allowed = max_fraction_ * static_cast<double>(total);
  PATHVLM_CHECK(static_cast<double>(bad) <= allowed, bad, " of the ", total, " training records are bad (",
                100.0 * static_cast<double>(bad) / static_cast<double>(total), "%), more than ", key_, " = ",
                max_fraction_, " allows; their reasons are in '", csv_path_,
                "' (check the shards with `pathvlm shards validate`, or raise ", key_, ")");
}

std::ofstream BadRecordLog::open_csv() const {
  const bool fresh_file = !std::filesystem::exists(csv_path_);
  std::ofstream out(csv_path_, std::ios::app);
  PATHVLM_CHECK(out, "cannot write '", csv_path_, "'");
  if (fresh_file) out << "index,shard,record,id,reason\n";
  return out;
}

}  // namespace pathvlm::data
