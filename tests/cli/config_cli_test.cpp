// `pathvlm config show|docs` end to end, through the real program.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test_util.h"

namespace fs = std::filesystem;

namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << haystack

struct Result {
  int status;
  std::string output;  // stdout and stderr
};

Result run_pathvlm(const std::string& args) {
  Result r;
  r.status = pathvlm::testing::run_command(std::string(PATHVLM_BINARY) + " " + args, r.output);
  return r;
}

class ConfigCli : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!fs::exists(PATHVLM_BINARY)) GTEST_SKIP() << "the pathvlm program is not built: " << PATHVLM_BINARY;
    dir_ = fs::temp_directory_path() / ("pathvlm_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
    return (dir_ / name).string();
  }
  fs::path dir_;
};

}  // namespace

TEST_F(ConfigCli, ShowPrintsTheResolvedConfigWithOverrides) {
  write("base.yaml", "run:\n  seed: 3\n");
  std::string top = write("top.yaml", "base: base.yaml\nrun:\n  name: cli\n");
  Result r = run_pathvlm("config show " + top + " log.every=5");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_HAS(r.output, "run:\n  name: cli\n");
  EXPECT_HAS(r.output, "  seed: 3\n");
  EXPECT_HAS(r.output, "log:\n  every: 5\n");
  // The output is itself a config that resolves to the same thing.
  std::string again = write("again.yaml", r.output);
  Result r2 = run_pathvlm("config show " + again);
  EXPECT_EQ(r2.output, r.output);
  Result table = run_pathvlm("config show --table " + top);
  EXPECT_HAS(table.output, "| run.seed ");
}

TEST_F(ConfigCli, BadKeysStopWithFileLineAndSuggestion) {
  std::string bad = write("bad.yaml", "run:\n  sede: 1\n");
  Result r = run_pathvlm("config show " + bad);
  EXPECT_EQ(r.status, 2);
  EXPECT_HAS(r.output, "bad.yaml:2: unknown key 'run.sede' (did you mean 'run.seed'?)");
  Result o = run_pathvlm("config show " + write("ok.yaml", "") + " log.every=0");
  EXPECT_EQ(o.status, 2);
  EXPECT_HAS(o.output, "command line: key 'log.every': value 0 is out of range (must be >= 1)");
}

TEST_F(ConfigCli, DocsListsEveryKeyAndUsageListsVerbs) {
  Result docs = run_pathvlm("config docs");
  ASSERT_EQ(docs.status, 0);
  EXPECT_HAS(docs.output, "run.seed");
  EXPECT_HAS(docs.output, "log.every");
  EXPECT_HAS(docs.output, "one of: lm, clip");
  Result usage = run_pathvlm("config");
  EXPECT_EQ(usage.status, 1);
  EXPECT_HAS(usage.output, "show CONFIG");
  EXPECT_HAS(usage.output, "docs");
  EXPECT_EQ(run_pathvlm("config frobnicate").status, 1);
}
