// Who am I in the job: rank, world size and local rank, read from the launcher's environment.
//
// Launchers recognised, first match wins:
//   OpenMPI mpirun      OMPI_COMM_WORLD_{RANK,SIZE,LOCAL_RANK,LOCAL_SIZE}        (MPI)
//   MPICH / srun pmi2   PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS      (MPI)
//   srun --mpi=pmix     PMIX_RANK with SLURM_* for sizes                          (MPI)
//   srun (no PMI)       SLURM_PROCID, SLURM_STEP_NUM_TASKS|SLURM_NTASKS, SLURM_LOCALID, SLURM_STEP_TASKS_PER_NODE
//   torchrun            RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE
// otherwise one process. `mpi_launched` says whether MPI can be initialised across the job; the
// process group confirms rank and size with MPI itself once it is.
#pragma once
#include <functional>
#include <string>

namespace pathvlm::dist {

struct DistEnv {
  int rank = 0, world_size = 1, local_rank = 0, local_world_size = 1;
  std::string source = "single";  // openmpi | pmi | pmix | slurm | torchrun | single | mpi (confirmed by MPI)
  bool mpi_launched = false;
};

// Looks a variable up; nullptr when unset.
using EnvLookup = std::function<const char*(const char*)>;

// From the process environment. Throws pathvlm::Error naming the variable when one is malformed.
DistEnv discover_env();
DistEnv discover_env(const EnvLookup& getenv);

}  // namespace pathvlm::dist
