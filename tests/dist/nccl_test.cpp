// NCCL backend on one GPU (the GPU machine has one): collectives, stream ordering, the Reducer on CUDA,
// and the watchdog ending the job when a collective cannot finish. Built only with NCCL; run by
// scripts/gpu/dist_nccl_check.sh.
#ifdef PATHVLM_HAVE_NCCL
#include <ATen/cuda/Sleep.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "core/error.h"
#include "dist/process_group.h"
#include "dist/reducer.h"

using namespace pathvlm::dist;

namespace {

std::unique_ptr<Comm> nccl_comm(double timeout_s = 60) {
  DistConfig cfg;
  cfg.backend = "nccl";
  cfg.timeout_s = timeout_s;
  return make_comm(cfg, torch::Device(torch::kCUDA, 0));
}

}  // namespace

TEST(NcclComm, CollectivesOnOneGpu) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto comm = nccl_comm();
  ASSERT_EQ(comm->backend(), "nccl");
  ASSERT_EQ(comm->world_size(), 1);
  auto cuda = torch::TensorOptions().device(torch::kCUDA, 0);
  for (auto dtype : {torch::kFloat, torch::kBFloat16, torch::kHalf, torch::kLong}) {
    auto t = torch::arange(1000, cuda.dtype(dtype));
    auto expected = t.clone();
    comm->allreduce(t, ReduceOp::Sum);
    EXPECT_TRUE(torch::equal(t.cpu(), expected.cpu())) << dtype;
    auto out = torch::zeros({1000}, cuda.dtype(dtype));
    comm->allgather(t, out);
    EXPECT_TRUE(torch::equal(out.cpu(), expected.cpu())) << dtype;
  }
  // The collective runs on its own stream but after the producer on the current stream.
  auto big = torch::zeros({1 << 22}, cuda);
  big.add_(1);
  auto work = comm->allreduce_async(big, ReduceOp::Avg);
  work->wait();
  EXPECT_EQ(big.sum().item<float>(), float(1 << 22));
  auto cpu = torch::zeros({4});
  EXPECT_THROW(comm->allreduce(cpu), pathvlm::Error);
  comm->barrier();
}

TEST(NcclComm, ReducerOnCuda) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto comm = nccl_comm();
  auto cuda = torch::TensorOptions().device(torch::kCUDA, 0);
  auto w1 = torch::randn({64, 32}, cuda).requires_grad_(), w2 = torch::randn({8, 64}, cuda).requires_grad_();
  DistConfig cfg;
  cfg.first_bucket_mb = 1.0 / 1024;
  cfg.bucket_mb = 1.0 / 1024;
  Reducer reducer({{"w1", w1, true}, {"w2", w2, true}}, *comm, cfg);
  auto x = torch::randn({16, 32}, cuda);
  reducer.prepare_backward(true);
  torch::matmul(torch::tanh(torch::matmul(x, w1.t())), w2.t()).pow(2).sum().backward();
  reducer.finish_backward();
  auto events = reducer.events();
  ASSERT_GE(events.size(), 3u);
  EXPECT_EQ(events[0], "bucket_launch:0");
  auto w1_ref = w1.detach().clone().requires_grad_(), w2_ref = w2.detach().clone().requires_grad_();
  torch::matmul(torch::tanh(torch::matmul(x, w1_ref.t())), w2_ref.t()).pow(2).sum().backward();
  EXPECT_TRUE(torch::allclose(w1.grad(), w1_ref.grad()));
  EXPECT_TRUE(torch::allclose(w2.grad(), w2_ref.grad()));
}

// Child: the GPU is kept busy past the deadline, so the collective queued behind it cannot finish.
TEST(MpiNcclTimeoutChild, Run) {
  if (!std::getenv("PATHVLM_NCCL_TIMEOUT_CHILD")) GTEST_SKIP() << "launched by NcclComm.WatchdogEndsAStuckCollective";
  auto comm = nccl_comm(/*timeout_s=*/2);
  auto t = torch::ones({1000}, torch::TensorOptions().device(torch::kCUDA, 0));
  at::cuda::sleep(int64_t(30) * 2'000'000'000);  // ~30 s of spinning at ~2 GHz on the current stream
  comm->allreduce(t);
  torch::cuda::synchronize();
  ADD_FAILURE() << "the collective finished behind a stuck stream";
}

TEST(NcclComm, WatchdogEndsAStuckCollective) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  std::string cmd = pathvlm::str("PATHVLM_NCCL_TIMEOUT_CHILD=1 timeout -k 5 60 ", self,
                                 " --gtest_filter=MpiNcclTimeoutChild.Run 2>&1");
  auto start = std::chrono::steady_clock::now();
  FILE* pipe = popen(cmd.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t got = fread(buffer, 1, sizeof(buffer), pipe)) output.append(buffer, got);
  int status = WEXITSTATUS(pclose(pipe));
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(status, 0) << output;
  EXPECT_NE(status, 124) << "the wall-clock guard had to end it:\n" << output;
  EXPECT_NE(output.find("allreduce #1 (4000 bytes) timed out after 2 s"), std::string::npos) << output;
  EXPECT_LT(seconds, 25) << output;
}
#endif  // PATHVLM_HAVE_NCCL
