// The startup memory table against its formula, on a model whose sizes are known: a trainable Linear(4, 4)
// (16 weights with decay + 4 biases without: two buckets of 16 and 4 elements, even so no padding at 2 ranks)
// and a frozen Linear(2, 3) (9 parameters). Unsharded runs in one process; sharded under mpirun -np 2. Each table
// is also planned from the shapes alone (plan_memory_per_rank), which must give the same rows.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dist/process_group.h"
#include "dist/reducer.h"
#include "train/memory.h"

using namespace pathvlm;

namespace {

dist::Comm& world_comm() {
  static std::unique_ptr<dist::Comm> comm = [] {
    dist::DistConfig cfg;
    cfg.timeout_s = 60;
    return dist::make_comm(cfg, torch::kCPU);
  }();
  return *comm;
}

train::MemoryTable table_for(torch::ScalarType dtype, bool sharded) {
  torch::nn::Linear trained(4, 4), frozen(2, 3);
  std::vector<torch::Tensor> all;
  for (auto* module : {&trained, &frozen})
    for (auto& p : (*module)->parameters()) {
      torch::NoGradGuard no_grad;
      p.set_data(p.to(dtype));
      all.push_back(p);
    }
  for (auto& p : frozen->parameters()) p.requires_grad_(false);
  dist::DistConfig cfg;
  cfg.shard_optimizer = sharded;
  const bool bf16 = dtype != torch::kFloat32;
  // The plan reads shapes before the Reducer moves the parameters into its buckets, as a recipe check would.
  const auto plan = train::plan_memory_per_rank(
      {{"weight", trained->weight, true}, {"bias", trained->bias, false}, {"frozen.weight", frozen->weight, true},
       {"frozen.bias", frozen->bias, true}},
      bf16, world_comm().world_size(), world_comm().rank(), cfg);
  dist::Reducer reducer({{"weight", trained->weight, true}, {"bias", trained->bias, false}}, world_comm(), cfg);
  const auto table = train::memory_per_rank(reducer.memory(), all, /*fp32_master=*/bf16);
  EXPECT_EQ(plan.rows(), table.rows()) << "the plan differs from the startup table";
  return table;
}

}  // namespace

TEST(MemoryTable, UnshardedFp32AndBf16) {
  ASSERT_EQ(world_comm().world_size(), 1);
  const auto fp32 = table_for(torch::kFloat32, false);
  EXPECT_EQ(fp32.weights, (20 + 9) * 4);
  EXPECT_EQ(fp32.gradients, 20 * 4);
  EXPECT_EQ(fp32.master_weights, 0);
  EXPECT_EQ(fp32.optimizer_moments, 2 * 20 * 4);
  EXPECT_EQ(fp32.total(), 116 + 80 + 160);

  const auto bf16 = table_for(torch::kBFloat16, false);
  EXPECT_EQ(bf16.weights, (20 + 9) * 2);
  EXPECT_EQ(bf16.gradients, 20 * 2);
  EXPECT_EQ(bf16.master_weights, 20 * 4);
  EXPECT_EQ(bf16.optimizer_moments, 2 * 20 * 4);
  EXPECT_EQ(bf16.total(), 58 + 40 + 80 + 160);
  ASSERT_EQ(bf16.rows().size(), 5u);
  EXPECT_EQ(bf16.rows().back(), std::make_pair(std::string("total"), bf16.total()));
}

// Sharded over 2 ranks (ZeRO-2): each rank keeps only its reduced half of the gradients (10) and the optimizer
// state of its half; the weights are replicated.
TEST(MpiMemoryTable, ShardedOverTwoRanks) {
  ASSERT_EQ(world_comm().world_size(), 2);
  const auto fp32 = table_for(torch::kFloat32, true);
  EXPECT_EQ(fp32.weights, (20 + 9) * 4);
  EXPECT_EQ(fp32.gradients, 10 * 4);
  EXPECT_EQ(fp32.master_weights, 0);
  EXPECT_EQ(fp32.optimizer_moments, 2 * 10 * 4);

  const auto bf16 = table_for(torch::kBFloat16, true);
  EXPECT_EQ(bf16.weights, (20 + 9) * 2);
  EXPECT_EQ(bf16.gradients, 10 * 2);
  EXPECT_EQ(bf16.master_weights, 10 * 4);
  EXPECT_EQ(bf16.optimizer_moments, 2 * 10 * 4);
  EXPECT_EQ(bf16.total(), 58 + 20 + 40 + 80);
}
