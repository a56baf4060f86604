// `pathvlm synth instruct` end to end (the real program): the files it promises, its summary line, the verb
// listed under `pathvlm synth`, and option errors.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <filesystem>

#include "cli_test_util.h"

namespace fs = std::filesystem;

namespace {

using pathvlm::testing::read_text;
using pathvlm::testing::run_cli;

struct SynthInstructCli : ::testing::Test {
  fs::path scratch = fs::temp_directory_path() / ("pathvlm_synth_instruct_cli_" + std::to_string(::getpid()));
  void SetUp() override {
    fs::remove_all(scratch);
    fs::create_directories(scratch);
  }
  void TearDown() override { fs::remove_all(scratch); }
};

}  // namespace

TEST_F(SynthInstructCli, WritesTheDataSetAndSummarizesIt) {
  const fs::path out = scratch / "instruct";
  const auto r = run_cli("synth instruct --out " + out.string() +
                         " --size 32 --train-per-class 2 --support-per-class 1 --eval-per-class 1"
                         " --conversations-per-tile 1 --text-only 3 --seed 4 --quiet",
                         scratch);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("wrote 16 train, 8 support and 8 eval tiles; 16 phase-1 and 19 phase-2 records (3 text-only);"
                       " 8 closed and 8 open eval questions"),
            std::string::npos)
      << r.out;
  for (const char* file : {"phase1.json", "phase2.json", "eval/phase1.json", "eval/phase2.json", "eval/questions.jsonl",
                           "support.json", "shards/train/manifest.json", "shards/support/manifest.json",
                           "shards/eval/manifest.json", "tiles/zeroshot.yaml"})
    EXPECT_TRUE(fs::exists(out / file)) << file;
  const auto phase2 = nlohmann::json::parse(read_text(out / "phase2.json"));
  EXPECT_EQ(phase2.size(), 19u);
  const auto manifest = nlohmann::json::parse(read_text(out / "shards/train/manifest.json"));
  EXPECT_EQ(manifest.at("records"), 16);

  const auto again = run_cli("synth instruct --out " + (scratch / "again").string() +
                             " --size 32 --train-per-class 2 --support-per-class 1 --eval-per-class 1"
                             " --conversations-per-tile 1 --text-only 3 --seed 4 --quiet",
                             scratch);
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_EQ(read_text(out / "phase2.json"), read_text(scratch / "again" / "phase2.json"));
}

TEST_F(SynthInstructCli, ListedUnderSynthAndRefusesBadCounts) {
  const auto help = run_cli("synth --help", scratch);
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.out.find("instruct"), std::string::npos) << help.out;

  const auto bad = run_cli("synth instruct --out " + (scratch / "bad").string() + " --eval-per-class 0 --quiet", scratch);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.err.find("eval tile per class"), std::string::npos) << bad.err;
}
