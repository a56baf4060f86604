// Reducer: data-parallel gradient synchronisation, DDP-style, for the trainer's optimizer.
//
// Parameters are packed into flat buckets (homogeneous in dtype and `decay`, filled in reverse
// registration order because gradients become ready in about that order; the first bucket of each kind
// is small so communication starts early). Each parameter's storage and its .grad become views of the
// bucket buffers, so autograd accumulates straight into them. A hook on every parameter's gradient
// accumulator launches a bucket's allreduce (averaged) the moment its last gradient is in, overlapping
// the rest of backward; buckets always launch in index order, so every rank issues the same sequence.
//
//   Reducer reducer(params, *comm, job.dist);          // broadcasts rank 0's initial parameters
//   for each step:
//     for each micro-step m:
//       reducer.prepare_backward(/*sync=*/m == last);  // sync=false: accumulate locally, no communication
//       loss.backward();
//     reducer.finish_backward();                       // grads are now averaged over ranks
//     optimizer.step(reducer.local_shards());          // whole buckets, or this rank's shard of each
//     if (reducer.sharded()) reducer.gather_params();  // ZeRO: all-gather the updated shards
//     reducer.zero_grad();                             // zeroes the buckets (keep .grad defined!)
//
// Sharded (dist.shard_optimizer): gradients are reduce-scattered instead; each rank's local_shards()
// hold the averaged gradient of its 1/world slice of every bucket, and only that slice is updated.
// Only local_shards() grads are reduced then; parameter .grad views hold this rank's local gradients.
// Parameters with requires_grad false are left out (never communicated). A parameter that got no
// gradient in a synchronising backward is an error naming it, unless find_unused (then its gradient
// counts as zero and its bucket is still communicated, so every rank agrees).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

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

class Reducer {
 public:
  Reducer(std::vector<NamedParam> params, Comm& comm, const DistConfig& cfg);
  ~Reducer();
  Reducer(const Reducer&) = delete;
  Reducer& operator=(const Reducer&) = delete;

  // Before each micro-step's backward. sync=false: gradients accumulate locally, nothing is communicated.
  void prepare_backward(bool sync);
  // After the synchronising micro-step's backward: waits for every bucket. Returns at once after a
  // non-synchronising one. Throws pathvlm::Error naming parameters that got no gradient (unless find_unused).
  void finish_backward();
  // Zeroes every gradient in place (the .grad views must stay defined: never set them to None).
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
    int64_t grad_bytes = 0;         // flat gradient buffers
    int64_t shard_grad_bytes = 0;   // reduced gradient shards (sharded only)
    int64_t local_numel = 0;        // elements this rank's optimizer updates
    int64_t total_numel = 0;        // elements of all trainable parameters
  };
  Memory memory() const;

  // "bucket_launch:i", "bucket_done:i", "backward_end" since the last prepare_backward (tests).
  std::vector<std::string> events() const;

 private:
  struct Bucket {
    std::vector<size_t> members;
    torch::ScalarType dtype;
    bool decay = true;
    int64_t numel = 0, padded = 0, flat_offset = 0;
    torch::Tensor data, grad, shard_grad;
    int pending = 0;
    std::unique_ptr<Work> work;
  };
  struct Slot {
    NamedParam named;
    int bucket = 0;
    int64_t offset = 0;  // within the bucket
    bool ready = false;
    torch::Tensor grad_view;
    std::shared_ptr<torch::autograd::Node> accumulator;
    uintptr_t hook_key = 0;
  };

  void mark_ready(size_t slot);  // from the gradient-accumulator hook (any autograd thread)
  void launch_ready_buckets();   // with mutex_ held
  void wait_launched();
  void restore_grad_views();

  Comm& comm_;
  DistConfig cfg_;
  bool sharded_;
  std::vector<Slot> slots_;
  std::vector<Bucket> buckets_;
  std::vector<Shard> shards_;
  mutable std::mutex mutex_;
  bool armed_ = false;  // a synchronising backward is under way
  size_t next_launch_ = 0;
  std::vector<std::string> events_;
};

}  // namespace pathvlm::dist
