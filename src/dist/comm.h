// Comm: the collectives every distributed part uses, over MPI (CPU tensors) or NCCL (CUDA tensors).
//
// Every call is blocking from the caller's point of view unless it returns a Work handle; each has a
// timeout (DistConfig::timeout_s): a lost or stuck peer ends the job with a message naming the
// collective and the rank, never a silent hang. Tensors must be contiguous. Every rank must issue the
// same collectives in the same order (that is what makes them match).
//
// Supported dtypes: reductions f32 f64 f16 bf16 i32 i64 i8 u8 (Avg only on floating types);
// allgather / broadcast any dtype. The MPI backend also accepts CUDA tensors (staged through host
// memory: slow, used only when dist.backend: mpi names it, see choose_backend); the NCCL backend takes
// CUDA tensors only and orders its own stream after the caller's current stream (wait() makes the
// current stream wait).
#pragma once
#include <torch/torch.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace pathvlm::dist {

enum class ReduceOp { Sum, Avg, Max };

// A collective in flight. wait() blocks until it is done (or the timeout ends the job).
class Work {
 public:
  virtual ~Work() = default;
  virtual void wait() = 0;
  virtual bool done() = 0;
};

class Comm {
 public:
  virtual ~Comm() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;  // "mpi", "nccl" or "local" (world size 1, no launcher)
  // The same ranks over CPU tensors, for small host-side agreements (preemption flags, bookkeeping) that must not
  // wait for the device: this Comm for MPI and local, the MPI (or local) bootstrap for NCCL. Only the thread that
  // drives this Comm may use it.
  virtual Comm& host() { return *this; }

  // In-place on `t`.
  virtual void allreduce(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // out = concat over ranks of `in` along dim 0; out.numel() == world_size * in.numel(). In-place when
  // `in` is this rank's chunk of `out` (out.narrow(0, rank * n, n)).
  virtual void allgather(const torch::Tensor& in, torch::Tensor& out) = 0;
  virtual std::unique_ptr<Work> allgather_async(const torch::Tensor& in, torch::Tensor& out) = 0;
  // `in` is world_size equal chunks (flat order); `out` receives this rank's reduced chunk.
  virtual void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out,
                                                     ReduceOp op = ReduceOp::Sum) = 0;
  virtual void broadcast(torch::Tensor& t, int root = 0) = 0;
  virtual void barrier() = 0;

  // Collectives issued through this Comm so far (tests count them; benchmarks report them).
  int64_t collectives_issued() const { return issued_.load(); }

 protected:
  int64_t next_sequence() { return issued_.fetch_add(1) + 1; }  // 1-based number for messages

 private:
  std::atomic<int64_t> issued_{0};
};

}  // namespace pathvlm::dist
