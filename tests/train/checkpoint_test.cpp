// Checkpoint directory protocol on real files: commit, verify, truncation / corruption refused, fallback, retention.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;
using namespace pathvlm::train;

namespace {

std::string fresh_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_ckpt_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::string save(const std::string& root, int64_t step, int keep_last) {
  auto tmp = ckpt::begin(root, step);
  write(tmp + "/model.safetensors", "weights of step " + std::to_string(step));
  write(tmp + "/optimizer.safetensors", std::string(1000, char('a' + step % 26)));
  return ckpt::commit(root, step, {{"step", step}}, keep_last);
}

}  // namespace

TEST(Checkpoint, CommitWritesDoneLatestAndChecksums) {
  auto root = fresh_dir("commit");
  auto dir = save(root, 7, 3);
  EXPECT_EQ(dir, root + "/step_00000007");
  EXPECT_TRUE(fs::exists(dir + "/DONE"));
  EXPECT_FALSE(fs::exists(root + "/step_00000007.tmp"));
  std::ifstream latest(root + "/latest");
  std::string name;
  latest >> name;
  EXPECT_EQ(name, "step_00000007");
  auto state = ckpt::verify(dir);
  EXPECT_EQ(state["step"].get<int64_t>(), 7);
  EXPECT_EQ(state["files"]["optimizer.safetensors"]["bytes"].get<int64_t>(), 1000);
  fs::remove_all(root);
}

TEST(Checkpoint, TruncatedOrCorruptIsRefusedAndAutoFallsBack) {
  auto root = fresh_dir("fallback");
  save(root, 10, 5);
  save(root, 20, 5);
  auto newest = ckpt::step_dir(root, 20);
  fs::resize_file(newest + "/optimizer.safetensors", 500);  // truncated
  try {
    ckpt::verify(newest);
    FAIL() << "a truncated checkpoint verified";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("optimizer.safetensors' has 500 bytes, expected 1000"), std::string::npos)
        << e.what();
  }
  std::vector<std::string> warnings;
  auto found = ckpt::find_latest_complete(root, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->step, 10);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("step_00000020"), std::string::npos);

  // Same size, flipped byte: the CRC catches it.
  {
    std::fstream f(ckpt::step_dir(root, 10) + "/model.safetensors", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(0);
    f.put('W');
  }
  EXPECT_THROW(ckpt::verify(ckpt::step_dir(root, 10)), pathvlm::Error);
  EXPECT_FALSE(ckpt::find_latest_complete(root, [](const std::string&) {}));
  fs::remove_all(root);
}

TEST(Checkpoint, InterruptedSaveIsIgnoredAndCleanedUp) {
  auto root = fresh_dir("interrupted");
  save(root, 4, 5);
  // A crash mid-save: a tmp directory and a step directory without DONE.
  auto tmp = ckpt::begin(root, 8);
  write(tmp + "/model.safetensors", "partial");
  fs::create_directories(ckpt::step_dir(root, 6));
  write(ckpt::step_dir(root, 6) + "/trainer_state.json", "{\"step\": 6, \"files\": {}}");
  std::vector<std::string> warnings;
  auto found = ckpt::find_latest_complete(root, [&](const std::string& w) { warnings.push_back(w); });
  ASSERT_TRUE(found);
  EXPECT_EQ(found->step, 4);
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("no DONE marker"), std::string::npos) << warnings[0];
  save(root, 12, 5);  // begin() removes the stale .tmp
  EXPECT_FALSE(fs::exists(tmp));
  fs::remove_all(root);
}

TEST(Checkpoint, KeepsTheLastN) {
  auto root = fresh_dir("retention");
  for (int64_t step : {1, 2, 3, 4, 5}) save(root, step, 2);
  auto steps = ckpt::list_steps(root);
  ASSERT_EQ(steps.size(), 2u);
  EXPECT_EQ(steps[0].first, 4);
  EXPECT_EQ(steps[1].first, 5);
  fs::remove_all(root);
}

TEST(Checkpoint, Base64RoundTrip) {
  for (std::string s : {std::string(""), std::string("a"), std::string("ab"), std::string("abc"),
                        std::string("\0\xff\x10 binary", 10)})
    EXPECT_EQ(ckpt::base64_decode(ckpt::base64_encode(s)), s);
  EXPECT_EQ(ckpt::base64_encode("Man"), "TWFu");
  EXPECT_THROW(ckpt::base64_decode("abc"), pathvlm::Error);
}
