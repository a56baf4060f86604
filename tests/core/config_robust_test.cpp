// Hostile configs: a directory or a list where a file is expected, YAML nested 10000 deep, invalid UTF-8 and
// run names no directory can have, and sections whose keys contradict each other (validate()). Each is refused
// before any work, with the file and the problem named; the real program exits 2.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include "core/config.h"
#include "core/error.h"
#include "core/run_dir.h"
#include "models/clip/config.h"
#include "models/slide/config.h"
#include "test_util.h"
#include "train/job_config.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;

namespace {

void expect_parts(const std::string& message, std::initializer_list<const char*> parts) {
  for (const char* part : parts)
    EXPECT_NE(message.find(part), std::string::npos) << "lacks \"" << part << "\": " << message;
}

// `pathvlm <args>`: the exit status and stderr.
std::pair<int, std::string> run_pathvlm(const std::string& args, const TempDir& dir) {
  const std::string err = dir / "stderr.txt";
  const int raw = std::system((std::string(PATHVLM_BINARY) + " " + args + " > /dev/null 2> " + err).c_str());
  std::ifstream in(err);
  std::stringstream text;
  text << in.rdbuf();
  return {WIFEXITED(raw) ? WEXITSTATUS(raw) : -1, text.str()};
}

struct Pair {
  models::ClipModelConfig model;
  models::slide::SlideEncoderConfig encoder;
  template <class V>
  void visit(V& v) {
    v.section("model", model, "a CLIP");
    v.section("encoder", encoder, "a slide encoder");
  }
};

}  // namespace

TEST(ConfigRobust, ADirectoryOrAListIsNotAConfigFile) {
  TempDir dir("cfg_dir");
  dir.write("configs/a.yaml", "run: {seed: 1}\n");
  dir.write("configs/b.yml", "run: {seed: 2}\n");
  expect_parts(error_of([&] { cfg::Document::from_file(dir / "configs"); }),
               {"config file '", "configs' is a directory, not a YAML file", "(YAML files there: a.yaml, b.yml)"});
  // base: naming a directory says so too, with the including file and line.
  const auto top = dir.write("top.yaml", "base: configs\n");
  expect_parts(error_of([&] { cfg::Document::from_file(top); }),
               {"top.yaml:1: base file '", "configs' is a directory"});
  const std::string list = (dir / "configs/a.yaml") + "," + (dir / "configs/b.yml");
  expect_parts(error_of([&] { cfg::Document::from_file(list); }),
               {"not found: give one file", "base: [a.yaml, b.yaml]"});
  expect_parts(error_of([&] { cfg::Document::from_file("[a.yaml, b.yaml]"); }), {"give one file"});
  // A second file where overrides go.
  expect_parts(error_of([&] { cfg::load<JobConfig>(dir / "configs/a.yaml", {dir / "configs/b.yml"}); }),
               {"b.yml' looks like a second config file", "only one is read"});

  auto [status, err] = run_pathvlm("config show " + (dir / "configs"), dir);
  EXPECT_EQ(status, kExitError) << err;
  expect_parts(err, {"pathvlm config: error: config file", "is a directory"});
}

TEST(ConfigRobust, DeeplyNestedYamlIsRefusedWithoutOverflowingTheStack) {
  TempDir dir("cfg_deep");
  const int depth = 10000;
  std::string flow(depth, '['), block;
  flow += std::string(depth, ']');
  for (int i = 0; i < depth; ++i) block += std::string(i, ' ') + "k:\n";
  const auto flow_file = dir.write("flow.yaml", "run: " + flow + "\n");
  const auto block_file = dir.write("block.yaml", block);
  expect_parts(error_of([&] { cfg::Document::from_file(flow_file); }),
               {"flow.yaml:1:", "YAML nested 500 or more levels deep (the parser's limit"});
  expect_parts(error_of([&] { cfg::Document::from_file(block_file); }),
               {"block.yaml:499:", "YAML nested 500 or more levels deep"});
  expect_parts(error_of([&] { cfg::Document::from_string(flow, "<text>"); }),
               {"<text>:1:", "nested 500 or more levels"});
  expect_parts(error_of([&] { cfg::Document().override_with({"run.name=" + flow}); }),
               {"command line: 'run.name'", "nested 500 or more levels"});

  auto [status, err] = run_pathvlm("config show " + block_file, dir);
  EXPECT_EQ(status, kExitError) << err;
  expect_parts(err, {"block.yaml:499:", "nested 500 or more levels"});
}

TEST(ConfigRobust, StringsMustBeUtf8AndRunNamesDirectoryNames) {
  TempDir dir("cfg_utf8");
  const auto file = dir.write("job.yaml", "run:\n  task: lm\n  name: \"caf\\xE9\"\n");
  // \xE9 in a YAML double-quoted string is U+00E9 (valid); a raw Latin-1 byte is not UTF-8.
  EXPECT_EQ(cfg::load<JobConfig>(file).run.name, "caf\xC3\xA9");
  std::ofstream(dir / "latin1.yaml") << "run:\n  task: lm\n  name: caf\xE9\n";
  expect_parts(error_of([&] { cfg::load<JobConfig>(dir / "latin1.yaml"); }),
               {"latin1.yaml:3: key 'run.name': is not valid UTF-8 (byte 3)"});
  expect_parts(error_of([&] { cfg::load<JobConfig>(file, {"lm.model=\xFF"}); }),
               {"command line: key 'lm.model': is not valid UTF-8 (byte 0)"});

  const std::pair<std::string, const char*> bad_names[] = {
      {"a/b", "contains '/'"},
      {"..", "is not a directory name of its own"},
      {"tab\there", "control character 0x9"},
      {std::string(256, 'n'), "256 bytes long"},
  };
  for (const auto& [name, problem] : bad_names) {
    SCOPED_TRACE(name);
    expect_parts(error_of([&] { cfg::load<JobConfig>(file, {"run.name=" + name}); }),
                 {"job.yaml:2: section 'run'", "run.name '", problem});
    EXPECT_NE(run_name_problem(name), "");
  }
  EXPECT_EQ(run_name_problem("lm-2026_12.x"), "");
  EXPECT_EQ(run_name_problem(std::string(255, 'n')), "");

  // The program refuses before creating anything.
  auto [status, err] = run_pathvlm("train " + file + " run.runs_dir=" + (dir / "runs") + " run.name=a/b", dir);
  EXPECT_EQ(status, kExitError) << err;
  expect_parts(err, {"run.name 'a/b' contains '/'"});
  auto [status8, err8] = run_pathvlm("train " + (dir / "latin1.yaml") + " run.runs_dir=" + (dir / "runs"), dir);
  EXPECT_EQ(status8, kExitError) << err8;
  expect_parts(err8, {"key 'run.name': is not valid UTF-8"});
  EXPECT_FALSE(fs::exists(dir / "runs"));
}

TEST(ConfigRobust, SectionsValidateTheirKeysTogether) {
  auto problem = [](const std::string& yaml) {
    return error_of([&] { cfg::read<Pair>(cfg::Document::from_string(yaml, "pair.yaml")); });
  };
  expect_parts(problem("model:\n  preset: tiny\n  vision_heads: 5\n"),
               {"pair.yaml:2: section 'model'", "vision_heads 5 does not divide vision_width 128"});
  expect_parts(problem("model:\n  text_width: 100\n  text_heads: 3\n"),
               {"text_heads 3 does not divide text_width 100"});
  expect_parts(problem("model:\n  vision_width: 2000000\n"), {"vision_width 2000000 is too large"});
  expect_parts(problem("model:\n  text_layers: 5000\n"), {"text_layers 5000 is too large (at most 1024)"});
  expect_parts(problem("model:\n  patch_size: 10\n"), {"patch_size 10 does not divide image_size 64"});
  expect_parts(problem("encoder:\n  kind: qformer\n  width: 30\n  heads: 4\n"),
               {"pair.yaml:2: section 'encoder'", "heads 4 must divide width 30"});
  expect_parts(problem("encoder:\n  kind: transformer\n  width: 18\n  heads: 3\n"),
               {"width 18 must be a multiple of 4"});
  expect_parts(problem("encoder:\n  width: 5000000\n"), {"width 5000000 is too large"});
  // Out-of-range single keys are reported as before (and validate() is not asked about a broken section).
  expect_parts(problem("encoder:\n  heads: 0\n"), {"pair.yaml:2: key 'encoder.heads'"});
  // abmil's heads are attention branches: they need not divide the width.
  EXPECT_NO_THROW(cfg::read<Pair>(cfg::Document::from_string("encoder:\n  width: 30\n  heads: 4\n", "ok.yaml")));

  // The real job: a bad CLIP section stops `pathvlm config show` (and train) with the file named.
  TempDir dir("cfg_validate");
  const auto file = dir.write("clip.yaml", "run:\n  task: clip\nclip:\n  model:\n    vision_heads: 3\n");
  expect_parts(error_of([&] { cfg::load<JobConfig>(file); }),
               {"clip.yaml:5: section 'clip.model'", "vision_heads 3 does not divide vision_width 128"});
  auto [status, err] = run_pathvlm("config show " + file, dir);
  EXPECT_EQ(status, kExitError) << err;
  expect_parts(err, {"section 'clip.model'", "vision_heads 3 does not divide"});
}

// Every key of the job config set on the command line to values of every kind (numbers at the edges, NaN and
// infinities, strings, lists, maps, null), over the defaults and over each shipped config: each load gives a config
// that writes itself as YAML reading back to the same values, or a pathvlm::Error naming the key's section. Never
// another exception, and never a NaN taken as a setting.
TEST(ConfigRobust, EveryKeyTakesAnyValueOrNamesTheProblem) {
  TempDir dir("cfg_every_key");
  std::vector<std::string> keys;
  for (const auto& k : cfg::schema<JobConfig>())
    if (!k.is_section && !k.is_element) keys.push_back(k.key);
  const std::vector<std::string> values = {
      "0",    "-1",   "1",     "3",  "2.5", "-1e308", "1e308", "9223372036854775808", ".nan", ".inf", "-.inf",
      "''",   "' '",  "x",     "true", "null", "[]", "[1, x]", "{a: 1}", "0x10", "\"a\\tb\""};
  int64_t accepted = 0, refused = 0;
  auto load_with = [&](const std::string& file, const std::string& key, const std::string& value) {
    SCOPED_TRACE(fs::path(file).filename().string() + " " + key + "=" + value);
    try {
      const auto job = cfg::load<JobConfig>(file, {key + "=" + value});
      const auto yaml = cfg::to_yaml(job);
      for (const auto& k : cfg::schema(job)) {
        if (k.type.find("double") == std::string::npos) continue;
        EXPECT_EQ(k.value.find("nan"), std::string::npos) << k.key << ": a NaN was taken as a setting";
      }
      EXPECT_EQ(cfg::to_yaml(cfg::read<JobConfig>(cfg::Document::from_string(yaml, "written.yaml"))), yaml);
      ++accepted;
    } catch (const Error& e) {
      const std::string section = key.substr(0, key.find('.'));
      EXPECT_NE(std::string(e.what()).find(section), std::string::npos) << e.what();
      ++refused;
    }
  };
  // Every pair over the defaults.
  const auto defaults = dir.write("defaults.yaml", "run:\n  name: defaults\n");
  for (const auto& key : keys)
    for (const auto& value : values) load_with(defaults, key, value);
  // A sample of pairs over each shipped job config.
  std::mt19937_64 rng(pathvlm::testing::test_seed(20261206));
  for (const char* folder : {"clip", "demo", "instruct", "slide"}) {
    for (const auto& entry : fs::directory_iterator(std::string(PATHVLM_SOURCE_DIR) + "/configs/" + folder)) {
      try {
        cfg::load<JobConfig>(entry.path().string());
      } catch (const Error&) {
        continue;  // not a job config (an evaluation's)
      }
      for (int n = 0; n < 300; ++n) {
        const auto& key = keys[rng() % keys.size()];
        load_with(entry.path().string(), key, values[rng() % values.size()]);
      }
    }
  }
  EXPECT_GT(accepted, 1000);
  EXPECT_GT(refused, 1000);
}
