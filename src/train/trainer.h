// The Trainer: one generic loop for every task (see task.h), read top to bottom in Trainer::run():
//
//   processes, device, Comm -> run directory, settings table -> task builds model and data -> freezing
//   (printed) -> Reducer, AdamW over its local shards, schedule -> resume -> for each step:
//     preemption / timed-save agreement (tiny MAX allreduce) -> micro-batches (data wait timed) ->
//     task forward/backward (Reducer syncs on the last micro-step) -> rank-averaged loss, grad norm ->
//     non-finite: skip and count (abort after max_nonfinite in a row) | clip, set lr, AdamW, all-gather
//     params when sharded -> log line + metrics -> eval -> checkpoint
//   -> final checkpoint, eval, export.
//
// run() returns the process exit status: 0 when all steps are done, kExitRequeue (42) after a preemption
// checkpoint (SIGUSR1 / SIGTERM).
#pragma once
#include <memory>

#include "train/job_config.h"
#include "train/task.h"

namespace pathvlm::train {

class Trainer {
 public:
  Trainer(JobConfig job, std::unique_ptr<Task> task);
  ~Trainer();
  int run();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// `pathvlm train`: builds the task named by job.run.task and runs it. Returns the exit status.
int train(const JobConfig& job);

}  // namespace pathvlm::train
