// Nothing trained is lost and nothing edited is trusted, on real runs of the tiny `lm` job:
//   - DONE covers trainer_state.json: an edited state is refused when named, skipped (with a warning, falling back
//     to the previous checkpoint) with `resume: auto`; an old empty DONE is accepted;
//   - a SIGUSR1 that reaches `pathvlm train` right after it starts is kept: checkpoint at step 0, exit 42, and the
//     requeued run resumes from it;
//   - an error after start-up exits 2 on one process and under mpirun alike.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/preemption.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;
using Clock = std::chrono::steady_clock;

namespace {

// Replaces the first `from` in `path` with `to` (same length keeps the file size: only the checksum can tell).
void edit(const std::string& path, const std::string& from, const std::string& to) {
  std::string text = read_text(path);
  const auto at = text.find(from);
  ASSERT_NE(at, std::string::npos) << from << " not in " << path;
  text.replace(at, from.size(), to);
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}

// True once process `pid` runs pathvlm and catches `sig` (its SigCgt mask in /proc). Until its exec, the child of a
// fork still has this test process's handlers (an in-process train() of an earlier test installed them), and a
// signal sent then would be lost with them.
bool catches(pid_t pid, int sig) {
  std::error_code ec;
  const auto exe = fs::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec);
  if (ec || exe != fs::canonical(PATHVLM_BINARY)) return false;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("SigCgt:", 0) == 0) return (std::stoull(line.substr(7), nullptr, 16) >> (sig - 1)) & 1;
  return false;
}

// `pathvlm train <config>` as a child process with its output in `log`; returns its pid.
pid_t spawn_train(const std::string& config, const std::string& log) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    ::dup2(fd, 2);
    ::setenv("OMP_NUM_THREADS", "1", 1);
    ::execl(PATHVLM_BINARY, PATHVLM_BINARY, "train", config.c_str(), static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  return pid;
}

int exit_status(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

TEST(CheckpointState, DoneRecordsTheStateChecksum) {
  const std::string root = fresh_dir("state_crc");
  auto save = [&](int64_t step) {
    const auto tmp = train::ckpt::begin(root, step);
    std::ofstream(tmp + "/model.safetensors") << "weights " << step;
    return train::ckpt::commit(root, step, {{"step", step}, {"lr", 0.5}}, 5);
  };
  save(1);
  const auto dir = save(2);
  const auto done = nlohmann::json::parse(read_text(dir + "/DONE"));
  EXPECT_EQ(done["trainer_state.json"]["bytes"].get<int64_t>(),
            static_cast<int64_t>(fs::file_size(dir + "/trainer_state.json")));
  EXPECT_EQ(done["trainer_state.json"]["crc32"].get<uint32_t>(), train::ckpt::file_crc32(dir + "/trainer_state.json"));
  EXPECT_EQ(train::ckpt::verify(dir)["step"], 2);

  edit(dir + "/trainer_state.json", "0.5", "0.7");  // same size
  EXPECT_HAS(error_of([&] { train::ckpt::verify(dir); }),
             "step_00000002': trainer_state.json fails the CRC-32 check recorded in DONE (edited or corrupt");
  edit(dir + "/trainer_state.json", "0.7", "0.75");
  EXPECT_HAS(error_of([&] { train::ckpt::verify(dir); }), "trainer_state.json has ");
  EXPECT_HAS(error_of([&] { train::ckpt::verify(dir); }), " bytes, DONE records ");
  std::vector<std::string> warnings;
  auto found = train::ckpt::find_latest_complete(root, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->step, 1);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_HAS(warnings[0], "trainer_state.json has ");
  EXPECT_HAS(warnings[0], "falling back to an older checkpoint");

  // DONE of an older pathvlm (empty): accepted as then; a DONE that is not a record: refused.
  std::ofstream(root + "/step_00000001/DONE", std::ios::trunc);
  EXPECT_EQ(train::ckpt::verify(root + "/step_00000001")["step"], 1);
  std::ofstream(root + "/step_00000001/DONE", std::ios::trunc) << "{\"trainer_state.json\": ";
  EXPECT_HAS(error_of([&] { train::ckpt::verify(root + "/step_00000001"); }), "step_00000001': DONE is corrupt");
  fs::remove_all(root);
}

TEST(CheckpointState, EditedStateOfARealRunIsRefusedWhenNamedAndSkippedWithAuto) {
  const std::string dir = fresh_dir("edited_state");
  JobConfig job = tiny_lm_job(dir, "edited", /*seed=*/3, /*steps=*/4);
  job.checkpoint.every_steps = 2;
  ASSERT_EQ(train::train(job), 0);
  const std::string ckpts = dir + "/edited/checkpoints";
  ASSERT_TRUE(fs::exists(ckpts + "/step_00000004/DONE"));
  edit(ckpts + "/step_00000004/trainer_state.json", "\"skipped_steps\": 0", "\"skipped_steps\": 9");

  job.train.steps = 6;
  job.checkpoint.resume = ckpts + "/step_00000004";
  const std::string refused = error_of([&] { train::train(job); });
  EXPECT_HAS(refused, "step_00000004': trainer_state.json fails the CRC-32 check recorded in DONE");

  job.checkpoint.resume = "auto";
  ASSERT_EQ(train::train(job, /*continue_finished=*/true), 0);  // it finished at step 4
  const std::string log = read_text(dir + "/edited/log.txt");
  EXPECT_HAS(log, "step_00000004': trainer_state.json fails the CRC-32 check recorded in DONE");
  EXPECT_HAS(log, "falling back to an older checkpoint");
  EXPECT_HAS(log, "resumed from " + ckpts + "/step_00000002 at step 2");
  EXPECT_TRUE(fs::exists(ckpts + "/step_00000006/DONE"));
  fs::remove_all(dir);
}

TEST(PreemptionAtStartup, SignalRightAfterSpawnCheckpointsStepZeroAndExits42) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  const std::string dir = fresh_dir("early_signal");
  JobConfig job = tiny_lm_job(dir, "early", /*seed=*/5, /*steps=*/6);
  job.checkpoint.resume = "auto";
  const std::string config = write_config(dir, job);

  const auto start = Clock::now();
  const pid_t pid = spawn_train(config, dir + "/first.log");
  while (!catches(pid, SIGUSR1) && Clock::now() - start < std::chrono::seconds(20))
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  const double installed_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  ASSERT_TRUE(catches(pid, SIGUSR1)) << read_text(dir + "/first.log");
  ::kill(pid, SIGUSR1);
  EXPECT_EQ(exit_status(pid), train::kExitRequeue) << read_text(dir + "/first.log");
  std::cout << "SIGUSR1 handler installed " << installed_ms << " ms after spawn\n";
  const std::string log = read_text(dir + "/first.log");
  EXPECT_HAS(log, "preemption signal received: saving a checkpoint at step 0");
  EXPECT_TRUE(fs::exists(dir + "/early/checkpoints/step_00000000/DONE")) << log;

  // The requeued job continues from it and finishes.
  EXPECT_EQ(exit_status(spawn_train(config, dir + "/second.log")), 0) << read_text(dir + "/second.log");
  EXPECT_HAS(read_text(dir + "/second.log"), "resumed from " + dir + "/early/checkpoints/step_00000000 at step 0");
  EXPECT_TRUE(fs::exists(dir + "/early/checkpoints/step_00000006/DONE"));
  fs::remove_all(dir);
}

TEST(ExitStatus, AnErrorAfterStartUpExitsTwoAloneAndUnderMpirun) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  const std::string dir = fresh_dir("exit_status");
  JobConfig job = tiny_lm_job(dir, "broken", /*seed=*/1, /*steps=*/4);
  job.task_config<train::LmConfig>().data.train = {dir + "/missing.jsonl"};
  const std::string config = write_config(dir, job);

  EXPECT_EQ(exit_status(spawn_train(config, dir + "/one.log")), kExitError) << read_text(dir + "/one.log");
  EXPECT_HAS(read_text(dir + "/one.log"), "missing.jsonl");
  EXPECT_EQ(launch(2, config, {}, dir + "/two.log"), kExitError) << read_text(dir + "/two.log");
  EXPECT_HAS(read_text(dir + "/two.log"), "pathvlm train: error:");
  EXPECT_HAS(read_text(dir + "/two.log"), "missing.jsonl");
  fs::remove_all(dir);
}
