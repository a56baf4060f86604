// Rank discovery from launcher environment variables (see env.h for the table).
#include "dist/env.h"

#include <cstdlib>

#include "core/error.h"

namespace pathvlm::dist {
namespace {

// Reads an integer variable; `fallback` when unset. Values like "8(x2)" (SLURM task lists) give 8.
int read_int(const EnvLookup& getenv, const char* name, int fallback) {
  const char* text = getenv(name);
  if (!text || !*text) return fallback;
  char* end = nullptr;
  long value = std::strtol(text, &end, 10);
  PATHVLM_CHECK(end != text && (*end == '\0' || *end == '(' || *end == ','), "environment variable ", name, "='",
                text, "' is not an integer");
  PATHVLM_CHECK(value >= 0 && value < (1 << 24), "environment variable ", name, "=", value, " is out of range");
  return static_cast<int>(value);
}

bool has(const EnvLookup& getenv, const char* name) {
  const char* text = getenv(name);
  return text && *text;
}

// Size of a SLURM step: the step's own count when srun set it (inside an sbatch script SLURM_NTASKS is the
// whole allocation, not this step).
int slurm_world(const EnvLookup& getenv) {
  return read_int(getenv, "SLURM_STEP_NUM_TASKS", read_int(getenv, "SLURM_NTASKS", 1));
}
int slurm_local_world(const EnvLookup& getenv) {
  return read_int(getenv, "SLURM_STEP_TASKS_PER_NODE", read_int(getenv, "SLURM_NTASKS_PER_NODE", 1));
}

void check(const DistEnv& env) {
  PATHVLM_CHECK(env.world_size >= 1, "launcher environment (", env.source, "): world size ", env.world_size,
                " must be at least 1");
  PATHVLM_CHECK(env.rank < env.world_size, "launcher environment (", env.source, "): rank ", env.rank,
                " is not below the world size ", env.world_size);
  PATHVLM_CHECK(env.local_world_size >= 1 && env.local_rank < env.local_world_size, "launcher environment (",
                env.source, "): local rank ", env.local_rank, " is not below the local world size ",
                env.local_world_size);
}

}  // namespace

DistEnv discover_env(const EnvLookup& getenv) {
  DistEnv env;
  if (has(getenv, "OMPI_COMM_WORLD_SIZE")) {
    env.source = "openmpi";
    env.mpi_launched = true;
    env.rank = read_int(getenv, "OMPI_COMM_WORLD_RANK", 0);
    env.world_size = read_int(getenv, "OMPI_COMM_WORLD_SIZE", 1);
    env.local_rank = read_int(getenv, "OMPI_COMM_WORLD_LOCAL_RANK", 0);
    env.local_world_size = read_int(getenv, "OMPI_COMM_WORLD_LOCAL_SIZE", 1);
  } else if (has(getenv, "PMI_RANK") && has(getenv, "PMI_SIZE")) {
    env.source = "pmi";
    env.mpi_launched = true;
    env.rank = read_int(getenv, "PMI_RANK", 0);
    env.world_size = read_int(getenv, "PMI_SIZE", 1);
    env.local_rank = read_int(getenv, "MPI_LOCALRANKID", read_int(getenv, "SLURM_LOCALID", 0));
    env.local_world_size = read_int(getenv, "MPI_LOCALNRANKS", slurm_local_world(getenv));
  } else if (has(getenv, "PMIX_RANK")) {
    env.source = "pmix";
    env.mpi_launched = true;
    env.rank = read_int(getenv, "PMIX_RANK", 0);
    env.world_size = slurm_world(getenv);  // confirmed by MPI_Comm_size once MPI is up
    env.local_rank = read_int(getenv, "SLURM_LOCALID", 0);
    env.local_world_size = slurm_local_world(getenv);
  } else if (has(getenv, "SLURM_PROCID") && (has(getenv, "SLURM_STEP_NUM_TASKS") || has(getenv, "SLURM_STEP_ID"))) {
    env.source = "slurm";
    env.rank = read_int(getenv, "SLURM_PROCID", 0);
    env.world_size = slurm_world(getenv);
    env.local_rank = read_int(getenv, "SLURM_LOCALID", 0);
    env.local_world_size = slurm_local_world(getenv);
  } else if (has(getenv, "RANK") && has(getenv, "WORLD_SIZE")) {
    env.source = "torchrun";
    env.rank = read_int(getenv, "RANK", 0);
    env.world_size = read_int(getenv, "WORLD_SIZE", 1);
    env.local_rank = read_int(getenv, "LOCAL_RANK", 0);
    env.local_world_size = read_int(getenv, "LOCAL_WORLD_SIZE", has(getenv, "LOCAL_RANK") ? env.world_size : 1);
  }
  check(env);
  return env;
}

DistEnv discover_env() {
  return discover_env([](const char* name) -> const char* { return std::getenv(name); });
}

}  // namespace pathvlm::dist
