// Process setup: MPI initialised once per process, the rank's device, and the Comm for a device.
//
//   const auto& env = dist::init_processes();                 // rank / world size / local rank
//   auto device = dist::local_device(env);                     // cuda:<local_rank>, else CPU
//   auto comm = dist::make_comm(job.dist, device);             // MPI, NCCL, or local (world size 1)
//
// A single process started without a launcher gets a "local" Comm (no MPI needed). MPI is finalised at
// exit. Errors in the collectives themselves (timeouts, dead peers) end the whole job via abort_job().
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>

#include "dist/comm.h"
#include "dist/dist_config.h"
#include "dist/env.h"

namespace pathvlm::dist {

// Idempotent. Initialises MPI when an MPI launcher started the process and confirms rank, world size and
// local rank with MPI. Throws pathvlm::Error when the environment names several ranks but there is no
// MPI launcher to connect them (e.g. srun without --mpi=pmix).
const DistEnv& init_processes();

// One process per GPU: cuda:<local_rank> when CUDA is available, else CPU.
torch::Device local_device(const DistEnv& env);

// The Comm for tensors on `device`, of the kind choose_backend names.
std::unique_ptr<Comm> make_comm(const DistConfig& cfg, torch::Device device);

enum class Backend { Local, Mpi, Nccl };
// Which Comm make_comm builds, a pure function of `dist.backend`, the device, the world size and the build:
//   one rank: local (no collective to pay for), unless a backend is named (mpi under a launcher: MPI);
//   several ranks: nccl for CUDA tensors (auto or nccl), mpi for CPU tensors or when mpi is named (CUDA
//   tensors then go through host memory: slow, but asked for);
//   auto on several CUDA ranks in a build without NCCL, and nccl without NCCL or CUDA: errors, never a
//   silent host-staged path.
Backend choose_backend(const std::string& configured, torch::DeviceType device, int world_size, bool have_nccl);

// True when this binary was built with the NCCL backend.
bool build_has_nccl();

// Seconds abort_job waits for `release` and MPI_Abort before it ends the process itself.
inline constexpr double kAbortGraceS = 3.0;

// Ends every rank of the job with status kExitError (2, the status of an error on one process; mpirun reports the
// status its MPI_Abort gives), in a bounded time: prints "[rank r] message" to stderr first, then runs `release`
// (e.g. ncclCommAbort) and MPI_Abort on a detached thread and _Exits after kAbortGraceS whatever they do (both can
// hang behind stuck GPU work or a dead peer). A second caller (another thread noticing the same failure) waits for
// the first one's exit.
[[noreturn]] void abort_job(const std::string& message, std::function<void()> release = {});

// ---- backends (use make_comm) -------------------------------------------------------------------
std::unique_ptr<Comm> make_mpi_comm(double timeout_s);
std::unique_ptr<Comm> make_local_comm();
#ifdef PATHVLM_HAVE_NCCL
// `bootstrap` (MPI, or local for one rank) broadcasts the NCCL unique id from rank 0; the NCCL Comm keeps it.
std::unique_ptr<Comm> make_nccl_comm(std::unique_ptr<Comm> bootstrap, torch::Device device, double timeout_s);
#endif
// Stops the MPI communication thread (called once at exit, before MPI_Finalize).
void stop_mpi_engine();

}  // namespace pathvlm::dist
