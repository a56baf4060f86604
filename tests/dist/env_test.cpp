// Rank discovery from launcher environment variables (fake environments; no process is started).
#include <gtest/gtest.h>

#include <map>

#include "core/error.h"
#include "dist/env.h"

using namespace pathvlm::dist;

namespace {

DistEnv discover(const std::map<std::string, std::string>& vars) {
  return discover_env([&](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  });
}

void expect_env(const DistEnv& env, int rank, int world, int local, int local_world, const char* source, bool mpi) {
  EXPECT_EQ(env.rank, rank);
  EXPECT_EQ(env.world_size, world);
  EXPECT_EQ(env.local_rank, local);
  EXPECT_EQ(env.local_world_size, local_world);
  EXPECT_EQ(env.source, source);
  EXPECT_EQ(env.mpi_launched, mpi);
}

}  // namespace

TEST(DistEnv, NoLauncherIsOneProcess) { expect_env(discover({}), 0, 1, 0, 1, "single", false); }

TEST(DistEnv, OpenMpiMpirun) {
  expect_env(discover({{"OMPI_COMM_WORLD_RANK", "5"}, {"OMPI_COMM_WORLD_SIZE", "16"},
                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "8"},
                       {"SLURM_PROCID", "0"}, {"RANK", "9"}, {"WORLD_SIZE", "99"}}),  // mpirun wins
             5, 16, 1, 8, "openmpi", true);
}

TEST(DistEnv, MpichOrSrunPmi2) {
  expect_env(discover({{"PMI_RANK", "3"}, {"PMI_SIZE", "4"}, {"MPI_LOCALRANKID", "1"}, {"MPI_LOCALNRANKS", "2"}}), 3, 4,
             1, 2, "pmi", true);
}

TEST(DistEnv, SrunWithPmix) {
  expect_env(discover({{"PMIX_RANK", "9"}, {"SLURM_PROCID", "9"}, {"SLURM_STEP_NUM_TASKS", "16"},
                       {"SLURM_NTASKS", "32"}, {"SLURM_LOCALID", "1"}, {"SLURM_STEP_TASKS_PER_NODE", "8(x2)"}}),
             9, 16, 1, 8, "pmix", true);
}

TEST(DistEnv, SrunWithoutPmi) {
  expect_env(discover({{"SLURM_PROCID", "6"}, {"SLURM_STEP_ID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "2"},
                       {"SLURM_NTASKS_PER_NODE", "4"}}),
             6, 8, 2, 4, "slurm", false);
}

TEST(DistEnv, SbatchScriptWithoutSrunIsOneProcess) {
  // The batch script sees the allocation's SLURM_NTASKS but is a single process (no step variables).
  expect_env(discover({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "0"}}), 0, 1, 0, 1, "single",
             false);
}

TEST(DistEnv, Torchrun) {
  expect_env(discover({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"}}), 3, 4, 1,
             2, "torchrun", false);
}

TEST(DistEnv, MalformedValuesNameTheVariable) {
  try {
    discover({{"RANK", "three"}, {"WORLD_SIZE", "4"}});
    FAIL() << "no error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("RANK='three'"), std::string::npos) << e.what();
  }
  try {
    discover({{"RANK", "4"}, {"WORLD_SIZE", "4"}});
    FAIL() << "no error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("rank 4 is not below the world size 4"), std::string::npos) << e.what();
  }
}
