// Partial checkpoints on the tiny `lm` task: a run started from another with train.init_from and part of
// the model frozen leaves those tensors out of model.safetensors and records their source (size, CRC-32);
// killed with SIGKILL and resumed it ends bitwise equal to an uninterrupted run; a changed source stops the
// resume naming the file; ckpt::ModelTensors (and init_from through it) reads the full tensor set.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"
#include "train/job_config.h"
#include "train/lm/task.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

nlohmann::json state_of(const std::string& step_dir) { return nlohmann::json::parse(read_text(step_dir + "/trainer_state.json")); }

void expect_equal(const Tensors& a, const Tensors& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    ASSERT_TRUE(b.count(name)) << name;
    EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
  }
}

bool frozen(const std::string& name) {
  return name.rfind("model.embed_tokens.", 0) == 0 || name.rfind("model.layers.0.", 0) == 0;
}

// Run A (trained 5 steps, the source) shared by every test.
class PartialCheckpoint : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = (fs::temp_directory_path() / ("pathvlm_partial_" + std::to_string(::getpid()))).string();
    fs::remove_all(dir_);
    auto job = base_job("a");
    job.run.seed = 3;
    job.train.steps = 5;
    job.train.freeze = {};
    job.train.init_from = {};
    ASSERT_EQ(train::train(job), 0);
    source_ = fs::absolute(dir_ + "/a/checkpoints/step_00000005/model.safetensors").lexically_normal().string();
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }

  // Run B: starts from A with the token embedding and the first layer frozen, saves every 4 steps.
  static JobConfig base_job(const std::string& name) {
    JobConfig job = tiny_lm_job(dir_, name, /*seed=*/17, /*steps=*/10);
    job.log.every = 1;
    job.train.micro_batch_size = 6;
    job.train.init_from = {{dir_ + "/a", {}, true}};
    job.train.freeze = {"model.embed_tokens", "model.layers.0"};
    job.checkpoint.every_steps = 4;
    job.checkpoint.keep_last = 5;
    job.checkpoint.resume = "auto";
    job.task_config<train::LmConfig>().dropout = 0.1;  // the RNG must be restored too
    return job;
  }
  // `pathvlm train` in a child process (so SIGKILL ends only it); returns the exit status or 128+signal.
  static int launch(const JobConfig& job, const std::vector<std::string>& overrides, const std::string& log) {
    const std::string config = dir_ + "/" + job.run.name + ".yaml";
    std::ofstream(config) << cfg::to_yaml(job);
    std::string cmd = std::string("OMP_NUM_THREADS=1 ") + PATHVLM_BINARY + " train " + config;
    for (const auto& o : overrides) cmd += " '" + o + "'";
    cmd += " > " + log + " 2>&1";
    const int status = std::system(cmd.c_str());
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }
  static std::string error_of(const JobConfig& job, bool continue_finished = false) {
    try {
      train::train(job, continue_finished);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  static std::string dir_, source_;
};
std::string PartialCheckpoint::dir_, PartialCheckpoint::source_;

}  // namespace

TEST_F(PartialCheckpoint, FrozenInitFromTensorsAreLeftOutAndResumeAfterSigkillIsBitwiseEqual) {
  if (!fs::exists(PATHVLM_BINARY)) GTEST_SKIP() << "the pathvlm program is not built: " << PATHVLM_BINARY;
  auto job = base_job("b_straight");
  ASSERT_EQ(launch(job, {}, dir_ + "/straight.out"), 0) << read_text(dir_ + "/straight.out");
  job.run.name = "b_killed";
  ASSERT_NE(launch(job, {"train.fault.step=6", "train.fault.signal=KILL"}, dir_ + "/first.out"), 0)
      << read_text(dir_ + "/first.out");
  ASSERT_FALSE(fs::exists(dir_ + "/b_killed/export")) << "the killed run reached the end";
  ASSERT_EQ(launch(job, {}, dir_ + "/second.out"), 0) << read_text(dir_ + "/second.out");
  EXPECT_HAS(read_text(dir_ + "/second.out"), "at step 4");

  // Every checkpoint of both runs: exactly the frozen tensors are external, all from A's file.
  const auto all = load_all(dir_ + "/b_straight/export/model.safetensors");
  size_t n_frozen = 0;
  for (const auto& [name, t] : all) n_frozen += frozen(name);
  ASSERT_GT(n_frozen, 0u);
  ASSERT_LT(n_frozen, all.size());
  for (const std::string run : {"b_straight", "b_killed"})
    for (const std::string step : {"step_00000004", "step_00000008", "step_00000010"}) {
      const std::string ckpt_dir = dir_ + "/" + run + "/checkpoints/" + step;
      const auto own = load_all(ckpt_dir + "/model.safetensors");
      EXPECT_EQ(own.size(), all.size() - n_frozen) << ckpt_dir;
      for (const auto& [name, t] : own) EXPECT_FALSE(frozen(name)) << ckpt_dir << ": " << name;
      const auto external = state_of(ckpt_dir).at("external");
      ASSERT_EQ(external.at("files").size(), 1u) << external;
      EXPECT_EQ(external["files"][0].at("path"), source_);
      EXPECT_EQ(external["files"][0].at("bytes").get<int64_t>(), static_cast<int64_t>(fs::file_size(source_)));
      EXPECT_EQ(external["files"][0].at("crc32").get<uint32_t>(), train::ckpt::file_crc32(source_));
      EXPECT_EQ(external.at("tensors").size(), n_frozen);
      for (const auto& [name, record] : external["tensors"].items()) {
        EXPECT_TRUE(frozen(name)) << name;
        EXPECT_EQ(record.at("file"), source_);
        EXPECT_EQ(record.at("name"), name);
      }
    }
  // Resumed (through the sources) bitwise equal to uninterrupted.
  expect_equal(load_all(dir_ + "/b_killed/export/model.safetensors"), all);
}

TEST_F(PartialCheckpoint, TheFullTensorSetEqualsTheLiveModelAndSeedsInitFrom) {
  auto job = base_job("b_full");
  job.train.steps = 4;
  ASSERT_EQ(train::train(job), 0);
  const std::string step = dir_ + "/b_full/checkpoints/step_00000004";
  const auto live = load_all(dir_ + "/b_full/export/model.safetensors");  // the model after its last step
  auto full = train::ckpt::ModelTensors::open(step);
  Tensors read;
  for (const auto& name : full.names()) read[name] = full.get(name);
  expect_equal(read, live);
  EXPECT_LT(load_all(step + "/model.safetensors").size(), live.size());  // it is partial

  // A run started from the partial run gets all of it, and points its own frozen tensors at A's file.
  auto next = base_job("c");
  next.train.init_from = {{dir_ + "/b_full", {}, true}};
  next.train.steps = 1;
  next.optim.lr = 0;
  next.optim.weight_decay = 0;
  next.task_config<train::LmConfig>().dropout = 0;
  ASSERT_EQ(train::train(next), 0);
  expect_equal(load_all(dir_ + "/c/export/model.safetensors"), live);
  const auto external = state_of(dir_ + "/c/checkpoints/step_00000001").at("external");
  ASSERT_EQ(external.at("files").size(), 1u) << external;
  EXPECT_EQ(external["files"][0].at("path"), source_);
}

TEST_F(PartialCheckpoint, AChangedOrMissingSourceStopsTheResumeNamingTheFile) {
  // Its own source copy, so changing it leaves the other tests alone.
  fs::copy(dir_ + "/a", dir_ + "/a_copy", fs::copy_options::recursive);
  const std::string file = fs::absolute(dir_ + "/a_copy/checkpoints/step_00000005/model.safetensors").lexically_normal().string();
  auto job = base_job("b_changed");
  job.train.init_from = {{dir_ + "/a_copy", {}, true}};
  job.train.steps = 4;
  job.checkpoint.save_final = true;
  ASSERT_EQ(train::train(job), 0);
  const std::string step = dir_ + "/b_changed/checkpoints/step_00000004";
  EXPECT_NO_THROW(train::ckpt::verify(step));

  {  // the last byte (tensor data, so the header still parses), same size
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char c = static_cast<char>(f.get() ^ 0x5a);
    f.seekp(-1, std::ios::end);
    f.put(c);
  }
  job.train.steps = 6;
  auto e = error_of(job, /*continue_finished=*/true);  // resume: auto, of the finished run
  EXPECT_HAS(e, file);
  EXPECT_HAS(e, "CRC-32");
  EXPECT_HAS(e, step);
  EXPECT_FALSE(fs::exists(dir_ + "/b_changed/checkpoints/step_00000006")) << "the run went on";
  job.checkpoint.resume = step;
  e = error_of(job);
  EXPECT_HAS(e, file);
  EXPECT_HAS(e, "CRC-32");
  try {
    train::ckpt::ModelTensors::open(step);
    ADD_FAILURE() << "ModelTensors::open read a changed source";
  } catch (const Error& err) {
    EXPECT_HAS(err.what(), file);
  }

  fs::remove(file);
  e = error_of(job);
  EXPECT_HAS(e, file);
  EXPECT_HAS(e, "missing");
}
