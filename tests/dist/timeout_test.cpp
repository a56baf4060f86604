// A dead or stuck rank must end the whole job with a clear message within the timeout, never hang.
// Each test launches this test binary under mpirun with 3 ranks (MpiTimeoutChild.Run) and checks the
// exit status, the output and the elapsed time. A wall-clock guard (coreutils timeout) bounds the run.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "core/error.h"
#include "dist/process_group.h"

using namespace pathvlm::dist;

namespace {

constexpr double kTimeoutS = 2.0;
constexpr int kGuardS = 120;  // wall-clock guard: `timeout` exits 124 if it has to end the job

struct JobResult {
  int status = -1;  // exit status of mpirun (mpirun reports a rank killed by signal 9 as 137)
  std::string output;
  double seconds = 0;
};

JobResult run_three_ranks(const std::string& mode) {
  char self[4096];
  ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  self[n > 0 ? n : 0] = '\0';
  std::string cmd = pathvlm::str("timeout -k 5 " , kGuardS, " ", PATHVLM_MPIRUN,
                                 " -np 3 --oversubscribe --allow-run-as-root -x PATHVLM_TIMEOUT_CHILD=", mode, " ",
                                 self, " --gtest_filter=MpiTimeoutChild.Run 2>&1");
  JobResult result;
  auto start = std::chrono::steady_clock::now();
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return result;
  char buffer[4096];
  while (size_t got = fread(buffer, 1, sizeof(buffer), pipe)) result.output.append(buffer, got);
  int status = pclose(pipe);
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  result.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

// mpirun wraps its own messages at a width of its choosing (OpenMPI 5's prterun breaks "exited on | signal 9"):
// they are searched with every run of whitespace as one space.
std::string single_spaced(const std::string& text) {
  std::string out;
  for (char c : text) {
    bool space = std::isspace(static_cast<unsigned char>(c));
    if (!space) out += c;
    else if (!out.empty() && out.back() != ' ') out += ' ';
  }
  return out;
}

}  // namespace

// The child job: a few good collectives, then rank 2 dies (SIGKILL) or hangs; ranks 0 and 1 go on. In mode
// "abort-hangs" rank 0 ends the job instead, with a release step that never returns (like ncclCommAbort
// behind stuck GPU work), while the others sleep outside any collective: only rank 0's bounded exit can end it.
TEST(MpiTimeoutChild, Run) {
  const char* mode = std::getenv("PATHVLM_TIMEOUT_CHILD");
  if (!mode) GTEST_SKIP() << "launched by CommTimeout.* only";
  DistConfig cfg;
  cfg.timeout_s = kTimeoutS;
  auto comm = make_comm(cfg, torch::kCPU);
  ASSERT_EQ(comm->world_size(), 3);
  for (int i = 0; i < 3; ++i) {
    auto t = torch::ones({1000});
    comm->allreduce(t);
    ASSERT_EQ(t[0].item<float>(), 3.0f);
  }
  if (std::string(mode) == "abort-hangs") {
    if (comm->rank() == 0) abort_job("test: ending the job", [] { std::this_thread::sleep_for(std::chrono::hours(1)); });
    std::this_thread::sleep_for(std::chrono::hours(1));
  }
  if (comm->rank() == 2) {
    if (std::string(mode) == "kill") std::raise(SIGKILL);
    std::this_thread::sleep_for(std::chrono::hours(1));  // stuck
  }
  auto t = torch::ones({1000});
  comm->allreduce(t);  // allreduce #4: never completes
  ADD_FAILURE() << "allreduce #4 completed without rank 2";
}

TEST(CommTimeout, StuckRankEndsEveryRankWithAMessage) {
  auto job = run_three_ranks("stuck");
  EXPECT_NE(job.status, 0) << job.output;
  EXPECT_NE(job.status, 124) << "the wall-clock guard had to end the job:\n" << job.output;
  EXPECT_NE(job.output.find("allreduce #4 (4000 bytes) timed out after 2 s: a peer is dead or stuck"),
            std::string::npos)
      << job.output;
  EXPECT_TRUE(job.output.find("[rank 0]") != std::string::npos || job.output.find("[rank 1]") != std::string::npos)
      << job.output;
  EXPECT_LT(job.seconds, kTimeoutS + 30) << job.output;
}

TEST(CommTimeout, KilledRankEndsEveryRankWithAMessage) {
  auto job = run_three_ranks("kill");
  EXPECT_NE(job.status, 0) << job.output;
  EXPECT_NE(job.status, 124) << "the wall-clock guard had to end the job:\n" << job.output;
  // Whoever notices first ends the job: mpirun (the process died) or a survivor (timeout or MPI error).
  std::string output = single_spaced(job.output);
  bool explained = output.find("exited on signal 9") != std::string::npos ||
                   output.find("timed out after 2 s") != std::string::npos ||
                   output.find("a peer may have died") != std::string::npos;
  EXPECT_TRUE(explained) << job.output;
  EXPECT_LT(job.seconds, kTimeoutS + 30) << job.output;
}

// The exit is bounded even when the release step (ncclCommAbort, MPI_Abort) hangs, and the message comes first.
TEST(AbortJob, ExitsWithinTheGraceEvenWhenReleaseHangs) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto start = std::chrono::steady_clock::now();
  EXPECT_EXIT(abort_job("collective #7 timed out", [] { std::this_thread::sleep_for(std::chrono::hours(1)); }),
              ::testing::ExitedWithCode(pathvlm::kExitError),
              "\\[rank 0\\] collective #7 timed out\n.*the abort did not finish within 3 s");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(seconds, kAbortGraceS);
  EXPECT_LT(seconds, kAbortGraceS + 10);
}

TEST(AbortJob, ExitsAtOnceWhenReleaseReturns) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  bool released = false;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EXIT(abort_job("stuck", [&] { released = true; }), ::testing::ExitedWithCode(pathvlm::kExitError), "\\[rank 0\\] stuck");
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), kAbortGraceS);
}

TEST(CommTimeout, HangingAbortStillEndsEveryRank) {
  auto job = run_three_ranks("abort-hangs");
  EXPECT_NE(job.status, 0) << job.output;
  EXPECT_NE(job.status, 124) << "the wall-clock guard had to end the job:\n" << job.output;
  EXPECT_NE(job.output.find("[rank 0] test: ending the job"), std::string::npos) << job.output;
  EXPECT_LT(job.seconds, kAbortGraceS + 20) << job.output;
}
