// Signal handlers may only touch lock-free atomics; everything else happens at the next step boundary.
#include "train/preemption.h"

#include <atomic>
#include <csignal>

namespace pathvlm::train {
namespace {

std::atomic<int> g_signal{0};
static_assert(std::atomic<int>::is_always_lock_free, "signal flag must be lock-free");

extern "C" void on_preemption_signal(int sig) { g_signal.store(sig, std::memory_order_relaxed); }

}  // namespace

void install_preemption_handlers() {
  struct sigaction action {};
  action.sa_handler = on_preemption_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // interrupted system calls (file and MPI I/O) continue
  sigaction(SIGUSR1, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int preemption_signal() { return g_signal.load(std::memory_order_relaxed); }

void clear_preemption() { g_signal.store(0, std::memory_order_relaxed); }

}  // namespace pathvlm::train
