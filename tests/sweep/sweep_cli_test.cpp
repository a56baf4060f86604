// `pathvlm sweep` end to end on this machine: the real program, launch/local.sh and mpirun, the tiny `lm` task.
// A bad point stops the sweep before anything runs; a local launch trains every point; launching again skips the
// finished ones and resumes a preempted one from its checkpoint; `sweep status` and `runs compare` read them back.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

std::string read_text(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Result {
  int status;
  std::string out;
};

// `pathvlm ARGS` run from the source tree (where launch/ is), stdout and stderr together.
Result pathvlm(const std::string& args, const fs::path& scratch, const std::string& env = "") {
  const auto out = scratch / "cli.txt";
  const std::string cmd = "cd " + std::string(PATHVLM_SOURCE_DIR) + " && " + env + " " + PATHVLM_BINARY + " " + args +
                          " > " + out.string() + " 2>&1";
  const int raw = std::system(cmd.c_str());
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, read_text(out)};
}

}  // namespace

TEST(SweepCli, LocalLaunchSkipsFinishedResumesPreemptedAndReports) {
  if (std::string(PATHVLM_MPIRUN).empty()) GTEST_SKIP() << "mpirun not found";
  const fs::path t = fs::temp_directory_path() / ("pathvlm_sweep_cli_" + std::to_string(::getpid()));
  fs::remove_all(t);
  fs::create_directories(t);
  auto r = pathvlm("synth text --out " + (t / "text").string() + " --train 200 --eval 20", t);
  ASSERT_EQ(r.status, 0) << r.out;
  std::ofstream(t / "lm.yaml") << "run: {task: lm, seed: 0}\nlog: {every: 1, tensorboard: false, flush_secs: 0}\n"
                               << "train: {steps: 8, micro_batch_size: 8, device: cpu}\n"
                               << "checkpoint: {every_steps: 4, keep_last: 1}\neval: {every: 4}\n"
                               << "lm: {model: tiny, tokenizer: " << (t / "text/tokenizer.model").string()
                               << ", seq_len: 32, data: {train: [" << (t / "text/train.jsonl").string()
                               << "], eval: [" << (t / "text/eval.jsonl").string() << "], workers: 1},"
                               << " eval: {max_sequences: 8}}\n";

  // A bad value in one point: nothing is launched, the point and the key are named.
  std::ofstream(t / "bad.yaml") << "base: lm.yaml\ngrid: {optim.lr: [1.0e-3, -1.0]}\n";
  r = pathvlm("sweep " + (t / "bad.yaml").string() + " --launch local --dir " + (t / "bad").string(), t);
  EXPECT_EQ(r.status, 2) << r.out;
  EXPECT_HAS(r.out, "point 1 (lr=-1.0)");
  EXPECT_HAS(r.out, "optim.lr");
  EXPECT_FALSE(fs::exists(t / "bad"));

  // Point 1 is preempted after step 6 (SIGUSR1 -> checkpoint -> exit 42) and not restarted by the launcher.
  std::ofstream(t / "sweep.yaml") << "base: lm.yaml\ngrid: {optim.lr: [1.0e-3, 3.0e-3]}\n"
                                  << "zip: {train.fault.step: [0, 6], train.fault.signal: [USR1, USR1]}\n"
                                  << "launch: {ranks: 1, parallel: 2}\n";
  const std::string sweep = "sweep " + (t / "sweep.yaml").string() + " --dir " + (t / "sw").string();
  r = pathvlm(sweep + " --dry-run", t);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_HAS(r.out, "4 points");
  EXPECT_HAS(r.out, "| 3   | lr=3.0e-3_step=6_signal=USR1 |");
  r = pathvlm(sweep + " --launch local", t, "PATHVLM_NO_REQUEUE=1");
  EXPECT_EQ(r.status, 2) << r.out;  // two points stopped with status 42
  EXPECT_HAS(r.out, "2 of 4 sweep points failed");
  EXPECT_EQ(read_text(t / "sw/status/lr=1.0e-3_step=0_signal=USR1"), "exit 0\n");
  EXPECT_EQ(read_text(t / "sw/status/lr=3.0e-3_step=6_signal=USR1"), "exit 42\n");
  r = pathvlm("sweep status " + (t / "sw").string() + " --format csv", t);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_HAS(r.out, "lr=3.0e-3_step=6_signal=USR1,preempted,6,8,");
  EXPECT_HAS(r.out, "lr=3.0e-3_step=0_signal=USR1,done,8,8,");

  // Again: the finished points are skipped, the preempted ones resume from step 6 and finish.
  r = pathvlm(sweep + " --launch local", t);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_HAS(r.out, "skipping 2 finished points");
  EXPECT_HAS(read_text(t / "sw/lr=3.0e-3_step=6_signal=USR1/log.txt"), "at step 6");
  EXPECT_HAS(read_text(t / "sw/jobs.txt"), "local\tlocal\t0,1,2,3\n");
  EXPECT_HAS(read_text(t / "sw/jobs.txt"), "local\tlocal\t1,3\n");
  r = pathvlm(sweep + " --launch local", t);
  EXPECT_HAS(r.out, "nothing to launch");

  r = pathvlm("sweep status " + (t / "sw").string() + " --format json --sort name", t);
  ASSERT_EQ(r.status, 0) << r.out;
  const auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["runs"].size(), 4u);
  for (const auto& run : j["runs"]) {
    EXPECT_EQ(run["state"], "done") << run.dump();
    EXPECT_EQ(run["step"], 8);
    EXPECT_TRUE(run["final"].contains("eval/accuracy")) << run.dump();
  }
  EXPECT_EQ(j["metric"], "eval/accuracy");
  EXPECT_TRUE(fs::file_size(t / "sw/eval_accuracy.png") > 1000);
  EXPECT_HAS(j["best_config"].get<std::string>(), "steps: 8");

  r = pathvlm("runs compare " + (t / "sw").string() + " --metric train/loss --sort loss --plot " +
                  (t / "loss.png").string(),
              t);
  ASSERT_EQ(r.status, 0) << r.out;
  EXPECT_HAS(r.out, "| run ");
  EXPECT_HAS(r.out, "* best train/loss:");
  EXPECT_HAS(r.out, "resolved config of");
  EXPECT_TRUE(fs::exists(t / "loss.png"));
  fs::remove_all(t);
}
