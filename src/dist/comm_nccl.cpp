// NCCL backend for CUDA tensors (built only with PATHVLM_HAVE_NCCL). The unique id travels over the
// bootstrap Comm (MPI); collectives run on this Comm's own stream, ordered after the caller's current
// stream by an event, and Work::wait() orders the caller's stream after the collective (no host sync).
// A watchdog thread (on this Comm's device, so it makes no context on GPU 0) polls each collective's
// completion event and the communicator's async error against the deadline every kWatchdogPoll; a miss
// prints a message naming the collective, then aborts the communicator and ends the job (abort_job: bounded,
// since ncclCommAbort can hang behind stuck GPU work).
#ifdef PATHVLM_HAVE_NCCL
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <nccl.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/comm_detail.h"
#include "dist/process_group.h"

namespace pathvlm::dist {
namespace {

using Clock = std::chrono::steady_clock;

ncclDataType_t nccl_type(torch::ScalarType d) {
  switch (d) {
    case torch::kFloat: return ncclFloat32;
    case torch::kDouble: return ncclFloat64;
    case torch::kHalf: return ncclFloat16;
    case torch::kBFloat16: return ncclBfloat16;
    case torch::kLong: return ncclInt64;
    case torch::kInt: return ncclInt32;
    case torch::kChar: return ncclInt8;
    case torch::kByte: return ncclUint8;
    default: throw Error(str("NCCL: unsupported dtype ", d));
  }
}

ncclRedOp_t nccl_op(ReduceOp op) { return op == ReduceOp::Sum ? ncclSum : op == ReduceOp::Avg ? ncclAvg : ncclMax; }

// One collective in flight: its completion event, and the tensors it uses kept alive until it is done
// (so the caching allocator cannot hand their memory to the compute stream early).
struct Pending {
  std::string description;
  double timeout_s = 0;
  Clock::time_point deadline;
  at::cuda::CUDAEvent done;
  std::vector<torch::Tensor> keep_alive;
};

class NcclWork : public Work {
 public:
  NcclWork(std::shared_ptr<Pending> p, c10::DeviceIndex device) : pending_(std::move(p)), device_(device) {}
  void wait() override { pending_->done.block(c10::cuda::getCurrentCUDAStream(device_)); }
  bool done() override { return pending_->done.query(); }

 private:
  std::shared_ptr<Pending> pending_;
  c10::DeviceIndex device_;
};

// Ends the job when `what` does not finish in time (NCCL init has no timeout of its own).
class DeadlineGuard {
 public:
  DeadlineGuard(std::string what, double timeout_s)
      : thread_([this, what = std::move(what), timeout_s] {
          std::unique_lock<std::mutex> lock(mutex_);
          if (!cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [&] { return finished_; }))
            abort_job(str(what, " timed out after ", timeout_s, " s: a peer is dead or stuck"));
        }) {}
  ~DeadlineGuard() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    cv_.notify_one();
    thread_.join();
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool finished_ = false;
  std::thread thread_;
};

class NcclComm : public Comm {
 public:
  NcclComm(std::unique_ptr<Comm> bootstrap, torch::Device device, double timeout_s)
      : bootstrap_(std::move(bootstrap)),
        device_(device),
        timeout_s_(timeout_s),
        rank_(bootstrap_->rank()),
        world_(bootstrap_->world_size()),
        stream_(c10::cuda::getStreamFromPool(/*isHighPriority=*/true, device.index())) {
    PATHVLM_CHECK(device.is_cuda() && device.has_index(), "NCCL comm needs a CUDA device with an index, got ", device);
    c10::cuda::CUDAGuard guard(device.index());
    ncclUniqueId id;
    if (rank_ == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
    auto bytes = torch::from_blob(&id, {static_cast<int64_t>(sizeof(id))}, torch::kUInt8).clone();
    bootstrap_->broadcast(bytes, 0);
    std::memcpy(&id, bytes.data_ptr(), sizeof(id));
    {
      DeadlineGuard guard_init("ncclCommInitRank", timeout_s_);
      check(ncclCommInitRank(&comm_, world_, id, rank_), "ncclCommInitRank");
    }
    watchdog_ = std::thread([this] { watch(); });
  }

  ~NcclComm() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_one();
    watchdog_.join();  // returns once every pending collective completed (or the job was ended)
    ncclCommDestroy(comm_);
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "nccl"; }
  Comm& host() override { return *bootstrap_; }

  void allreduce(torch::Tensor& t, ReduceOp op) override { allreduce_async(t, op)->wait(); }
  std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op) override {
    detail::check_reduce("allreduce", t, op);
    check_device("allreduce", t);
    return launch("allreduce", t.nbytes(), {t}, [&](cudaStream_t s) {
      return ncclAllReduce(t.data_ptr(), t.data_ptr(), t.numel(), nccl_type(t.scalar_type()), nccl_op(op), comm_, s);
    });
  }

  void allgather(const torch::Tensor& in, torch::Tensor& out) override { allgather_async(in, out)->wait(); }
  std::unique_ptr<Work> allgather_async(const torch::Tensor& in, torch::Tensor& out) override {
    detail::check_allgather(in, out, world_);
    check_device("allgather input", in);
    check_device("allgather output", out);
    PATHVLM_CHECK(detail::is_rank_chunk(in, out, rank_) || !detail::overlaps(in, out),
                  "allgather: the input overlaps the output but is not this rank's chunk of it");
    return launch("allgather", out.nbytes(), {in, out}, [&](cudaStream_t s) {
      return ncclAllGather(in.data_ptr(), out.data_ptr(), in.numel(), nccl_type(in.scalar_type()), comm_, s);
    });
  }

  void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    reduce_scatter_async(in, out, op)->wait();
  }
  std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    detail::check_reduce_scatter(in, out, op, world_);
    check_device("reduce_scatter input", in);
    check_device("reduce_scatter output", out);
    PATHVLM_CHECK(detail::is_rank_chunk(out, in, rank_) || !detail::overlaps(in, out),
                  "reduce_scatter: the output overlaps the input but is not this rank's chunk of it");
    return launch("reduce_scatter", in.nbytes(), {in, out}, [&](cudaStream_t s) {
      return ncclReduceScatter(in.data_ptr(), out.data_ptr(), out.numel(), nccl_type(in.scalar_type()), nccl_op(op),
                               comm_, s);
    });
  }

  void broadcast(torch::Tensor& t, int root) override {
    detail::check_tensor("broadcast", t);
    check_device("broadcast", t);
    PATHVLM_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of ", world_);
    launch("broadcast", t.nbytes(), {t}, [&](cudaStream_t s) {
      return ncclBroadcast(t.data_ptr(), t.data_ptr(), t.nbytes(), ncclUint8, root, comm_, s);
    })->wait();
  }

  void barrier() override {
    auto one = torch::ones({1}, torch::TensorOptions().device(device_));
    auto work = allreduce_async(one, ReduceOp::Sum);
    while (!work->done()) std::this_thread::sleep_for(std::chrono::microseconds(50));  // the watchdog bounds this
  }

 private:
  static void check(ncclResult_t rc, const char* what) {
    PATHVLM_CHECK(rc == ncclSuccess, what, " failed: ", ncclGetErrorString(rc));
  }

  void check_device(const char* what, const torch::Tensor& t) const {
    PATHVLM_CHECK(t.device() == device_, what, ": tensor on ", t.device(), " but this NCCL comm is on ", device_);
  }

  template <class Call>
  std::unique_ptr<Work> launch(const char* name, int64_t bytes, std::vector<torch::Tensor> keep_alive, Call&& call) {
    std::lock_guard<std::mutex> lock(launch_mutex_);  // hooks on autograd threads and the main thread
    c10::cuda::CUDAGuard guard(device_.index());
    auto pending = std::make_shared<Pending>();
    pending->description = str(name, " #", next_sequence(), " (", bytes, " bytes)");
    pending->timeout_s = timeout_s_;
    pending->keep_alive = std::move(keep_alive);
    at::cuda::CUDAEvent inputs_ready;
    inputs_ready.record(c10::cuda::getCurrentCUDAStream(device_.index()));
    inputs_ready.block(stream_);
    ncclResult_t rc = call(stream_.stream());
    if (rc != ncclSuccess) abort_job(str(pending->description, " failed: ", ncclGetErrorString(rc)));
    pending->done.record(stream_);
    pending->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
    {
      std::lock_guard<std::mutex> watch_lock(mutex_);
      pending_.push_back(pending);
    }
    cv_.notify_one();
    return std::make_unique<NcclWork>(pending, device_.index());
  }

  void watch() {
    // Event queries and ncclCommAbort act on the current device: without this a thread starts on GPU 0.
    c10::cuda::CUDAGuard on_device(device_.index());
    while (true) {
      std::shared_ptr<Pending> oldest;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait(lock, [&] { return stopping_ || !pending_.empty(); });
        if (pending_.empty()) return;  // stopping, nothing left
        oldest = pending_.front();
      }
      ncclResult_t async_error = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async_error);
      if (async_error != ncclSuccess && async_error != ncclInProgress)
        fail(str(oldest->description, " failed: ", ncclGetErrorString(async_error)));
      if (oldest->done.query()) {
        std::lock_guard<std::mutex> lock(mutex_);
        pending_.pop_front();  // completes in launch order on the one stream
        continue;
      }
      if (Clock::now() > oldest->deadline)
        fail(str(oldest->description, " timed out after ", oldest->timeout_s,
                 " s: a peer is dead or stuck (or this GPU's earlier work never finished)"));
      std::this_thread::sleep_for(detail::kWatchdogPoll);
    }
  }

  [[noreturn]] void fail(const std::string& message) {
    abort_job(str(message, "; aborting the NCCL communicator"), [comm = comm_, index = device_.index()] {
      c10::cuda::CUDAGuard on_device(index);
      ncclCommAbort(comm);
    });
  }

  std::unique_ptr<Comm> bootstrap_;
  torch::Device device_;
  double timeout_s_;
  int rank_, world_;
  c10::cuda::CUDAStream stream_;
  ncclComm_t comm_ = nullptr;
  std::mutex launch_mutex_;
  std::mutex mutex_;  // pending_ and stopping_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Pending>> pending_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> bootstrap, torch::Device device, double timeout_s) {
  return std::make_unique<NcclComm>(std::move(bootstrap), device, timeout_s);
}

}  // namespace pathvlm::dist
#endif  // PATHVLM_HAVE_NCCL
