// Communication benchmark: Comm allreduce bus bandwidth over message sizes (MPI or NCCL), against a bare
// MPI_Allreduce of the same bytes, and the Reducer's cost per synchronising step against one bare
// allreduce of all gradient bytes. Run under the launcher with the ranks to measure:
//
//   mpirun -np 2 build/benchmarks/bench_allreduce                    # CPU, MPI
//   mpirun -np 8 build/benchmarks/bench_allreduce --backend nccl     # one GPU per rank
//
// busbw = bytes / time x 2(n-1)/n (the nccl-tests convention: comparable to link bandwidth for any n).
// Times are the slowest rank's mean over the iterations; Comm and bare MPI alternate for --rounds rounds and
// each keeps its best. Prints markdown tables (rank 0).
#define OMPI_SKIP_MPICXX 1
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "cli/args.h"
#include "core/error.h"
#include "dist/process_group.h"
#include "dist/reducer.h"

using namespace pathvlm;
using namespace pathvlm::dist;

namespace {

using Clock = std::chrono::steady_clock;

void sync_device(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

// Mean seconds per call of `fn` over `iters` calls (after `warmup`), the slowest rank's.
template <class Fn>
double time_per_call(Comm& comm, const torch::Device& device, int warmup, int iters, Fn&& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  sync_device(device);
  comm.barrier();
  auto start = Clock::now();
  for (int i = 0; i < iters; ++i) fn();
  sync_device(device);
  auto seconds = torch::tensor({std::chrono::duration<double>(Clock::now() - start).count() / iters},
                               torch::kDouble);
  if (device.is_cuda()) seconds = seconds.to(device);
  comm.allreduce(seconds, ReduceOp::Max);
  return seconds.cpu().item<double>();
}

int iterations_for(int64_t bytes, int budget_mb) {
  return static_cast<int>(std::clamp<int64_t>(int64_t(budget_mb) * (1 << 20) / std::max<int64_t>(bytes, 1), 5, 200));
}

bool bare_mpi_allowed(const Comm& comm) {
  if (comm.backend() != "mpi") return false;
  int level = 0;
  MPI_Query_thread(&level);  // the Comm's thread owns MPI; a bare call from here needs MULTIPLE
  return level == MPI_THREAD_MULTIPLE;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    cli::ArgParser p("bench_allreduce", "Allreduce bus bandwidth and Reducer overhead.");
    p.option("backend", "auto | mpi | nccl", false, "auto");
    p.option("min-kb", "smallest message in KiB", false, "4");
    p.option("max-mb", "largest message in MiB", false, "64");
    p.option("budget-mb", "bytes to move per size and round (sets the iteration count)", false, "1024");
    p.option("rounds", "alternating Comm / bare MPI rounds per size (the best of each counts)", false, "3");
    p.option("model-mb", "total gradient MiB for the Reducer benchmark", false, "64");
    p.option("params", "number of parameters the model-mb is split into", false, "32");
    p.option("bucket-mb", "Reducer bucket cap", false, "25");
    if (!p.parse(std::vector<std::string>(argv + 1, argv + argc))) return 0;

    const auto& env = init_processes();
    DistConfig cfg;
    cfg.backend = p.get("backend");
    cfg.timeout_s = 600;
    cfg.bucket_mb = p.get_double("bucket-mb");
    auto device = cfg.backend == "mpi" ? torch::Device(torch::kCPU) : local_device(env);
    auto comm = make_comm(cfg, device);
    const int world = comm->world_size();
    const bool root = comm->rank() == 0;
    const double bus_factor = world > 1 ? 2.0 * (world - 1) / world : 1.0;
    const bool bare = bare_mpi_allowed(*comm);
    auto options = torch::TensorOptions().device(device).dtype(torch::kFloat);
    if (root)
      std::printf("# bench_allreduce: backend %s, %d ranks, device %s, torch threads %d\n\n"
                  "| bytes | iters | time (us) | algbw (GB/s) | busbw (GB/s) | bare MPI busbw (GB/s) | Comm / bare |\n"
                  "|---:|---:|---:|---:|---:|---:|---:|\n",
                  comm->backend().c_str(), world, device.str().c_str(), torch::get_num_threads());

    // Comm and bare MPI alternate, `rounds` times each, and each keeps its best round: on a shared machine the
    // two then see the same background load, and the ratio is what compares.
    const int rounds = static_cast<int>(p.get_int("rounds"));
    for (int64_t bytes = p.get_int("min-kb") * 1024; bytes <= p.get_int("max-mb") * (1 << 20); bytes *= 4) {
      auto t = torch::ones({bytes / 4}, options);
      int iters = iterations_for(bytes, static_cast<int>(p.get_int("budget-mb")));
      double seconds = 1e30, bare_seconds = 1e30;
      for (int round = 0; round < rounds; ++round) {
        seconds = std::min(seconds, time_per_call(*comm, device, 2, iters, [&] { comm->allreduce(t, ReduceOp::Sum); }));
        if (bare)
          bare_seconds = std::min(bare_seconds, time_per_call(*comm, device, 2, iters, [&] {
            MPI_Allreduce(MPI_IN_PLACE, t.data_ptr(), static_cast<int>(t.numel()), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
          }));
      }
      const double busbw = bytes / seconds / 1e9 * bus_factor, bare_busbw = bytes / bare_seconds / 1e9 * bus_factor;
      if (root)
        std::printf("| %lld | %d | %.1f | %.3f | %.3f | %s | %s |\n", static_cast<long long>(bytes), iters,
                    seconds * 1e6, bytes / seconds / 1e9, busbw, bare ? str(bare_busbw).c_str() : "-",
                    bare ? str(static_cast<int>(100 * busbw / bare_busbw + 0.5), "%").c_str() : "-");
    }

    // Reducer: a synchronising step (buckets allreduced from the hooks) against a local step (no
    // communication) and against one bare allreduce of all gradient bytes.
    const int64_t n_params = p.get_int("params");
    const int64_t per_param = p.get_int("model-mb") * (1 << 20) / 4 / n_params;
    std::vector<NamedParam> params;
    for (int64_t i = 0; i < n_params; ++i)
      params.push_back({str("p", i), torch::ones({per_param}, options).requires_grad_(), true});
    Reducer reducer(params, *comm, cfg);
    auto step = [&](bool sync) {
      reducer.prepare_backward(sync);
      torch::Tensor loss = torch::zeros({}, options);
      for (auto& np : params) loss = loss + np.param.sum();
      loss.backward();
      reducer.finish_backward();
    };
    const int iters = 10;
    double local = time_per_call(*comm, device, 2, iters, [&] { step(false); });
    double synced = time_per_call(*comm, device, 2, iters, [&] { step(true); });
    auto flat = torch::ones({per_param * n_params}, options);
    double one = time_per_call(*comm, device, 2, iters, [&] { comm->allreduce(flat, ReduceOp::Avg); });
    if (root) {
      double total_mb = per_param * n_params * 4.0 / (1 << 20);
      std::printf("\n| Reducer: %.0f MiB in %lld params, %zu buckets (cap %.0f MiB, first %.0f MiB) | ms |\n|---|---:|\n"
                  "| local step (backward, no communication) | %.2f |\n"
                  "| synchronising step (backward + bucket allreduces) | %.2f |\n"
                  "| one bare allreduce of all %.0f MiB | %.2f |\n"
                  "| exposed communication = sync - local | %.2f |\n"
                  "| Reducer overhead vs bare allreduce = (sync - local) / bare | %.2fx |\n",
                  total_mb, static_cast<long long>(n_params), reducer.buckets().size(), cfg.bucket_mb,
                  cfg.first_bucket_mb, local * 1e3, synced * 1e3, total_mb, one * 1e3, (synced - local) * 1e3,
                  (synced - local) / one);
    }
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "bench_allreduce: error: " << e.what() << "\n";
    return 2;
  }
}
