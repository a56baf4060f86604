// Comm: the collectives every distributed part uses, over MPI (CPU tensors) or NCCL (CUDA tensors).
//
// Every call is blocking from the caller's point of view unless it returns a Work handle; each has a
// timeout (DistConfig::timeout_s): a lost or stuck peer ends the job with a message naming the
// collective and the rank, never a silent hang. Tensors must be contiguous.
#pragma once
#include <torch/torch.h>

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
  virtual std::string backend() const = 0;  // "mpi" or "nccl"

  // In-place on `t`.
  virtual void allreduce(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op = ReduceOp::Sum) = 0;
  // out = concat over ranks of `in` along dim 0; out.size(0) == world_size * in.size(0).
  virtual void allgather(const torch::Tensor& in, torch::Tensor& out) = 0;
  // `in` is world_size equal chunks along dim 0; `out` receives this rank's reduced chunk.
  virtual void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op = ReduceOp::Sum) = 0;
  virtual std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out,
                                                     ReduceOp op = ReduceOp::Sum) = 0;
  virtual void broadcast(torch::Tensor& t, int root = 0) = 0;
  virtual void barrier() = 0;
};

}  // namespace pathvlm::dist
