// The Trainer: one generic loop for every task (see task.h), read top to bottom in Trainer::run():
//
//   processes, device, Comm -> a finished run stops here unless asked -> run directory, settings table of the
//   engine's and the task's sections -> task builds model and data -> freezing
//   (printed) -> Reducer, AdamW over its local shards, schedule -> resume -> for each step:
//     preemption / timed-save agreement (tiny MAX allreduce on the host communicator) -> [the step, which reads
//     nothing on the host: micro-batches (data wait timed) -> task forward/backward (Reducer syncs on the last
//     micro-step) -> rank-averaged loss, grad norm, clipping -> AdamW, skipped on the device when the loss or
//     norm is not finite; all-gather params when sharded] -> at sync points (log, eval, checkpoint, end) one
//     read of the step's numbers: skipped steps reported (abort after max_nonfinite in a row), log line +
//     metrics -> eval -> checkpoint
//   -> final eval, checkpoint, export -> results.json and the plots (rank 0).
//
// run() returns the process exit status: 0 when all steps are done, kExitRequeue (42) after a preemption
// checkpoint (SIGUSR1 / SIGTERM), kExitError (2) when it refuses to continue a finished run (see
// finished_run_refusal). At the end rank 0 writes results.json and the plots (src/train/run_results.h).
#pragma once
#include <memory>

#include "train/job_config.h"
#include "train/task.h"

namespace pathvlm::train {

// The status of an error (src/cli/main.cpp), returned by every rank when they agree not to start.
constexpr int kExitError = 2;

class Trainer {
 public:
  // continue_finished: continue the run even if it finished (`pathvlm train --force`); see finished_run_refusal.
  Trainer(JobConfig job, std::unique_ptr<Task> task, bool continue_finished = false);
  ~Trainer();
  int run();

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// `pathvlm train`: builds the task named by job.run.task and runs it. Returns the exit status.
int train(const JobConfig& job, bool continue_finished = false);

}  // namespace pathvlm::train
