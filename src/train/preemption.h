// Preemption: SIGUSR1 / SIGTERM only set a flag; the Trainer checks it at every step boundary, all ranks
// agree (a tiny MAX allreduce), save a checkpoint and the process exits with kExitRequeue.
//
// Exit status 42 means "checkpointed because of a signal, requeue me": launch/slurm/*.sbatch asks SLURM for
// SIGUSR1 before the time limit (--signal=USR1@120) and runs `scontrol requeue` when it sees 42; the
// requeued job resumes with `checkpoint.resume: auto`.
#pragma once

namespace pathvlm::train {

constexpr int kExitRequeue = 42;

// Installs the SIGUSR1 and SIGTERM handlers (idempotent). They only store the signal number.
void install_preemption_handlers();
// The signal received on this process since the last clear (0: none).
int preemption_signal();
void clear_preemption();

}  // namespace pathvlm::train
