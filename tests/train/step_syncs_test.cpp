// A training step reads nothing on the host (issue 12): no .item(), no copy to host memory, no bool of a tensor
// between the step's start and its optimizer update, counted by libtorch's operator observers
// (core/host_reads.h) on every thread while the real Trainer runs. The numbers are read at the sync points only
// (log lines, evaluation, checkpoints, the end). Checked on the CPU, where such a read costs nothing but is the
// same code that would stall a GPU. The CLIP task's step is checked in tests/train/clip/task_test.cpp.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <set>
#include <vector>

#include "core/host_reads.h"
#include "core/join.h"
#include "dist/comm.h"
#include "train/trainer.h"
#include "test_util.h"
#include "train_test_util.h"

using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

// The lm task (NaN on `nan_steps`), recording how many collectives each step issues; optionally reading a value
// on the host inside its step (what the counter must catch).
class ObservedLmTask : public NanLmTask {
 public:
  explicit ObservedLmTask(std::set<int> nan_steps = {}) : NanLmTask(std::move(nan_steps)) {}
  bool read_inside = false;
  std::vector<int64_t> collectives_at_step;  // the comm's count when each step's forward_backward starts
  bool host_is_device_comm = false;

  train::StepOutput forward_backward(const std::vector<train::Batch>& micro, train::StepContext& ctx) override {
    collectives_at_step.push_back(ctx.comm.collectives_issued());
    host_is_device_comm = &ctx.comm.host() == &ctx.comm;
    auto out = NanLmTask::forward_backward(micro, ctx);
    if (read_inside) (void)out.loss.item<double>();
    return out;
  }
};

JobConfig job_of(const std::string& dir, const std::string& name) {
  auto job = tiny_lm_job(dir, name, /*seed=*/3, /*steps=*/8);
  job.log.every = 4;
  job.optim.clip_grad_norm = 0.5;
  job.train.grad_accum = 2;
  return job;
}

}  // namespace

TEST(StepSyncs, TheLmStepReadsNothingOnTheHost) {
  auto dir = fresh_dir("syncs_lm");
  auto task = std::make_unique<ObservedLmTask>();
  auto* observed = task.get();  // owned by the trainer, alive while it is
  HostReadCounter reads;
  train::Trainer trainer(job_of(dir, "lm"), std::move(task));
  ASSERT_EQ(trainer.run(), 0);
  EXPECT_EQ(reads.steps(), 8);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  EXPECT_GT(reads.outside_steps(), 0);  // the sync points do read (and the counter sees them)
  // Every step issues the same collectives (the sync points issue none); on the CPU the host communicator is the
  // device's.
  ASSERT_EQ(observed->collectives_at_step.size(), 8u);
  const int64_t per_step = observed->collectives_at_step[1] - observed->collectives_at_step[0];
  for (size_t i = 2; i < observed->collectives_at_step.size(); ++i)
    EXPECT_EQ(observed->collectives_at_step[i] - observed->collectives_at_step[i - 1], per_step) << "step " << i;
  EXPECT_TRUE(observed->host_is_device_comm);
  std::filesystem::remove_all(dir);
}

// bf16 autocast and bf16 weights (fp32 masters copied back after the update) add no read either.
TEST(StepSyncs, Bf16PrecisionsReadNothingOnTheHost) {
  for (const char* precision : {"bf16-mixed", "bf16"}) {
    auto dir = fresh_dir(std::string("syncs_") + precision);
    auto job = job_of(dir, precision);
    job.train.precision = precision;
    HostReadCounter reads;
    ASSERT_EQ(train::Trainer(job, std::make_unique<ObservedLmTask>()).run(), 0) << precision;
    EXPECT_EQ(reads.in_steps(), 0) << precision << ": " << join(reads.in_step_reads());
    std::filesystem::remove_all(dir);
  }
}

TEST(StepSyncs, AReadInsideAStepIsCaught) {
  auto dir = fresh_dir("syncs_caught");
  auto task = std::make_unique<ObservedLmTask>();
  task->read_inside = true;
  HostReadCounter reads;
  ASSERT_EQ(train::Trainer(job_of(dir, "caught"), std::move(task)).run(), 0);
  EXPECT_EQ(reads.in_steps(), 8);
  for (const auto& read : reads.in_step_reads()) EXPECT_EQ(read, "aten::_local_scalar_dense");
  std::filesystem::remove_all(dir);
}

// Skipping is decided on the device and reported at the next sync point: steps 2 and 3 are skipped (the log
// every 4 steps reports both, naming the last), the run goes on, and the counts reach the checkpoint.
TEST(StepSyncs, NonFiniteStepsAreReportedAtTheNextSyncPoint) {
  auto dir = fresh_dir("syncs_nan");
  auto task = std::make_unique<ObservedLmTask>(std::set<int>{2, 3});
  auto job = job_of(dir, "nan");
  job.train.max_nonfinite = 3;
  HostReadCounter reads;
  ASSERT_EQ(train::Trainer(job, std::move(task)).run(), 0);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  const auto log = read_text(dir + "/nan/log.txt");
  EXPECT_HAS(log, "step 3: non-finite loss");
  EXPECT_HAS(log, "2 updates skipped since the last report (2 in total, 0 in a row now)");
  EXPECT_HAS(log, "8 steps (2 skipped as non-finite)");
  const auto state = nlohmann::json::parse(read_text(dir + "/nan/checkpoints/step_00000008/trainer_state.json"));
  EXPECT_EQ(state["skipped_steps"], 2);
  EXPECT_EQ(state["optimizer"]["step"], 6);  // AdamW counted only the applied updates
  std::filesystem::remove_all(dir);
}

// Under mpirun: two ranks with the optimizer state sharded (the gradient norm summed over ranks, parameters
// all-gathered after the update) read nothing on the host either.
TEST(MpiStepSyncs, TheShardedStepOnTwoRanksReadsNothingOnTheHost) {
  // Both ranks share the run directory: named after mpirun's process.
  const auto dir = (std::filesystem::temp_directory_path() / ("pathvlm_test_mpi_syncs_" + std::to_string(::getppid())))
                       .string();
  auto job = job_of(dir, "sharded");
  job.dist.shard_optimizer = true;
  HostReadCounter reads;
  ASSERT_EQ(train::Trainer(job, std::make_unique<ObservedLmTask>()).run(), 0);
  EXPECT_EQ(reads.steps(), 8);
  EXPECT_EQ(reads.in_steps(), 0) << join(reads.in_step_reads());
  if (const char* rank = std::getenv("OMPI_COMM_WORLD_RANK"); rank && std::string(rank) == "0")
    std::filesystem::remove_all(dir);  // the run ended with a barrier: the other rank is done with it
}
