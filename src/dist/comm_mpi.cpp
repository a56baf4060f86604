// MPI backend. One thread per process (the "engine") makes every MPI call after MPI_Init: it starts
// collectives non-blocking in submission order and polls them, so each one has a deadline even though
// MPI itself has no timeouts. A missed deadline or an MPI error ends the whole job with a message naming
// the collective (abort_job). Callers wait on a per-collective future.
// The C API only: OpenMPI's C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <chrono>
#include <climits>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/comm_detail.h"
#include "dist/process_group.h"

namespace pathvlm::dist {
namespace {

using Clock = std::chrono::steady_clock;

std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, length);
}

// One collective (or one-off MPI task) for the engine thread.
struct MpiOp {
  std::string description;                  // "allreduce #3 (4096 bytes)"
  double timeout_s = 0;
  std::function<int(MPI_Request*)> start;   // engine thread; returns an MPI error code
  std::function<void()> finish;             // engine thread, once the request completed
  MPI_Request request = MPI_REQUEST_NULL;
  Clock::time_point deadline;
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
};

class MpiEngine {
 public:
  static MpiEngine& instance() {
    static MpiEngine* engine = new MpiEngine();  // never destroyed: stopped explicitly before MPI_Finalize
    return *engine;
  }

  void submit(const std::shared_ptr<MpiOp>& op) {
    op->deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(op->timeout_s));
    std::lock_guard<std::mutex> lock(mutex_);
    PATHVLM_CHECK(!stopped_, op->description, ": MPI was already shut down");
    queue_.push_back(op);
    cv_.notify_one();
  }

  bool stopped() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopped_;
  }

  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      stopped_ = true;
      cv_.notify_one();
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  MpiEngine() : thread_([this] { loop(); }) {}

  void loop() {
    std::vector<std::shared_ptr<MpiOp>> in_flight;
    int idle_polls = 0;
    while (true) {
      std::deque<std::shared_ptr<MpiOp>> fresh;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        if (in_flight.empty()) cv_.wait(lock, [&] { return stopped_ || !queue_.empty(); });
        if (stopped_ && queue_.empty() && in_flight.empty()) return;
        fresh.swap(queue_);
      }
      bool progressed = !fresh.empty();
      for (auto& op : fresh) {  // started in submission order: the same order on every rank
        int rc = op->start(&op->request);
        if (rc != MPI_SUCCESS) abort_job(str(op->description, " failed to start: ", mpi_error_string(rc)));
        in_flight.push_back(op);
      }
      for (size_t i = 0; i < in_flight.size();) {
        auto& op = in_flight[i];
        int flag = 0;
        int rc = MPI_Test(&op->request, &flag, MPI_STATUS_IGNORE);
        if (rc != MPI_SUCCESS)
          abort_job(str(op->description, " failed: ", mpi_error_string(rc), " (a peer may have died)"));
        if (!flag) {
          ++i;
          continue;
        }
        complete(*op);
        in_flight.erase(in_flight.begin() + i);
        progressed = true;
      }
      auto now = Clock::now();
      for (auto& op : in_flight)
        if (now > op->deadline)
          abort_job(str(op->description, " timed out after ", op->timeout_s, " s: a peer is dead or stuck"));
      // MPI progresses non-blocking collectives only inside MPI calls, so poll; back off a little when
      // nothing moves so an idle wait does not take a core from the compute thread.
      idle_polls = progressed ? 0 : idle_polls + 1;
      if (!in_flight.empty() && idle_polls > 64)
        std::this_thread::sleep_for(std::chrono::microseconds(std::min(idle_polls - 64, 20) * 5));
      else if (!in_flight.empty())
        std::this_thread::yield();
    }
  }

  static void complete(MpiOp& op) {
    try {
      if (op.finish) op.finish();
    } catch (const std::exception& e) {
      abort_job(str(op.description, ": completing failed: ", e.what()));
    }
    std::lock_guard<std::mutex> lock(op.mutex);
    op.done = true;
    op.cv.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<MpiOp>> queue_;
  bool stopped_ = false;
  std::thread thread_;
};

class MpiWork : public Work {
 public:
  explicit MpiWork(std::shared_ptr<MpiOp> op) : op_(std::move(op)) {}
  void wait() override {
    std::unique_lock<std::mutex> lock(op_->mutex);
    // The engine ends the job at the deadline; this later guard only catches an engine that stopped answering.
    if (!op_->cv.wait_until(lock, op_->deadline + std::chrono::seconds(30), [&] { return op_->done; }))
      abort_job(str(op_->description, " got no answer from the MPI thread after ", op_->timeout_s, " s + 30 s"));
  }
  bool done() override {
    std::lock_guard<std::mutex> lock(op_->mutex);
    return op_->done;
  }

 private:
  std::shared_ptr<MpiOp> op_;
};

MPI_Datatype reduce_type(torch::ScalarType d) {
  switch (d) {
    case torch::kFloat: return MPI_FLOAT;
    case torch::kDouble: return MPI_DOUBLE;
    case torch::kInt: return MPI_INT32_T;
    case torch::kLong: return MPI_INT64_T;
    case torch::kChar: return MPI_INT8_T;
    case torch::kByte: return MPI_UINT8_T;
    default: throw Error(str("MPI reduction: unsupported dtype ", d));
  }
}

MPI_Op mpi_op(ReduceOp op) { return op == ReduceOp::Max ? MPI_MAX : MPI_SUM; }

// MPI reduces host memory in types it knows: CUDA tensors go through host memory, f16/bf16 through f32
// (which is also more accurate). Returns `t` itself when no staging is needed.
torch::Tensor stage_for_reduce(const torch::Tensor& t) {
  bool half = t.scalar_type() == torch::kHalf || t.scalar_type() == torch::kBFloat16;
  if (t.is_cpu() && !half) return t;
  return t.to(torch::TensorOptions().device(torch::kCPU).dtype(half ? torch::kFloat : t.scalar_type()));
}

int checked_count(const char* what, int64_t n) {
  PATHVLM_CHECK(n <= INT_MAX, what, ": ", n, " elements exceed what one MPI call takes (", INT_MAX,
                "); use smaller buckets");
  return static_cast<int>(n);
}

class MpiComm : public Comm {
 public:
  explicit MpiComm(double timeout_s) : timeout_s_(timeout_s) {
    // Each Comm has its own communicator so its collectives never match another Comm's.
    run_task("comm setup", [this] {
      MPI_Comm_dup(MPI_COMM_WORLD, &comm_);
      MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
      MPI_Comm_rank(comm_, &rank_);
      MPI_Comm_size(comm_, &world_);
    });
  }
  ~MpiComm() override {
    if (!MpiEngine::instance().stopped()) run_task("comm teardown", [this] { MPI_Comm_free(&comm_); });
  }

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return "mpi"; }

  void allreduce(torch::Tensor& t, ReduceOp op) override { allreduce_async(t, op)->wait(); }
  std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op) override {
    detail::check_reduce("allreduce", t, op);
    auto work = stage_for_reduce(t);
    int n = checked_count("allreduce", work.numel());
    auto type = reduce_type(work.scalar_type());
    int world = world_;
    MPI_Comm comm = comm_;
    return launch("allreduce", t.nbytes(),
                  [=](MPI_Request* r) { return MPI_Iallreduce(MPI_IN_PLACE, work.data_ptr(), n, type, mpi_op(op), comm, r); },
                  [=]() mutable {
                    if (op == ReduceOp::Avg) work.div_(world);
                    if (!work.is_same(t)) t.copy_(work);
                  });
  }

  void allgather(const torch::Tensor& in, torch::Tensor& out) override { allgather_async(in, out)->wait(); }
  std::unique_ptr<Work> allgather_async(const torch::Tensor& in, torch::Tensor& out) override {
    detail::check_allgather(in, out, world_);
    bool in_place = detail::is_rank_chunk(in, out, rank_);
    PATHVLM_CHECK(in_place || !detail::overlaps(in, out),
                  "allgather: the input overlaps the output but is not this rank's chunk of it");
    auto send = in.is_cpu() ? in : in.cpu();
    auto recv = out.is_cpu() ? out : torch::empty_like(out, torch::TensorOptions().device(torch::kCPU));
    in_place = in_place && out.is_cpu();
    int bytes = checked_count("allgather", in.nbytes());
    MPI_Comm comm = comm_;
    return launch("allgather", out.nbytes(),
                  [=](MPI_Request* r) {
                    return MPI_Iallgather(in_place ? MPI_IN_PLACE : send.data_ptr(), bytes, MPI_BYTE,
                                          recv.data_ptr(), bytes, MPI_BYTE, comm, r);
                  },
                  [=]() mutable {
                    if (!recv.is_same(out)) out.copy_(recv);
                  });
  }

  void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    reduce_scatter_async(in, out, op)->wait();
  }
  std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    detail::check_reduce_scatter(in, out, op, world_);
    auto send = stage_for_reduce(in);
    bool direct = send.is_same(in) && out.is_cpu() && !detail::overlaps(in, out);
    auto recv = direct ? out : torch::empty({out.numel()}, send.options());
    int n = checked_count("reduce_scatter", out.numel());
    auto type = reduce_type(send.scalar_type());
    int world = world_;
    MPI_Comm comm = comm_;
    return launch("reduce_scatter", in.nbytes(),
                  [=](MPI_Request* r) {
                    return MPI_Ireduce_scatter_block(send.data_ptr(), recv.data_ptr(), n, type, mpi_op(op), comm, r);
                  },
                  [=]() mutable {
                    if (op == ReduceOp::Avg) recv.div_(world);
                    if (!recv.is_same(out)) out.copy_(recv.view_as(out));
                  });
  }

  void broadcast(torch::Tensor& t, int root) override {
    detail::check_tensor("broadcast", t);
    PATHVLM_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of ", world_);
    auto buffer = t.is_cpu() ? t : t.cpu();
    int bytes = checked_count("broadcast", t.nbytes());
    MPI_Comm comm = comm_;
    launch("broadcast", t.nbytes(), [=](MPI_Request* r) { return MPI_Ibcast(buffer.data_ptr(), bytes, MPI_BYTE, root, comm, r); },
           [=]() mutable {
             if (!buffer.is_same(t)) t.copy_(buffer);
           })
        ->wait();
  }

  void barrier() override {
    MPI_Comm comm = comm_;
    launch("barrier", 0, [=](MPI_Request* r) { return MPI_Ibarrier(comm, r); }, nullptr)->wait();
  }

 private:
  std::unique_ptr<Work> launch(const char* name, int64_t bytes, std::function<int(MPI_Request*)> start,
                               std::function<void()> finish) {
    auto op = std::make_shared<MpiOp>();
    op->description = str(name, " #", next_sequence(), " (", bytes, " bytes)");
    op->timeout_s = timeout_s_;
    op->start = std::move(start);
    op->finish = std::move(finish);
    MpiEngine::instance().submit(op);
    return std::make_unique<MpiWork>(op);
  }

  // Runs `fn` on the engine thread (the only thread that calls MPI) and waits for it.
  void run_task(const char* name, std::function<void()> fn) {
    auto op = std::make_shared<MpiOp>();
    op->description = name;
    op->timeout_s = timeout_s_;
    op->start = [fn = std::move(fn)](MPI_Request* r) {
      fn();
      *r = MPI_REQUEST_NULL;  // MPI_Test on a null request completes at once
      return MPI_SUCCESS;
    };
    MpiEngine::instance().submit(op);
    MpiWork(op).wait();
  }

  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(double timeout_s) { return std::make_unique<MpiComm>(timeout_s); }

void stop_mpi_engine() { MpiEngine::instance().stop(); }

}  // namespace pathvlm::dist
