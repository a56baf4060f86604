// Reducer: data-parallel gradient synchronisation, DDP-style, for the trainer's optimizer.
//
// Parameters are packed into flat buckets (homogeneous in dtype and `decay`, filled in reverse
// registration order because gradients become ready in about that order; the first bucket of each kind
// is small so communication starts early). Each parameter's storage becomes a view of its bucket's
// parameter buffer. A hook on every parameter's gradient accumulator marks the parameter ready; a bucket
// is communicated the moment its last gradient is in, overlapping the rest of backward. Buckets always
// launch in index order, so every rank issues the same sequence.
//
//   Reducer reducer(params, *comm, job.dist);          // broadcasts rank 0's initial parameters
//   for each step:
//     for each micro-step m:
//       reducer.prepare_backward(/*sync=*/m == last);
//       loss.backward();
//     reducer.finish_backward();                       // grads are now averaged over ranks
//     optimizer.step(reducer.local_shards());          // whole buckets, or this rank's shard of each
//     if (reducer.sharded()) reducer.gather_params();  // ZeRO: all-gather the updated shards
//     reducer.zero_grad();
//
// Unsharded (DDP): each parameter's .grad is a view of a persistent full-size bucket gradient, so autograd
// accumulates straight into it and the bucket is allreduced (averaged) in place. Accumulation micro-steps
// (sync=false) communicate nothing; the synchronising one allreduces the sum. Keep .grad defined (a
// replaced .grad is copied back into the bucket at the next prepare_backward / zero_grad).
//
// Sharded (dist.shard_optimizer, ZeRO-2): a rank keeps only the averaged gradient of its 1/world slice
// of every bucket (local_shards(), persistent), and only that slice is updated. Autograd allocates each
// parameter's gradient; the hook copies it into its bucket's gradient buffer (allocated when the bucket's
// first gradient arrives) and drops the parameter's .grad; the complete bucket is reduce-scattered into
// this rank's shard, and the buffer is freed once the collective is done. Full-size gradients thus exist
// only while their bucket fills and communicates. The price: with gradient accumulation every micro-step
// reduce-scatters (a sum of full gradients cannot be kept locally), so sharding multiplies gradient
// traffic by the number of micro-steps, where the unsharded path communicates once per step.
// Parameter .grad stays undefined after a sharded backward.
//
// Parameters with requires_grad false are left out (never communicated). A parameter that got no
// gradient in a synchronising backward is an error naming it, unless find_unused (then its gradient
// counts as zero and its bucket is still communicated, so every rank agrees). In a sharded accumulation
// micro-step a parameter without a gradient always counts as zero (as the unsharded path, which checks
// only the synchronising micro-step, would accept it).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/compat.h"
#include "dist/comm.h"
#include "dist/dist_config.h"

namespace pathvlm::dist {

struct NamedParam {
  std::string name;
  torch::Tensor param;
  bool decay = true;
};

// Bucket assignment by size (bytes caps), as index lists into `params`, in launch order.
std::vector<std::vector<size_t>> assign_buckets(const std::vector<NamedParam>& params, int64_t first_bucket_bytes,
                                                int64_t bucket_bytes);

// A bucket of `numel` elements padded to equal chunks for reduce-scatter / all-gather, and the part of it rank
// `rank` of `world` updates when sharded: [start, start + count) (the last ranks may hold padding only).
struct BucketSlice {
  int64_t padded = 0, chunk = 0, start = 0, count = 0;
};
BucketSlice bucket_slice(int64_t numel, int world, int rank);

class Reducer {
 public:
  Reducer(std::vector<NamedParam> params, Comm& comm, const DistConfig& cfg);
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Before each micro-step's backward. sync=false: an accumulation micro-step (unsharded: nothing is
  // communicated; sharded: completes the previous micro-step's communication first).
  void prepare_backward(bool sync);
  // After the last micro-step's backward: waits for every bucket (unsharded: returns at once after a
  // non-synchronising one). Throws pathvlm::Error naming parameters that got no gradient (unless find_unused).
  void finish_backward();
  // Zeroes every gradient (unsharded: the bucket views in place; sharded: the shards, and drops any .grad).
  void zero_grad();

  struct Shard {
    torch::Tensor param, grad;  // flat, this rank's range
    bool decay;
    int64_t flat_offset;  // in the flat space of all buckets in order (identifies optimizer state)
    int64_t numel;
  };
  // The ranges this rank's optimizer updates: whole buckets when unsharded; 1/world of each bucket when sharded.
  const std::vector<Shard>& local_shards() const { return shards_; }
  bool sharded() const { return sharded_; }
  // Sharded only: all-gathers the updated shards back into the full parameters.
  void gather_params();
  Comm& comm() { return comm_; }

  struct BucketInfo {
    std::vector<std::string> params;
    int64_t numel;
    torch::ScalarType dtype;
    bool decay;
  };
  std::vector<BucketInfo> buckets() const;

  // Bytes this rank holds for the model (the optimizer state is local_numel x its bytes per element).
  struct Memory {
    int64_t param_bytes = 0;        // flat parameter buffers (padded to a multiple of the world size)
    int64_t grad_bytes = 0;         // persistent full-size gradient buffers (unsharded only; 0 when sharded)
    int64_t shard_grad_bytes = 0;   // reduced gradient shards (sharded only)
    int64_t local_numel = 0;        // elements this rank's optimizer updates
    int64_t total_numel = 0;        // elements of all trainable parameters
    // Sharded only: the most bytes of transient bucket gradient buffers (and reduce-scatter outputs) alive
    // at once so far. Autograd's own per-parameter gradients, each freed once copied, are not counted.
    int64_t peak_transient_grad_bytes = 0;
  };
  Memory memory() const;
  // What memory() will say for `params` (frozen ones skipped) on rank `rank` of `world`, from their shapes and
  // dtypes alone: nothing is allocated or communicated, so meta tensors of a model too large for this machine do.
  static Memory plan(const std::vector<NamedParam>& params, int world, int rank, const DistConfig& cfg);

  // "bucket_launch:i", "bucket_done:i", "backward_end" since the last prepare_backward (tests).
  std::vector<std::string> events() const;

 private:
  struct Bucket {
    std::vector<size_t> members;
    torch::ScalarType dtype;
    bool decay = true;
    int64_t numel = 0, padded = 0, flat_offset = 0;
    torch::Tensor data;
    // Unsharded: persistent, the .grad views point into it. Sharded: transient, defined only from the
    // bucket's first gradient until its reduce-scatter is done.
    torch::Tensor grad;
    torch::Tensor shard_grad;         // sharded: this rank's averaged slice, accumulated over micro-steps
    torch::Tensor shard_incoming;     // sharded: reduce-scatter output when shard_grad already holds gradient
    bool shard_holds_grad = false;    // sharded: shard_grad holds gradient since the last zero_grad
    int pending = 0;
    std::unique_ptr<Work> work;
  };
  struct Slot {
    NamedParam named;
    int bucket = 0;
    int64_t offset = 0;  // within the bucket
    bool ready = false;
    torch::Tensor grad_view;  // unsharded only
    compat::AutogradNodePtr accumulator;
    uintptr_t hook_key = 0;
  };

  void mark_ready(size_t slot);  // from the gradient-accumulator hook (any autograd thread)
  void take_grad(Slot& slot);    // sharded, with mutex_ held: moves the parameter's .grad into its bucket
  void launch_ready_buckets();   // with mutex_ held
  void finish_bucket(size_t i);  // with mutex_ held: after its collective; sharded: accumulate, free buffers
  void wait_launched();          // finishes every launched bucket, in index order
  // Ends an armed backward: waits for every bucket. Parameters without a gradient count as zero when
  // `unused_ok`, else they are an error naming them.
  void complete_backward(bool unused_ok);
  // Sharded transient buffers (bucket gradients, reduce-scatter outputs), counted for memory(); mutex_ held.
  torch::Tensor new_transient(const Bucket& b, int64_t numel);
  void free_transient(torch::Tensor& t);
  void restore_grad_views();

  Comm& comm_;
  DistConfig cfg_;
  bool sharded_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<Shard> shards_;
  mutable std::mutex mutex_;
  bool armed_ = false;  // a communicating backward is under way (sharded: every micro-step)
  bool sync_ = false;   // the armed backward is the step's synchronising micro-step
  int64_t transient_bytes_ = 0, peak_transient_bytes_ = 0;
  size_t next_launch_ = 0, next_done_ = 0;  // buckets [next_done_, next_launch_) are in flight
  std::vector<std::string> events_;
};

}  // namespace pathvlm::dist
