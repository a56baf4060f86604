// A new user's first commands through the real program: `--docs` answers without the options a run needs, and
// run.task offers exactly the registered tasks.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "cli/args.h"
#include "cli_test_util.h"
#include "core/error.h"

namespace fs = std::filesystem;
using namespace pathvlm::testing;

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

namespace {

class UserPathCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(PATHVLM_BINARY)) GTEST_SKIP() << "the pathvlm program is not built: " << PATHVLM_BINARY;
    dir_ = fs::temp_directory_path() / ("pathvlm_user_path_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

TEST(ArgParserStandalone, AStandaloneFlagWaivesRequiredOptionsAndPositionals) {
  auto parser = [] {
    pathvlm::cli::ArgParser p("pathvlm x", "test");
    p.option("out", "output folder", true);
    p.positional("input", "input file");
    p.standalone_flag("docs", "print the docs");
    p.flag("quiet", "say less");
    return p;
  };
  auto docs = parser();
  ASSERT_TRUE(docs.parse({"--docs"}));
  EXPECT_TRUE(docs.get_flag("docs"));
  // An ordinary flag does not: the required option is still demanded, by name.
  auto quiet = parser();
  try {
    quiet.parse({"--quiet", "in.txt"});
    ADD_FAILURE() << "parsed without --out";
  } catch (const pathvlm::Error& e) {
    EXPECT_HAS(e.what(), "missing required option --out");
  }
}

TEST_F(UserPathCli, DocsOptionsWorkWithoutTheOtherRequiredOptions) {
  const auto tile = run_cli("tile --docs", dir_);
  ASSERT_EQ(tile.status, 0) << tile.err;
  EXPECT_HAS(tile.out, "tissue.preset");
  EXPECT_HAS(tile.out, "tiling.patch_size");
  const auto embed = run_cli("embed --docs", dir_);
  ASSERT_EQ(embed.status, 0) << embed.err;
  EXPECT_HAS(embed.out, "batch_size");
  // Without --docs the required options are still required.
  const auto missing = run_cli("tile --slides x", dir_);
  EXPECT_EQ(missing.status, 2);
  EXPECT_HAS(missing.err, "missing required option --out");
}

TEST_F(UserPathCli, RunTaskOffersExactlyTheRegisteredTasks) {
  const auto docs = run_cli("config docs", dir_);
  ASSERT_EQ(docs.status, 0) << docs.err;
  EXPECT_HAS(docs.out, "one of: lm, clip, instruct, slide");
  const std::string config = (dir_ / "job.yaml").string();
  std::ofstream(config) << "run:\n  task: clp\n";
  const auto typo = run_cli("config show " + config, dir_);
  EXPECT_EQ(typo.status, 2);
  EXPECT_HAS(typo.err, "'clp' is not one of: lm, clip, instruct, slide (did you mean 'clip'?)");
  const auto planned = run_cli("train " + config + " run.task=sweep", dir_);
  EXPECT_EQ(planned.status, 2);
  EXPECT_HAS(planned.err, "'sweep' is not one of: lm, clip, instruct, slide");
  const auto help = run_cli("train --help", dir_);
  EXPECT_EQ(help.status, 0);
  EXPECT_HAS(help.out, "--force");
}
