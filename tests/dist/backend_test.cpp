// choose_backend: which Comm a job gets, as a pure function of (dist.backend, device, world size, NCCL built).
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/process_group.h"

using namespace pathvlm::dist;

namespace {

std::string message_of(const std::string& configured, torch::DeviceType device, int world, bool nccl) {
  try {
    choose_backend(configured, device, world, nccl);
  } catch (const pathvlm::Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(ChooseBackend, OneRankPaysForNoCollectives) {
  for (bool nccl : {false, true}) {
    EXPECT_EQ(choose_backend("auto", torch::kCUDA, 1, nccl), Backend::Local) << nccl;
    EXPECT_EQ(choose_backend("auto", torch::kCPU, 1, nccl), Backend::Local) << nccl;
  }
  // Named explicitly, a backend is built for one rank too (the one-GPU NCCL tests, benchmarks under mpirun -np 1).
  EXPECT_EQ(choose_backend("nccl", torch::kCUDA, 1, true), Backend::Nccl);
  EXPECT_EQ(choose_backend("mpi", torch::kCPU, 1, false), Backend::Mpi);
}

TEST(ChooseBackend, SeveralRanks) {
  EXPECT_EQ(choose_backend("auto", torch::kCUDA, 8, true), Backend::Nccl);
  EXPECT_EQ(choose_backend("nccl", torch::kCUDA, 8, true), Backend::Nccl);
  EXPECT_EQ(choose_backend("auto", torch::kCPU, 8, true), Backend::Mpi);
  EXPECT_EQ(choose_backend("auto", torch::kCPU, 2, false), Backend::Mpi);
  // Host staging of CUDA tensors only when asked for by name.
  EXPECT_EQ(choose_backend("mpi", torch::kCUDA, 2, false), Backend::Mpi);
  EXPECT_EQ(choose_backend("mpi", torch::kCUDA, 2, true), Backend::Mpi);
}

TEST(ChooseBackend, MultiRankCudaWithoutNcclIsAnError) {
  const auto msg = message_of("auto", torch::kCUDA, 2, false);
  EXPECT_NE(msg.find("dist.backend: auto on 2 CUDA ranks needs NCCL, but this pathvlm was built without it"),
            std::string::npos)
      << msg;
}

TEST(ChooseBackend, BadRequestsNameTheProblem) {
  EXPECT_NE(message_of("nccl", torch::kCUDA, 2, false).find("built without NCCL"), std::string::npos);
  EXPECT_NE(message_of("nccl", torch::kCPU, 2, true).find("nccl needs a CUDA device, got cpu"), std::string::npos)
      << message_of("nccl", torch::kCPU, 2, true);
  EXPECT_NE(message_of("gloo", torch::kCPU, 2, true).find("'gloo' is not one of auto, mpi, nccl"), std::string::npos);
}
