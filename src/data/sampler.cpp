#include "data/sampler.h"

#include "core/error.h"

namespace pathvlm::data {
namespace {

// splitmix64: a tiny, portable generator, so the order is identical across compilers and libtorch versions.
struct SplitMix64 {
  uint64_t state;
  uint64_t next() {
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound) without modulo bias (rejection of the short tail).
  uint64_t below(uint64_t bound) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
    uint64_t x;
    do x = next(); while (x >= limit);
    return x % bound;
  }
};

}  // namespace

DistributedSampler::DistributedSampler(int64_t dataset_size, int64_t batch_size_per_rank, int rank,
                                       int world_size, uint64_t seed, bool shuffle, EpochOrder order)
    : dataset_size_(dataset_size),
      batch_size_(batch_size_per_rank),
      rank_(rank),
      world_size_(world_size),
      seed_(seed),
      shuffle_(shuffle),
      custom_order_(std::move(order)) {
  PATHVLM_CHECK(world_size >= 1 && rank >= 0 && rank < world_size, "sampler: rank ", rank,
                " is outside world size ", world_size);
  PATHVLM_CHECK(batch_size_per_rank >= 1, "sampler: batch size per rank must be >= 1, got ", batch_size_per_rank);
  const int64_t global = batch_size_per_rank * world_size;
  PATHVLM_CHECK(dataset_size >= global, "sampler: the dataset has ", dataset_size,
                " samples, fewer than one global batch (", batch_size_per_rank, " per rank x ", world_size,
                " ranks = ", global, ")");
  batches_per_epoch_ = dataset_size / global;
}

std::vector<int64_t> DistributedSampler::epoch_order(int64_t epoch) const {
  if (custom_order_) {
    auto order = custom_order_(epoch);
    PATHVLM_CHECK(static_cast<int64_t>(order.size()) == dataset_size_, "sampler: the epoch order of epoch ", epoch,
                  " has ", order.size(), " indices for a dataset of ", dataset_size_);
    return order;
  }
  std::vector<int64_t> order(static_cast<size_t>(dataset_size_));
  for (int64_t i = 0; i < dataset_size_; ++i) order[static_cast<size_t>(i)] = i;
  if (!shuffle_) return order;
  SplitMix64 rng{seed_ * 0x2545F4914F6CDD1Dull ^ (static_cast<uint64_t>(epoch) + 0x632BE59BD9B4E019ull)};
  rng.next();
  for (int64_t i = dataset_size_ - 1; i > 0; --i) {  // Fisher-Yates
    auto j = static_cast<int64_t>(rng.below(static_cast<uint64_t>(i + 1)));
    std::swap(order[static_cast<size_t>(i)], order[static_cast<size_t>(j)]);
  }
  return order;
}

void DistributedSampler::ensure_epoch(int64_t epoch) {
  if (cached_epoch_ == epoch) return;
  order_ = epoch_order(epoch);
  cached_epoch_ = epoch;
}

std::vector<int64_t> DistributedSampler::next_batch() {
  if (cursor_.batch >= batches_per_epoch_) cursor_ = {cursor_.epoch + 1, 0};
  ensure_epoch(cursor_.epoch);
  const int64_t start = (cursor_.batch * world_size_ + rank_) * batch_size_;
  std::vector<int64_t> batch(order_.begin() + start, order_.begin() + start + batch_size_);
  ++cursor_.batch;
  return batch;
}

void DistributedSampler::restore(const Cursor& c) {
  PATHVLM_CHECK(c.epoch >= 0 && c.batch >= 0 && c.batch <= batches_per_epoch_, "sampler: cannot restore cursor (epoch ",
                c.epoch, ", batch ", c.batch, "): an epoch has ", batches_per_epoch_,
                " batches (dataset ", dataset_size_, ", batch ", batch_size_, " x ", world_size_,
                " ranks); was the checkpoint written with another dataset, batch size or world size?");
  cursor_ = c;
}

}  // namespace pathvlm::data
