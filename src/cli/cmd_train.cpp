// `pathvlm train CONFIG [key=value ...]`: runs the task named by run.task with the generic Trainer.
// Exit status: 0 done, 42 checkpointed after SIGUSR1/SIGTERM (requeue), 2 on an error.
#include <iostream>

#include "cli/args.h"
#include "cli/commands.h"
#include "core/error.h"
#include "dist/process_group.h"
#include "train/job_config.h"
#include "train/preemption.h"
#include "train/task.h"
#include "train/trainer.h"

namespace pathvlm::cli {

int cmd_train(const Args& args) {
  std::string tasks;
  for (const auto& n : train::task_names()) tasks += (tasks.empty() ? "" : ", ") + n;
  ArgParser parser("pathvlm train",
                   "Train the task named by run.task (" + tasks +
                       ") on this process and any others started with it (mpirun, srun, torchrun).\n"
                       "Exit status: 0 done; 42 = checkpointed after SIGUSR1/SIGTERM, requeue me; 2 error (also: the "
                       "run finished already).");
  parser.positional("config", "the YAML job config");
  parser.flag("force", "continue the run even if it finished already (its results.json exists), e.g. after raising "
                       "train.steps; without it such a run stops at once, saying so");
  parser.positional("overrides", "key=value overrides, e.g. optim.lr=1e-4 train.steps=100", true, false);
  if (!parser.parse(args)) return 0;
  const auto& pos = parser.positionals();
  JobConfig job = load_job_config(pos[0], Args(pos.begin() + 1, pos.end()));
  const auto& env = dist::init_processes();
  try {
    return train::train(job, /*continue_finished=*/parser.get_flag("force"));
  } catch (const std::exception& e) {
    // One rank's error must end the others too, or they would wait in a collective until the timeout.
    if (env.world_size > 1) dist::abort_job(str("pathvlm train: error: ", e.what()));
    throw;
  }
}

}  // namespace pathvlm::cli
