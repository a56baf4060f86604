// TileLoader: batches of tiles for CLIP, decoded and augmented by background threads with bounded prefetch.
//
// Training: an endless stream from a DistributedSampler (each rank a disjoint, deterministic share; equal
// batch counts), RandomResizedCrop + normalisation. The augmentation of a sample depends only on
// (seed, epoch, dataset index), so a run resumed from cursor() sees bit-identical batches whatever the thread
// timing. Evaluation: one pass over this rank's contiguous share of the whole dataset (every record on exactly
// one rank, the last batch may be short), resize + center crop + normalisation.
//
//   TileLoader loader(dataset, opts);          // opts.train = true
//   loader.restore(saved_cursor);              // optional, before or between batches
//   TileBatch b = *loader.next();              // images [B,3,S,S] float, captions, ids, labels
//   state["data"] = loader.cursor();           // position after the last batch returned
//   double waited = loader.take_wait_seconds();
#pragma once
#include <torch/torch.h>

#include <array>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/image.h"
#include "data/sampler.h"
#include "data/tile_shards.h"

namespace pathvlm::data {

struct TileLoaderOptions {
  int64_t batch_size = 32;  // per rank
  int rank = 0, world_size = 1;
  uint64_t seed = 0;
  bool train = true;    // train: sampler + RandomResizedCrop; eval: one ordered pass + resize/center crop
  bool shuffle = true;  // train only
  int image_size = 224;
  int workers = 2;
  int prefetch = 4;  // batches ready or in progress ahead of the consumer
  std::array<double, 2> crop_scale = {0.9, 1.0};
  std::array<double, 2> crop_ratio = {3.0 / 4.0, 4.0 / 3.0};
  std::array<double, 3> mean = kOpenAiMean, std = kOpenAiStd;
  bool pin_memory = false;  // pinned host tensors (only when CUDA is available)
};

struct TileBatch {
  torch::Tensor images;   // float [B,3,S,S], normalised
  torch::Tensor labels;   // int64 [B]; -1 where the shards have no labels
  torch::Tensor indices;  // int64 [B]: dataset record numbers
  std::vector<std::string> captions, ids;
  int64_t epoch = 0;  // train: the sampler epoch of this batch
};

// This rank's contiguous share of `n` records for evaluation: [begin, end), sizes differ by at most one.
std::pair<int64_t, int64_t> eval_share(int64_t n, int rank, int world_size);

class TileLoader {
 public:
  using Cursor = DistributedSampler::Cursor;

  TileLoader(std::shared_ptr<const TileDataset> dataset, const TileLoaderOptions& options);
  ~TileLoader();
  TileLoader(const TileLoader&) = delete;
  TileLoader& operator=(const TileLoader&) = delete;

  // The next batch; training never ends, evaluation returns nullopt after its last batch. Rethrows a worker's
  // error (e.g. an image that does not decode, naming shard and record).
  std::optional<TileBatch> next();

  // Train: the sampler position after the last batch next() returned (what a checkpoint saves).
  Cursor cursor() const;
  // Train: continue from `c` (prefetched batches are discarded). Eval: rewinds to the start.
  void restore(const Cursor& c);

  int64_t batches_per_epoch() const;  // train: the sampler's; eval: batches in this rank's pass
  int64_t dataset_size() const { return dataset_->size(); }
  // Seconds next() spent waiting for a batch since the last call (and the total since construction).
  double take_wait_seconds();
  double total_wait_seconds() const { return total_wait_; }

  // The augmented, normalised image of one record as batch `epoch` would produce it (tests, debugging).
  torch::Tensor transform(const torch::Tensor& rgb, int64_t epoch, int64_t index) const;

 private:
  struct Job {
    int64_t seq = 0, epoch = 0;
    std::vector<int64_t> indices;
    Cursor after;  // sampler cursor once this batch is taken
  };
  struct Slot {
    std::optional<TileBatch> batch;
    std::exception_ptr error;
  };
  std::optional<Job> make_job();  // under mutex_
  TileBatch build(const Job& job) const;
  void start();
  void stop();
  void worker();

  std::shared_ptr<const TileDataset> dataset_;
  TileLoaderOptions opt_;
  std::unique_ptr<DistributedSampler> sampler_;  // train
  int64_t eval_begin_ = 0, eval_end_ = 0, eval_next_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::map<int64_t, Slot> done_;
  std::map<int64_t, Cursor> cursor_after_;
  int64_t next_seq_ = 0, consume_seq_ = 0;
  bool stopping_ = false, exhausted_ = false;
  Cursor consumed_cursor_;
  std::vector<std::thread> threads_;
  double wait_since_take_ = 0, total_wait_ = 0;
};

}  // namespace pathvlm::data
