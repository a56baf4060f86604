#include "data/tile_validate.h"

#include <algorithm>
#include <thread>

#include "core/error.h"
#include "core/utf8.h"

namespace pathvlm::data {

std::string caption_problem(const std::string& caption) {
  if (caption.find_first_not_of(" \t\r\n") == std::string::npos) return "empty caption";
  const size_t bad = utf8_error_at(caption);
  if (bad != std::string::npos) return str("caption is not valid UTF-8 (byte ", bad, ")");
  return "";
}

std::string record_reason(const TileDataset& dataset, int64_t i, const std::string& message) {
  const std::string prefix = dataset.where(i) + ": ";
  return message.compare(0, prefix.size(), prefix) == 0 ? message.substr(prefix.size()) : message;
}

CheckedTile check_tile_record(const TileDataset& dataset, int64_t i, const text::ClipTokenizer* tokenizer) {
  CheckedTile t;
  t.problem = caption_problem(dataset.caption(i));
  if (!t.problem.empty()) return t;
  try {
    t.image = dataset.image(i);
  } catch (const std::exception& e) {  // undecodable, too large, out of memory or unreadable storage
    t.problem = record_reason(dataset, i, e.what());
    return t;
  }
  if (tokenizer) {
    try {
      t.tokens = tokenizer->encode(dataset.caption(i));
    } catch (const std::exception& e) {
      t.image = torch::Tensor();
      t.problem = str("caption does not tokenize: ", e.what());
    }
  }
  return t;
}

TileValidateReport validate_tiles(const TileDataset& dataset, int threads) {
  TileValidateReport report;
  report.records = dataset.size();
  threads = static_cast<int>(std::clamp<int64_t>(threads, 1, std::max<int64_t>(1, report.records)));
  std::vector<std::vector<std::pair<int64_t, std::string>>> found(static_cast<size_t>(threads));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t i = t; i < report.records; i += threads) {
        std::string problem = check_tile_record(dataset, i).problem;
        if (!problem.empty()) found[static_cast<size_t>(t)].emplace_back(i, std::move(problem));
      }
    });
  for (auto& th : pool) th.join();
  for (auto& f : found) report.bad.insert(report.bad.end(), f.begin(), f.end());
  std::sort(report.bad.begin(), report.bad.end());
  return report;
}

}  // namespace pathvlm::data
