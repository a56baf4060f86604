// What training asks of each tiles record, in one place for `shards validate` (every record), the training loader
// (records that fail are replaced, data/tile_loader.h) and the run's bad_records.csv (data/bad_records.h).
//
//   CheckedTile t = check_tile_record(dataset, 17);   // t.image, or t.problem: "corrupt JPEG data (...)"
//   TileValidateReport r = validate_tiles(dataset);   // every record, decoded as training decodes it
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "data/tile_shards.h"
#include "text/clip_tokenizer.h"

namespace pathvlm::data {

// "" when `caption` can be trained on; else "empty caption" or "caption is not valid UTF-8 (byte 12)".
std::string caption_problem(const std::string& caption);

// Record i decoded with the decoder and limits of training (decode_image, max_image_pixels()) and, with a
// tokenizer, its caption tokenized: the image and tokens, or the reason it cannot be used (caption, image, then
// tokenizer). The reason does not repeat where(i).
struct CheckedTile {
  torch::Tensor image;          // RGB uint8 [H,W,3]; undefined when `problem` is set
  std::vector<int64_t> tokens;  // with a tokenizer
  std::string problem;
};
CheckedTile check_tile_record(const TileDataset& dataset, int64_t i, const text::ClipTokenizer* tokenizer = nullptr);

// An error message of record i without its place (the "<where(i)>: " that decode errors start with).
std::string record_reason(const TileDataset& dataset, int64_t i, const std::string& message);

struct TileValidateReport {
  int64_t records = 0;
  std::vector<std::pair<int64_t, std::string>> bad;  // (record, reason), in record order
};
// check_tile_record of every record, on `threads` threads.
TileValidateReport validate_tiles(const TileDataset& dataset, int threads = 2);

}  // namespace pathvlm::data
