// DistributedSampler: which dataset indices each rank reads, batch by batch, epoch after epoch.
//
// Deterministic in (seed, epoch): the epoch's permutation depends on nothing else, so global batch k is
// perm[k*B*W, (k+1)*B*W) and rank r takes its slice [r*B, (r+1)*B). Hence 2 ranks x batch b see exactly
// the samples 1 rank x batch 2b sees, every rank gets the same number of batches (the tail that does not
// fill a global batch is dropped), and shares are disjoint. The cursor (epoch, batches taken) goes into
// checkpoints; restoring it continues the sequence exactly.
//
//   DistributedSampler s(n, batch, comm.rank(), comm.size(), cfg.seed);
//   s.restore(saved_cursor);
//   auto idx = s.next_batch();   // B indices of this rank
//
// Another epoch order (length grouping, data/length_grouped.h) plugs in as `order`: a pure function of the epoch
// returning a permutation of the dataset, read the same way.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

namespace pathvlm::data {

class DistributedSampler {
 public:
  // The order of one epoch: a permutation of 0..dataset_size-1 that depends on the epoch alone.
  using EpochOrder = std::function<std::vector<int64_t>(int64_t epoch)>;

  // With `order` set, `shuffle` is ignored and epochs follow it.
  DistributedSampler(int64_t dataset_size, int64_t batch_size_per_rank, int rank, int world_size,
                     uint64_t seed, bool shuffle = true, EpochOrder order = nullptr);

  // This rank's indices of the next batch; after the last batch of an epoch it rolls over to the next.
  std::vector<int64_t> next_batch();

  struct Cursor {
    int64_t epoch = 0;
    int64_t batch = 0;  // batches already taken in `epoch`
  };
  Cursor cursor() const { return cursor_; }
  void restore(const Cursor& c);

  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  int64_t dataset_size() const { return dataset_size_; }
  int64_t batch_size() const { return batch_size_; }
  int rank() const { return rank_; }
  int world_size() const { return world_size_; }

  // The whole epoch's order (identity without shuffle, `order`'s when set); the same on every rank (and, without
  // `order`, every world size).
  std::vector<int64_t> epoch_order(int64_t epoch) const;

 private:
  void ensure_epoch(int64_t epoch);

  int64_t dataset_size_, batch_size_;
  int rank_, world_size_;
  uint64_t seed_;
  bool shuffle_;
  EpochOrder custom_order_;
  int64_t batches_per_epoch_;
  Cursor cursor_;
  int64_t cached_epoch_ = -1;
  std::vector<int64_t> order_;
};

}  // namespace pathvlm::data
