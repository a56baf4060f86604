// Process setup (MPI init/finalize, device choice, backend choice) and the world-size-1 "local" Comm.
#include "dist/process_group.h"

// The C API only: OpenMPI's C++ bindings would need libmpi_cxx.
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "dist/comm_detail.h"

namespace pathvlm::dist {
namespace {

std::atomic<int> g_rank{0};
std::atomic<bool> g_mpi_up{false};

void finalize_mpi() {
  stop_mpi_engine();
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
  g_mpi_up = false;
}

DistEnv start_processes() {
  DistEnv env = discover_env();
  if (!env.mpi_launched) {
    PATHVLM_CHECK(env.world_size == 1, "the environment (", env.source, ") says this is rank ", env.rank, " of ",
                  env.world_size, ", but no MPI launcher started the processes; start them with mpirun, or with "
                  "srun --mpi=pmix (check `srun --mpi=list`)");
    return env;
  }
  int provided = 0;
  int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided);
  PATHVLM_CHECK(rc == MPI_SUCCESS, "MPI_Init_thread failed (launcher: ", env.source, ")");
  // Every MPI call after init comes from the engine thread, so SERIALIZED is enough.
  PATHVLM_CHECK(provided >= MPI_THREAD_SERIALIZED, "this MPI library provides thread level ", provided,
                "; pathvlm needs MPI_THREAD_SERIALIZED or better");
  g_mpi_up = true;
  std::atexit(finalize_mpi);
  MPI_Comm_rank(MPI_COMM_WORLD, &env.rank);
  MPI_Comm_size(MPI_COMM_WORLD, &env.world_size);
  MPI_Comm node;  // ranks sharing this node's memory: the local rank is this process's place among them
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, env.rank, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &env.local_rank);
  MPI_Comm_size(node, &env.local_world_size);
  MPI_Comm_free(&node);
  g_rank = env.rank;
  return env;
}

class LocalWork : public Work {
 public:
  void wait() override {}
  bool done() override { return true; }
};

// World size 1 without a launcher: every collective is the identity (or a copy).
class LocalComm : public Comm {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  std::string backend() const override { return "local"; }
  void allreduce(torch::Tensor& t, ReduceOp op) override { allreduce_async(t, op); }
  std::unique_ptr<Work> allreduce_async(torch::Tensor& t, ReduceOp op) override {
    detail::check_reduce("allreduce", t, op);
    next_sequence();
    return std::make_unique<LocalWork>();
  }
  void allgather(const torch::Tensor& in, torch::Tensor& out) override { allgather_async(in, out); }
  std::unique_ptr<Work> allgather_async(const torch::Tensor& in, torch::Tensor& out) override {
    detail::check_allgather(in, out, 1);
    next_sequence();
    if (!detail::is_rank_chunk(in, out, 0)) out.copy_(in.view_as(out));
    return std::make_unique<LocalWork>();
  }
  void reduce_scatter(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    reduce_scatter_async(in, out, op);
  }
  std::unique_ptr<Work> reduce_scatter_async(const torch::Tensor& in, torch::Tensor& out, ReduceOp op) override {
    detail::check_reduce_scatter(in, out, op, 1);
    next_sequence();
    if (!detail::is_rank_chunk(out, in, 0)) out.copy_(in.view_as(out));
    return std::make_unique<LocalWork>();
  }
  void broadcast(torch::Tensor& t, int root) override {
    detail::check_tensor("broadcast", t);
    PATHVLM_CHECK(root == 0, "broadcast: root ", root, " is not a rank of 1");
    next_sequence();
  }
  void barrier() override { next_sequence(); }
};

}  // namespace

const DistEnv& init_processes() {
  static const DistEnv env = start_processes();
  return env;
}

torch::Device local_device(const DistEnv& env) {
  if (!torch::cuda::is_available()) return torch::kCPU;
  int count = static_cast<int>(torch::cuda::device_count());
  PATHVLM_CHECK(env.local_rank < count, "local rank ", env.local_rank, " has no GPU: only ", count,
                " CUDA devices are visible (one process per GPU; check CUDA_VISIBLE_DEVICES and tasks per node)");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(env.local_rank));
}

Backend choose_backend(const std::string& configured, torch::DeviceType device, int world_size, bool have_nccl) {
  PATHVLM_CHECK(configured == "auto" || configured == "mpi" || configured == "nccl", "dist.backend: '", configured,
                "' is not one of auto, mpi, nccl");
  const bool cuda = device == torch::kCUDA;
  if (configured == "nccl") {
    PATHVLM_CHECK(have_nccl, "dist.backend: nccl, but this pathvlm was built without NCCL");
    PATHVLM_CHECK(cuda, "dist.backend: nccl needs a CUDA device, got ", c10::DeviceTypeName(device, /*lower_case=*/true));
    return Backend::Nccl;
  }
  if (configured == "mpi") return Backend::Mpi;
  if (world_size == 1) return Backend::Local;
  if (!cuda) return Backend::Mpi;
  PATHVLM_CHECK(have_nccl, "dist.backend: auto on ", world_size, " CUDA ranks needs NCCL, but this pathvlm was "
                "built without it (rebuild with NCCL: README, section GPU build); dist.backend: mpi would stage every "
                "gradient through host memory");
  return Backend::Nccl;
}

std::unique_ptr<Comm> make_comm(const DistConfig& cfg, torch::Device device) {
  const DistEnv& env = init_processes();
  const Backend backend = choose_backend(cfg.backend, device.type(), env.world_size, build_has_nccl());
  // Without a launcher there is one rank and no MPI: the local comm (it also bootstraps a one-rank NCCL comm,
  // whose unique id goes to nobody).
  if (backend == Backend::Local || (backend == Backend::Mpi && !env.mpi_launched)) return make_local_comm();
  auto host = env.mpi_launched ? make_mpi_comm(cfg.timeout_s) : make_local_comm();
#ifdef PATHVLM_HAVE_NCCL
  if (backend == Backend::Nccl) return make_nccl_comm(std::move(host), device, cfg.timeout_s);
#endif
  return host;
}

std::unique_ptr<Comm> make_local_comm() { return std::make_unique<LocalComm>(); }

bool build_has_nccl() {
#ifdef PATHVLM_HAVE_NCCL
  return true;
#else
  return false;
#endif
}

void abort_job(const std::string& message, std::function<void()> release) {
  static std::atomic<bool> ending{false};
  const auto grace = std::chrono::duration<double>(kAbortGraceS);
  if (ending.exchange(true)) {  // another thread is ending the job already
    std::this_thread::sleep_for(2 * grace);
    std::_Exit(3);
  }
  std::fprintf(stderr, "[rank %d] %s\n", g_rank.load(), message.c_str());
  std::fflush(stderr);
  std::fflush(stdout);
  std::thread([release = std::move(release)] {
    if (release) release();
    if (g_mpi_up) MPI_Abort(MPI_COMM_WORLD, kExitError);
    std::_Exit(kExitError);
  }).detach();
  std::this_thread::sleep_for(grace);
  std::fprintf(stderr, "[rank %d] the abort did not finish within %g s: exiting without it\n", g_rank.load(),
               kAbortGraceS);
  std::fflush(stderr);
  std::_Exit(kExitError);
}

}  // namespace pathvlm::dist
