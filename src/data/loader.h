// Loader: batches of any dataset, built by worker threads and handed out in order with bounded prefetch.
//
// A dataset plugs in as a BatchBuilder: a function that builds the Batch of a list of record indices (it runs
// in the workers, several at once, so it must be thread-safe). The loader decides which records:
//   train: an endless stream from a DistributedSampler (each rank a disjoint, deterministic share; equal batch
//          counts); cursor() is the sampler position after the last batch next() returned, restore() continues
//          from one, so a resumed run sees the identical stream.
//   eval:  one pass over this rank's contiguous share of the records (every record on exactly one rank, the
//          last batch may be short), then next() returns nullopt.
// Randomness is per record: BatchRequest::generator(k) is seeded from (seed, epoch, record) only, so a batch's
// content does not depend on which worker built it or when. Each worker runs libtorch's CPU ops on one
// OpenMP thread: `workers` threads already keep the cores busy, and OpenMP teams per worker would
// oversubscribe them. When the target device is CUDA (and one is available) the builders allocate pinned
// host memory and next() copies without blocking.
//
// LoaderOptions::finish_on_device completes a batch where its tensors are on the target device: a builder can
// emit compact data (uint8 images: a quarter of float32's bytes over PCIe) and the hook converts it there (the
// TileLoader normalises its pixels so). On the CPU it runs in the worker after the builder; on another device
// in next(), after the copy. On CUDA, when next() hands out a batch and the following one is already built,
// the following one's copy and hook start on a side stream (overlapping the step on the current stream) and the
// next next() orders the current stream after them with an event: no host synchronisation. A batch uploaded
// ahead still counts as consumed only when next() hands it out, so cursor() and restore() are unchanged.
//
//   Loader loader("tiles 'x'", dataset.size(), builder, options);
//   loader.restore(saved_cursor);              // optional, before or between batches
//   data::Batch b = *loader.next();            // on options.device
//   state["data"] = loader.cursor();
#pragma once
#include <torch/torch.h>

#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "data/sampler.h"

namespace pathvlm::data {

// One batch: named tensors (first dimension = samples) and per-sample strings.
struct Batch {
  std::map<std::string, torch::Tensor> tensors;  // delivered on LoaderOptions::device
  std::map<std::string, torch::Tensor> host;     // stay in host memory: bookkeeping read without waiting for a GPU
  std::map<std::string, std::vector<std::string>> strings;
  int64_t samples = 0;  // rows in this batch
  int64_t tokens = 0;   // tokens (or patches) processed, for throughput; 0 when not meaningful
  int64_t epoch = 0;    // the sampler epoch the batch belongs to (0 in evaluation)

  const torch::Tensor& at(const std::string& key) const;                 // throws naming the missing key
  const torch::Tensor& host_at(const std::string& key) const;            // throws naming the missing key
  const std::vector<std::string>& text(const std::string& key) const;    // throws naming the missing key
};

// The augmentation seed of one record: a function of (run seed, epoch, record) only.
uint64_t record_seed(uint64_t seed, int64_t epoch, int64_t record);

// What a builder is asked for.
struct BatchRequest {
  std::vector<int64_t> records;
  int64_t epoch = 0;
  uint64_t seed = 0;
  bool pinned = false;  // allocate host tensors in pinned memory (set only when CUDA is available)

  // Host tensor options of `dtype`, pinned when asked.
  torch::TensorOptions host(torch::Dtype dtype) const;
  // A CPU generator for records[row], seeded by record_seed.
  at::Generator generator(int64_t row) const;
  // fill(row, record) for every record; an exception is rethrown naming the record it came from.
  void for_each(const std::function<void(int64_t row, int64_t record)>& fill) const;
};

using BatchBuilder = std::function<Batch(const BatchRequest&)>;

// This rank's contiguous share of `n` records for evaluation, [begin, end): whole batches of the one-process
// pass (batch boundaries at multiples of `batch_size`), spread as evenly as whole batches allow. Every record is
// then computed in the same batch whatever the world size, so evaluation results are bitwise the same on any
// number of ranks (a batch's composition changes the last bits of a matmul, and near-ties in rankings flip).
std::pair<int64_t, int64_t> eval_share(int64_t n, int64_t batch_size, int rank, int world_size);

struct LoaderOptions {
  int64_t batch_size = 32;  // per rank
  int rank = 0, world_size = 1;
  uint64_t seed = 0;    // sampler order and BatchRequest::seed
  bool train = true;    // train: endless sampler stream; eval: one ordered pass over this rank's share
  bool shuffle = true;  // train only
  DistributedSampler::EpochOrder epoch_order;  // train only: replaces the shuffle (length grouping)
  int workers = 2;
  int prefetch = 4;     // batches ready or being built ahead of the consumer
  torch::Device device = torch::kCPU;  // where next() delivers the tensors
  bool pin_memory = true;              // pinned host memory + non-blocking copies when `device` is CUDA
  // Run once per batch once its tensors are on `device` (see above); thread-safe (on the CPU it runs in the
  // workers) and must not call the loader. Null: none.
  std::function<void(Batch&)> finish_on_device;

  // A copy for a loader of `size` records per rank per batch, training (endless stream) or evaluation (one pass).
  LoaderOptions batches(int64_t size, bool train_stream) const {
    LoaderOptions o = *this;
    o.batch_size = size;
    o.train = train_stream;
    return o;
  }
};

class Loader {
 public:
  using Cursor = DistributedSampler::Cursor;

  // `name` says what is loaded in errors ("tiles '/data/x'"); `records` is the dataset size.
  Loader(std::string name, int64_t records, BatchBuilder build, const LoaderOptions& options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // The next batch; training never ends, evaluation returns nullopt after its last batch. Rethrows a builder's
  // error, naming the loader, the epoch and (through BatchRequest::for_each) the record.
  std::optional<Batch> next();

  // Train: the sampler position after the last batch next() returned (what a checkpoint saves).
  Cursor cursor() const;
  // Train: continue from `c` (prefetched batches are discarded). Eval: rewinds to the start.
  void restore(const Cursor& c);

  int64_t batches_per_epoch() const;  // train: the sampler's; eval: batches in this rank's pass
  int64_t records() const { return records_; }
  const LoaderOptions& options() const { return opt_; }
  // Seconds next() spent waiting for a batch since the last call (and the total since construction).
  double take_wait_seconds();
  double total_wait_seconds() const;

 private:
  struct Job {
    int64_t seq = 0;
    BatchRequest request;
    Cursor after;  // sampler cursor once this batch is taken
  };
  struct Slot {
    std::optional<Batch> batch;
    std::exception_ptr error;
    Cursor after;
    // Set when the batch's upload was started ahead on a CUDA side stream: orders the current stream after it.
    std::function<void(Batch&)> finish_upload;
  };
  std::optional<Job> make_job();  // under mutex_
  Batch build(const BatchRequest& request) const;
  void to_device(Batch& batch) const;  // copy to opt_.device, then finish_on_device
  void start();
  void stop();
  void worker();

  std::string name_;
  int64_t records_;
  BatchBuilder build_;
  LoaderOptions opt_;
  bool pinned_ = false;
  std::unique_ptr<DistributedSampler> sampler_;  // train
  int64_t eval_begin_ = 0, eval_end_ = 0, eval_next_ = 0;

  mutable std::mutex mutex_;
  std::condition_variable ready_cv_, space_cv_;
  std::map<int64_t, Slot> done_;
  int64_t next_seq_ = 0, consume_seq_ = 0;
  bool stopping_ = false, exhausted_ = false;
  Cursor consumed_cursor_;
  std::vector<std::thread> threads_;
  double wait_since_take_ = 0, total_wait_ = 0;
};

}  // namespace pathvlm::data
