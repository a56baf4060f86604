// Comm collectives with checked values: run as MpiComm* under mpirun with 2 and 3 ranks (mpi.cmake), and
// the local (world size 1) Comm in the plain test run.
#include <gtest/gtest.h>

#include "core/error.h"
#include "dist/process_group.h"
#include "dist_test_util.h"

using namespace pathvlm::dist;
using pathvlm::dist::testing::world_comm;

namespace {

const std::vector<torch::ScalarType> kReduceTypes = {torch::kFloat, torch::kDouble, torch::kHalf, torch::kBFloat16,
                                                     torch::kLong};

// Every element of `t` (any dtype) as double, compared to `expected`.
void expect_equal(const torch::Tensor& t, const torch::Tensor& expected, const std::string& what) {
  ASSERT_EQ(t.sizes(), expected.sizes()) << what;
  EXPECT_TRUE(torch::equal(t.to(torch::kDouble), expected.to(torch::kDouble)))
      << what << "\n got " << t << "\n expected " << expected;
}

}  // namespace

TEST(MpiComm, RunsOverMpiWithAllRanks) {
  auto& comm = world_comm();
  EXPECT_EQ(comm.backend(), "mpi");
  EXPECT_GE(comm.world_size(), 2);
  auto env = init_processes();
  EXPECT_EQ(env.rank, comm.rank());
  EXPECT_EQ(env.world_size, comm.world_size());
  EXPECT_EQ(env.local_world_size, comm.world_size());  // one node
  EXPECT_EQ(env.local_rank, comm.rank());
}

TEST(MpiComm, AllreduceSumAvgMaxOverDtypesAndUnevenSizes) {
  auto& comm = world_comm();
  const int r = comm.rank(), w = comm.world_size();
  for (auto dtype : kReduceTypes) {
    for (int64_t n : {7, 1, 0, 1000}) {
      auto base = torch::arange(n, torch::kDouble).remainder(16);  // small integers: exact in f16/bf16
      auto sum = base * w + w * (w + 1) / 2.0;                      // sum over q of (base + q + 1)
      std::string what = pathvlm::str(c10::toString(dtype), " n=", n);

      auto t = (base + (r + 1)).to(dtype);
      comm.allreduce(t, ReduceOp::Sum);
      EXPECT_EQ(t.scalar_type(), dtype);
      expect_equal(t, sum, "sum " + what);

      t = (base + (r + 1)).to(dtype);
      comm.allreduce(t, ReduceOp::Max);
      expect_equal(t, base + w, "max " + what);

      if (dtype == torch::kLong) continue;  // avg is for floating types
      t = (base + (r + 1)).to(dtype);
      comm.allreduce(t, ReduceOp::Avg);
      expect_equal(t, (sum / w).to(dtype), "avg " + what);
    }
  }
}

TEST(MpiComm, AsyncAllreducesInFlightTogether) {
  auto& comm = world_comm();
  const int w = comm.world_size();
  std::vector<torch::Tensor> ts;
  std::vector<std::unique_ptr<Work>> works;
  for (int i = 0; i < 6; ++i) {
    ts.push_back(torch::full({1000 * (i + 1)}, float(i + comm.rank())));
    works.push_back(comm.allreduce_async(ts.back(), ReduceOp::Sum));
  }
  for (auto& work : works) work->wait();
  for (int i = 0; i < 6; ++i) {
    EXPECT_TRUE(works[i]->done());
    EXPECT_EQ(ts[i][0].item<float>(), float(i * w + w * (w - 1) / 2)) << i;
  }
}

TEST(MpiComm, AllgatherOrdersByRankAndWorksInPlace) {
  auto& comm = world_comm();
  const int r = comm.rank(), w = comm.world_size();
  for (auto dtype : {torch::kFloat, torch::kLong, torch::kBFloat16, torch::kByte}) {
    auto in = (torch::arange(5) + 10 * r).to(dtype);
    auto out = torch::zeros({5 * w}, dtype);
    comm.allgather(in, out);
    for (int q = 0; q < w; ++q) expect_equal(out.narrow(0, 5 * q, 5), torch::arange(5) + 10 * q, "allgather");

    auto shared = torch::full({3 * w}, -1, dtype);  // in-place: the input is this rank's chunk
    auto mine = shared.narrow(0, 3 * r, 3);
    mine.fill_(r);
    comm.allgather(mine, shared);
    for (int q = 0; q < w; ++q) expect_equal(shared.narrow(0, 3 * q, 3), torch::full({3}, q), "in-place allgather");
  }
  auto in = torch::zeros({4});
  auto bad = torch::zeros({4 * w + 1});
  EXPECT_THROW(comm.allgather(in, bad), pathvlm::Error);
}

TEST(MpiComm, ReduceScatterGivesEachRankItsChunk) {
  auto& comm = world_comm();
  const int r = comm.rank(), w = comm.world_size();
  for (auto dtype : kReduceTypes) {
    const int64_t k = 3;
    auto in = (torch::arange(k * w) + r).to(dtype);
    auto out = torch::zeros({k}, dtype);
    comm.reduce_scatter(in, out, ReduceOp::Sum);
    auto expected = torch::arange(r * k, (r + 1) * k) * w + w * (w - 1) / 2;
    expect_equal(out, expected, pathvlm::str("reduce_scatter ", c10::toString(dtype)));
    if (dtype == torch::kLong) continue;
    comm.reduce_scatter_async(in, out, ReduceOp::Avg)->wait();
    expect_equal(out, (expected.to(torch::kDouble) / w).to(dtype), "reduce_scatter avg");
  }
  auto in = torch::ones({5 * w + 1});
  auto out = torch::zeros({5});
  EXPECT_THROW(comm.reduce_scatter(in, out), pathvlm::Error);
}

TEST(MpiComm, BroadcastFromAnyRootAndBarrier) {
  auto& comm = world_comm();
  const int r = comm.rank(), w = comm.world_size();
  for (int root : {0, w - 1}) {
    auto t = torch::full({2, 3}, double(r * 100 + 7));
    comm.broadcast(t, root);
    expect_equal(t, torch::full({2, 3}, double(root * 100 + 7)), "broadcast");
  }
  auto before = comm.collectives_issued();
  comm.barrier();
  EXPECT_EQ(comm.collectives_issued(), before + 1);
  auto t = torch::zeros({1});
  EXPECT_THROW(comm.broadcast(t, w), pathvlm::Error);
}

TEST(MpiComm, RejectsBadTensors) {
  auto& comm = world_comm();
  auto strided = torch::zeros({4, 4}).t();
  EXPECT_THROW(comm.allreduce(strided), pathvlm::Error);
  auto ints = torch::zeros({4}, torch::kLong);
  EXPECT_THROW(comm.allreduce(ints, ReduceOp::Avg), pathvlm::Error);
  auto flags = torch::zeros({4}, torch::kBool);
  EXPECT_THROW(comm.allreduce(flags), pathvlm::Error);
}

TEST(LocalComm, WorldOfOneIsTheIdentity) {
  auto comm = make_local_comm();
  EXPECT_EQ(comm->world_size(), 1);
  auto t = torch::arange(4.0);
  comm->allreduce(t, ReduceOp::Avg);
  EXPECT_TRUE(torch::equal(t, torch::arange(4.0)));
  auto out = torch::zeros({4});
  comm->allgather(t, out);
  EXPECT_TRUE(torch::equal(out, t));
  auto rs = torch::zeros({4});
  comm->reduce_scatter(t, rs);
  EXPECT_TRUE(torch::equal(rs, t));
  EXPECT_EQ(comm->collectives_issued(), 3);
  auto bad = torch::zeros({5});
  EXPECT_THROW(comm->allgather(t, bad), pathvlm::Error);
}

TEST(MakeComm, SingleProcessWithoutLauncherIsLocal) {
  if (init_processes().mpi_launched) GTEST_SKIP() << "started by an MPI launcher";
  DistConfig cfg;
  auto comm = make_comm(cfg, torch::kCPU);
  EXPECT_EQ(comm->backend(), "local");
  cfg.backend = "nccl";
  EXPECT_THROW(make_comm(cfg, torch::kCPU), pathvlm::Error);  // no NCCL here, or NCCL on a CPU device
}
