// MPI backend. MPI has no timeouts of its own: a watchdog thread gives every MPI call a deadline, and a
// missed deadline or an MPI error ends the whole job with a message naming the collective (abort_job).
//
// One thread at a time calls MPI (MPI_THREAD_SERIALIZED is enough), in submission order, so every rank
// issues the same sequence: a blocking collective runs on the caller's thread when nothing is queued (no
// thread hand-off on the path of every small collective), an asynchronous one on the engine thread, which
// lets it overlap with compute (the Reducer's buckets during backward). The calls themselves are the
// blocking MPI collectives, not MPI_I* + MPI_Test polling: Open MPI's blocking algorithms reach its full
// bandwidth where its non-blocking ones reached 25-50 % of it (benchmarks/RESULTS.md, bench_allreduce).
// The C API only: OpenMPI's C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
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

// One collective (or one-off MPI task).
struct MpiOp {
  std::string description;        // "allreduce #3 (4096 bytes)"
  double timeout_s = 0;
  std::function<int()> run;       // the blocking MPI call; returns an MPI error code
  std::function<void()> finish;   // once it succeeded: averaging, copies back
  std::mutex mutex;
  std::condition_variable cv;
  bool done = false;
};

// Ends the job when the MPI call in progress (and its finish) outlives its deadline. Polled: beginning and
// ending a call cost an uncontended lock, no wake-up of another thread; the watchdog wakes every kIdlePoll, or
// at the running call's deadline when that comes sooner (a rank spinning in MPI loses no time slice to it).
class Watchdog {
 public:
  Watchdog() : thread_([this] { loop(); }) {}

  void begin(const MpiOp& op) {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = &op;
    deadline_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(op.timeout_s));
  }
  void end() {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = nullptr;
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    if (thread_.joinable()) thread_.join();
  }

 private:
  static constexpr auto kIdlePoll = std::chrono::milliseconds(50);

  void loop() {
    Clock::duration sleep = kIdlePoll;
    while (true) {
      std::this_thread::sleep_for(std::max<Clock::duration>(sleep, detail::kWatchdogPoll));
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_) return;
      const auto now = Clock::now();
      if (running_ && now > deadline_)
        abort_job(str(running_->description, " timed out after ", running_->timeout_s,
                      " s: a peer is dead or stuck"));
      sleep = running_ ? std::min<Clock::duration>(kIdlePoll, deadline_ - now) : kIdlePoll;
    }
  }

  std::mutex mutex_;
  const MpiOp* running_ = nullptr;
  Clock::time_point deadline_;
  bool stopped_ = false;
  std::thread thread_;
};

class MpiEngine {
 public:
  static MpiEngine& instance() {
    static MpiEngine* engine = new MpiEngine();  // never destroyed: stopped explicitly before MPI_Finalize
    return *engine;
  }

  // Runs `op` to completion: on this thread when MPI is free and nothing is queued before it, else after the
  // queued ones on the engine thread.
  void run(const std::shared_ptr<MpiOp>& op) {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      PATHVLM_CHECK(!stopped_, op->description, ": MPI was already shut down");
      if (busy_ || !queue_.empty()) {
        queue_.push_back(op);
        cv_.notify_one();
        lock.unlock();
        wait(*op);
        return;
      }
      busy_ = true;
    }
    execute(*op);
    std::lock_guard<std::mutex> lock(mutex_);
    busy_ = false;
    if (!queue_.empty()) cv_.notify_one();
  }

  // Queues `op` for the engine thread; wait() for it.
  void submit(const std::shared_ptr<MpiOp>& op) {
    std::lock_guard<std::mutex> lock(mutex_);
    PATHVLM_CHECK(!stopped_, op->description, ": MPI was already shut down");
    queue_.push_back(op);
    cv_.notify_one();
  }

  // The watchdog bounds every call, so this wait needs no deadline of its own.
  static void wait(MpiOp& op) {
    std::unique_lock<std::mutex> lock(op.mutex);
    op.cv.wait(lock, [&] { return op.done; });
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
    watchdog_.stop();
  }

 private:
  MpiEngine() : thread_([this] { loop(); }) {}

  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      cv_.wait(lock, [&] { return (stopped_ || !queue_.empty()) && !busy_; });
      if (queue_.empty()) return;  // stopped, nothing left
      auto op = std::move(queue_.front());
      queue_.pop_front();
      busy_ = true;
      lock.unlock();
      execute(*op);
      lock.lock();
      busy_ = false;
    }
  }

  void execute(MpiOp& op) {
    watchdog_.begin(op);
    int rc = op.run();
    if (rc != MPI_SUCCESS) abort_job(str(op.description, " failed: ", mpi_error_string(rc), " (a peer may have died)"));
    try {
      if (op.finish) op.finish();
    } catch (const std::exception& e) {
      abort_job(str(op.description, ": completing failed: ", e.what()));
    }
    watchdog_.end();
    std::lock_guard<std::mutex> lock(op.mutex);
    op.done = true;
    op.cv.notify_all();
  }

  std::mutex mutex_;  // queue_, busy_, stopped_
  std::condition_variable cv_;
  std::deque<std::shared_ptr<MpiOp>> queue_;
  bool busy_ = false;  // a thread is inside execute()
  bool stopped_ = false;
  Watchdog watchdog_;
  std::thread thread_;
};

class MpiWork : public Work {
 public:
  explicit MpiWork(std::shared_ptr<MpiOp> op) : op_(std::move(op)) {}
  void wait() override { MpiEngine::wait(*op_); }
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

  void allreduce(torch::Tensor& t, ReduceOp op) override { run(allreduce_op(t, op)); }
  std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op) override { return submit(allreduce_op(t, op)); }

  void allgather(const torch::Tensor& in, torch::Tensor& out) override { run(allgather_op(in, out)); }
  std::unique_ptr<Work> allgather_async(const torch::Tensor& in, torch::Tensor& out) override {
    return submit(allgather_op(in, out));
  }

  void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    run(reduce_scatter_op(in, out, op));
  }
  std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    return submit(reduce_scatter_op(in, out, op));
  }

  void broadcast(torch::Tensor& t, int root) override {
    detail::check_tensor("broadcast", t);
    PATHVLM_CHECK(root >= 0 && root < world_, "broadcast: root ", root, " is not a rank of ", world_);
    auto buffer = t.is_cpu() ? t : t.cpu();
    int bytes = checked_count("broadcast", t.nbytes());
    MPI_Comm comm = comm_;
    run(make_op("broadcast", t.nbytes(), [=] { return MPI_Bcast(buffer.data_ptr(), bytes, MPI_BYTE, root, comm); },
                [=]() mutable {
                  if (!buffer.is_same(t)) t.copy_(buffer);
                }));
  }

  void barrier() override {
    MPI_Comm comm = comm_;
    run(make_op("barrier", 0, [=] { return MPI_Barrier(comm); }, nullptr));
  }

 private:
  std::shared_ptr<MpiOp> allreduce_op(torch::Tensor& t, ReduceOp op) {
    detail::check_reduce("allreduce", t, op);
    auto work = stage_for_reduce(t);
    int n = checked_count("allreduce", work.numel());
    auto type = reduce_type(work.scalar_type());
    int world = world_;
    MPI_Comm comm = comm_;
    return make_op("allreduce", t.nbytes(),
                   [=] { return MPI_Allreduce(MPI_IN_PLACE, work.data_ptr(), n, type, mpi_op(op), comm); },
                   [=]() mutable {
                     if (op == ReduceOp::Avg) work.div_(world);
                     if (!work.is_same(t)) t.copy_(work);
                   });
  }

  std::shared_ptr<MpiOp> allgather_op(const torch::Tensor& in, torch::Tensor& out) {
    detail::check_allgather(in, out, world_);
    bool in_place = detail::is_rank_chunk(in, out, rank_);
    PATHVLM_CHECK(in_place || !detail::overlaps(in, out),
                  "allgather: the input overlaps the output but is not this rank's chunk of it");
    auto send = in.is_cpu() ? in : in.cpu();
    auto recv = out.is_cpu() ? out : torch::empty_like(out, torch::TensorOptions().device(torch::kCPU));
    in_place = in_place && out.is_cpu();
    int bytes = checked_count("allgather", in.nbytes());
    MPI_Comm comm = comm_;
    return make_op("allgather", out.nbytes(),
                   [=] {
                     return MPI_Allgather(in_place ? MPI_IN_PLACE : send.data_ptr(), bytes, MPI_BYTE, recv.data_ptr(),
                                          bytes, MPI_BYTE, comm);
                   },
                   [=]() mutable {
                     if (!recv.is_same(out)) out.copy_(recv);
                   });
  }

  std::shared_ptr<MpiOp> reduce_scatter_op(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) {
    detail::check_reduce_scatter(in, out, op, world_);
    auto send = stage_for_reduce(in);
    bool direct = send.is_same(in) && out.is_cpu() && !detail::overlaps(in, out);
    auto recv = direct ? out : torch::empty({out.numel()}, send.options());
    int n = checked_count("reduce_scatter", out.numel());
    auto type = reduce_type(send.scalar_type());
    int world = world_;
    MPI_Comm comm = comm_;
    return make_op("reduce_scatter", in.nbytes(),
                   [=] { return MPI_Reduce_scatter_block(send.data_ptr(), recv.data_ptr(), n, type, mpi_op(op), comm); },
                   [=]() mutable {
                     if (op == ReduceOp::Avg) recv.div_(world);
                     if (!recv.is_same(out)) out.copy_(recv.view_as(out));
                   });
  }

  std::shared_ptr<MpiOp> make_op(const char* name, int64_t bytes, std::function<int()> run,
                                 std::function<void()> finish) {
    auto op = std::make_shared<MpiOp>();
    op->description = str(name, " #", next_sequence(), " (", bytes, " bytes)");
    op->timeout_s = timeout_s_;
    op->run = std::move(run);
    op->finish = std::move(finish);
    return op;
  }

  static void run(const std::shared_ptr<MpiOp>& op) { MpiEngine::instance().run(op); }
  static std::unique_ptr<Work> submit(std::shared_ptr<MpiOp> op) {
    MpiEngine::instance().submit(op);
    return std::make_unique<MpiWork>(std::move(op));
  }

  // Runs `fn` as the next MPI call of this process (setup and teardown of the communicator).
  void run_task(const char* name, std::function<void()> fn) {
    auto op = std::make_shared<MpiOp>();
    op->description = name;
    op->timeout_s = timeout_s_;
    op->run = [fn = std::move(fn)] {
      fn();
      return MPI_SUCCESS;
    };
    run(op);
  }

  double timeout_s_;
  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, world_ = 1;
};

}  // namespace

std::unique_ptr<Comm> make_mpi_comm(double timeout_s) { return std::make_unique<MpiComm>(timeout_s); }

void stop_mpi_engine() { MpiEngine::instance().stop(); }

}  // namespace pathvlm::dist
