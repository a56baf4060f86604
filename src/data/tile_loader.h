// TileLoader: the Loader (data/loader.h) over tile shards, for CLIP.
//
// Train: RandomResizedCrop, flips, open_clip's colour jitter and gray scale when asked (data/color_augment.h), then
// normalisation; the draws seeded per record (record_seed), so a run resumed from cursor() sees bit-identical
// batches whatever the thread timing. Eval: resize + center crop + normalisation.
// The workers crop to uint8 [3,S,S]; the normalisation runs where the batch arrives (LoaderOptions::
// finish_on_device, normalize_pixels): on a GPU after the upload, so a quarter of float32's bytes cross PCIe, and
// on the CPU in the workers. Either way the pixels equal normalize_image's of each crop (bitwise on the CPU).
// With a tokenizer the workers also tokenize the captions, off the training thread.
//
// Records are checked as data/tile_validate.h says (caption, image decode within max_image_pixels(), tokens).
// A bad record is an error naming its shard and record, or with skip_bad_records (training) is replaced by the
// first good record after it: a function of the record alone, so every batch is the same for any number of
// ranks and any thread timing; "bad_records" tells the task which were replaced (data/bad_records.h counts them).
//
//   TileLoader loader(dataset, opts);          // opts.train = true, opts.tokenizer = tok
//   data::Batch b = *loader.next();
//   b.at("pixels");      // float [B,3,S,S], normalised, on options.device
//   b.at("input_ids");   // int64 [B,context] (with a tokenizer)
//   b.at("labels");      // int64 [B]; -1 where the shards have no labels
//   b.at("indices");     // int64 [B]: dataset record numbers (of the replacement where a record was bad)
//   b.host_at("bad_records"); // int64 [B] in host memory: the bad record a row replaced, -1 where none
//   b.text("captions"), b.text("ids");
#pragma once
#include <torch/torch.h>

#include <array>
#include <memory>

#include "data/color_augment.h"
#include "data/image.h"
#include "data/loader.h"
#include "data/tile_shards.h"
#include "text/clip_tokenizer.h"

namespace pathvlm::data {

struct TileLoaderOptions : LoaderOptions {
  int image_size = 224;
  std::array<double, 2> crop_scale = {0.9, 1.0};
  std::array<double, 2> crop_ratio = {3.0 / 4.0, 4.0 / 3.0};
  std::array<double, 3> mean = kOpenAiMean, std = kOpenAiStd;
  Interpolation interpolation = Interpolation::bicubic;  // evaluation's resize (the model's own filter)
  double hflip_prob = 0, vflip_prob = 0;  // training only, after the crop
  ColorAugment color;                     // training only, after the flips
  std::shared_ptr<const text::ClipTokenizer> tokenizer;  // null: no "input_ids"
  bool skip_bad_records = false;  // replace bad records instead of failing
};

// The workers' batches: the tensors and strings above, but "pixels" uint8 [B,3,S,S] (what is copied to the
// device; the TileLoader normalises it there). Public for tests and benchmarks.
BatchBuilder tile_batch_builder(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options);

class TileLoader : public Loader {
 public:
  TileLoader(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options);

  int64_t dataset_size() const { return records(); }
  // The augmented, normalised image of one record as batch `epoch` would produce it (tests, debugging).
  torch::Tensor transform(const torch::Tensor& rgb, int64_t epoch, int64_t index) const;

 private:
  TileLoaderOptions tile_opt_;
};

}  // namespace pathvlm::data
