// Config: inheritance, overrides, every error path, rendering, docs, and the real JobConfig and recipes.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <unistd.h>

#include "core/config.h"
#include "core/error.h"
#include "train/job_config.h"

namespace fs = std::filesystem;
using namespace pathvlm;

namespace {

struct OptimT {
  double lr = 5e-4;
  double weight_decay = 0.2;
  std::string schedule = "cosine";
  std::vector<std::string> no_decay = {};
  template <class V>
  void visit(V& v) {
    v.field("lr", lr, "peak learning rate", cfg::Min(0.0));
    v.field("weight_decay", weight_decay, "AdamW decoupled weight decay", cfg::Range(0.0, 10.0));
    v.field("schedule", schedule, "learning-rate schedule", cfg::OneOf{"cosine", "constant"});
    v.field("no_decay", no_decay, "parameter-name substrings without weight decay");
  }
};

struct ModelT {
  int width = 512;
  int64_t tokens = 1 << 20;
  bool checkpointing = false;
  std::vector<int> sizes = {1, 2};
  std::vector<int64_t> big = {};
  std::vector<double> mean = {0.5, 0.25};
  template <class V>
  void visit(V& v) {
    v.field("width", width, "hidden size", cfg::Min(1));
    v.field("tokens", tokens, "token budget");
    v.field("checkpointing", checkpointing, "activation checkpointing");
    v.field("sizes", sizes, "sizes", cfg::Range(0, 100));
    v.field("big", big, "int64 list");
    v.field("mean", mean, "normalisation mean");
  }
};

struct TestJob {
  std::string name = "job";
  OptimT optim;
  ModelT model;
  template <class V>
  void visit(V& v) {
    v.field("name", name, "job name");
    v.section("optim", optim, "optimizer");
    v.section("model", model, "model");
  }
};

// A list of sections: each element a struct with its own keys (and a nested section).
struct SourceT {
  std::string path;
  std::vector<std::string> map = {};
  bool strict = true;
  struct Limits {
    int max = 0;
    template <class V>
    void visit(V& v) {
      v.field("max", max, "at most this many", cfg::Min(0));
    }
  } limits;
  template <class V>
  void visit(V& v) {
    v.field("path", path, "where the weights are");
    v.field("map", map, "renames");
    v.field("strict", strict, "load everything");
    v.section("limits", limits, "limits");
  }
};

struct ListJob {
  std::string name = "job";
  struct Train {
    int steps = 10;
    std::vector<SourceT> init_from = {};
    template <class V>
    void visit(V& v) {
      v.field("steps", steps, "steps");
      v.list("init_from", init_from, "weights to start from");
    }
  } train;
  template <class V>
  void visit(V& v) {
    v.field("name", name, "job name");
    v.section("train", train, "training");
  }
};

// A fresh directory per test, removed afterwards.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pathvlm_config_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    fs::path p = dir_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream(p) << text;
    return p.string();
  }
  // The error message `load` gives, or "" if it loads.
  std::string error_of(const std::string& path, const std::vector<std::string>& overrides = {}) {
    try {
      cfg::load<TestJob>(path, overrides);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  fs::path dir_;
};

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << haystack

}  // namespace

TEST_F(ConfigTest, EmptyFileGivesDefaults) {
  auto job = cfg::load<TestJob>(write("empty.yaml", ""));
  EXPECT_EQ(job.name, "job");
  EXPECT_DOUBLE_EQ(job.optim.lr, 5e-4);
  EXPECT_EQ(job.model.sizes, (std::vector<int>{1, 2}));
}

TEST_F(ConfigTest, ReadsEveryFieldType) {
  auto job = cfg::load<TestJob>(write("all.yaml", R"(
name: "my run"
optim:
  lr: 1e-3
  schedule: constant
  no_decay: [bias, norm]
model:
  width: 64
  tokens: 10000000000
  checkpointing: yes
  sizes: [3, 4, 5]
  big: [-1, 9000000000]
  mean: [0.1, 2]
)"));
  EXPECT_EQ(job.name, "my run");
  EXPECT_DOUBLE_EQ(job.optim.lr, 1e-3);
  EXPECT_EQ(job.optim.schedule, "constant");
  EXPECT_EQ(job.optim.no_decay, (std::vector<std::string>{"bias", "norm"}));
  EXPECT_EQ(job.model.width, 64);
  EXPECT_EQ(job.model.tokens, 10000000000LL);
  EXPECT_TRUE(job.model.checkpointing);
  EXPECT_EQ(job.model.sizes, (std::vector<int>{3, 4, 5}));
  EXPECT_EQ(job.model.big, (std::vector<int64_t>{-1, 9000000000LL}));
  EXPECT_EQ(job.model.mean, (std::vector<double>{0.1, 2.0}));
}

TEST_F(ConfigTest, BaseFilesMergeInOrderRelativeToTheIncludingFile) {
  write("recipes/common.yaml", "optim:\n  lr: 1e-3\n  weight_decay: 0.1\nmodel:\n  width: 256\n  sizes: [7, 8, 9]\n");
  write("recipes/sub/small.yaml", "base: ../common.yaml\nmodel:\n  width: 128\n");
  write("other.yaml", "optim:\n  weight_decay: 0.05\n");
  std::string top = write("top.yaml",
                          "base: [recipes/sub/small.yaml, other.yaml]\nname: top\nmodel:\n  sizes: [1]\n");
  auto doc = cfg::Document::from_file(top);
  auto job = cfg::read<TestJob>(doc);
  EXPECT_EQ(job.name, "top");
  EXPECT_DOUBLE_EQ(job.optim.lr, 1e-3);             // from common, two levels down
  EXPECT_DOUBLE_EQ(job.optim.weight_decay, 0.05);   // later base wins
  EXPECT_EQ(job.model.width, 128);                  // child of common wins over common
  EXPECT_EQ(job.model.sizes, std::vector<int>{1});  // lists are replaced, not merged
  EXPECT_HAS(doc.where("model.width"), "recipes/sub/small.yaml:3");
  EXPECT_HAS(doc.where("optim.lr"), "common.yaml:2");
}

TEST_F(ConfigTest, CommandLineOverridesWinAndParseAsYaml) {
  std::string path = write("c.yaml", "optim:\n  lr: 1e-3\nname: file\n");
  auto job = cfg::load<TestJob>(path, {"optim.lr=2e-4", "model.sizes=[3, 4]", "model={width: 64, checkpointing: true}",
                                       "name=", "optim.no_decay=[]"});
  EXPECT_DOUBLE_EQ(job.optim.lr, 2e-4);
  EXPECT_EQ(job.model.sizes, (std::vector<int>{3, 4}));
  EXPECT_EQ(job.model.width, 64);
  EXPECT_TRUE(job.model.checkpointing);
  EXPECT_EQ(job.name, "");
  EXPECT_TRUE(job.optim.no_decay.empty());
}

TEST_F(ConfigTest, UnknownKeyNamesFileLineAndNearestKey) {
  std::string path = write("typo.yaml", "optim:\n  lr: 1e-3\n  weight_decy: 0.1\n");
  std::string msg = error_of(path);
  EXPECT_HAS(msg, "typo.yaml:3: unknown key 'optim.weight_decy' (did you mean 'optim.weight_decay'?)");
}

TEST_F(ConfigTest, KeyInTheWrongSectionSuggestsWhereItLives) {
  std::string msg = error_of(write("wrong.yaml", "name: x\nlr: 0.1\n"));
  EXPECT_HAS(msg, "wrong.yaml:2: unknown key 'lr' (did you mean 'optim.lr'?)");
}

TEST_F(ConfigTest, AKeyManySectionsHaveSuggestsTheNearestOfThem) {
  const std::vector<std::string> keys = {"lm.eval.batch_size", "clip.eval.batch_size", "instruct.eval.batch_size",
                                         "slide.eval.batch_size", "instruct.data.train"};
  EXPECT_EQ(cfg::nearest_key("instruct.data.batch_size", keys), "instruct.eval.batch_size");
  EXPECT_EQ(cfg::nearest_key("slide.batch_size", keys), "slide.eval.batch_size");
  EXPECT_EQ(cfg::nearest_key("batch_size", keys), "lm.eval.batch_size");  // the shortest path is nearest
}

TEST_F(ConfigTest, UnknownKeyWithoutNearMatchListsTheSection) {
  std::string msg = error_of(write("far.yaml", "model:\n  zzzzzzzzzzzz: 1\n"));
  EXPECT_HAS(msg, "far.yaml:2: unknown key 'model.zzzzzzzzzzzz'; keys in 'model': width, tokens,");
}

TEST_F(ConfigTest, WrongTypesAreReportedWithLineAndValue) {
  EXPECT_HAS(error_of(write("a.yaml", "model:\n  width: abc\n")),
             "a.yaml:2: key 'model.width': expected an integer, got 'abc'");
  EXPECT_HAS(error_of(write("b.yaml", "model:\n  width: 1.5\n")), "expected an integer, got '1.5'");
  EXPECT_HAS(error_of(write("c.yaml", "model:\n  width: 99999999999\n")), "fits in 32 bits");
  EXPECT_HAS(error_of(write("d.yaml", "optim:\n  lr: fast\n")), "key 'optim.lr': expected a number, got 'fast'");
  EXPECT_HAS(error_of(write("e.yaml", "model:\n  checkpointing: maybe\n")), "expected true or false, got 'maybe'");
  EXPECT_HAS(error_of(write("f.yaml", "model:\n  sizes: 3\n")),
             "f.yaml:2: key 'model.sizes': expected a list of integers, got '3'");
  EXPECT_HAS(error_of(write("g.yaml", "model:\n  sizes: [1, x]\n")),
             "key 'model.sizes'[1]: expected an integer, got 'x'");
  EXPECT_HAS(error_of(write("h.yaml", "name: [a, b]\n")), "key 'name': expected a string, got a list");
  EXPECT_HAS(error_of(write("i.yaml", "optim:\n  lr:\n")), "key 'optim.lr': expected a number, got nothing");
  EXPECT_HAS(error_of(write("j.yaml", "optim: 5\n")), "j.yaml:1: key 'optim' is a section");
}

TEST_F(ConfigTest, OutOfRangeValuesAreReported) {
  EXPECT_HAS(error_of(write("a.yaml", "optim:\n  lr: -1\n")),
             "a.yaml:2: key 'optim.lr': value -1 is out of range (must be >= 0)");
  EXPECT_HAS(error_of(write("b.yaml", "optim:\n  weight_decay: 11\n")), "(must be in [0, 10])");
  EXPECT_HAS(error_of(write("c.yaml", "optim:\n  schedule: cosin\n")),
             "key 'optim.schedule': 'cosin' is not one of: cosine, constant (did you mean 'cosine'?)");
  EXPECT_HAS(error_of(write("d.yaml", "model:\n  sizes: [1, 200]\n")), "key 'model.sizes'[1]: value 200 is out of range");
}

TEST_F(ConfigTest, EveryProblemIsReportedAtOnce) {
  std::string msg = error_of(write("many.yaml", "optim:\n  lr: -1\n  schedul: cosine\nmodel:\n  width: x\n"));
  EXPECT_HAS(msg, "the config has 3 problems");
  EXPECT_HAS(msg, "many.yaml:2");
  EXPECT_HAS(msg, "many.yaml:3");
  EXPECT_HAS(msg, "many.yaml:5");
}

TEST_F(ConfigTest, MissingBaseFileIsReportedWhereItIsNamed) {
  std::string msg = error_of(write("top.yaml", "name: x\nbase: [nowhere.yaml]\n"));
  EXPECT_HAS(msg, "top.yaml:2: base file '");
  EXPECT_HAS(msg, "nowhere.yaml' not found");
  EXPECT_HAS(error_of((dir_ / "absent.yaml").string()), "config file '");
}

TEST_F(ConfigTest, BaseCycleIsDetected) {
  write("a.yaml", "base: b.yaml\n");
  write("b.yaml", "base: sub/../a.yaml\n");
  std::string msg = error_of((dir_ / "a.yaml").string());
  EXPECT_HAS(msg, "b.yaml:1: base cycle: ");
  EXPECT_HAS(msg, "a.yaml -> ");
}

TEST_F(ConfigTest, MalformedYamlNamesFileAndLine) {
  EXPECT_HAS(error_of(write("bad.yaml", "name: x\noptim: [1, 2\n")), "bad.yaml:");
  EXPECT_HAS(error_of(write("bad2.yaml", "name: x\n  model: 1\n")), "malformed YAML");
  EXPECT_HAS(error_of(write("list.yaml", "- a\n- b\n")), "list.yaml:1: the top level must be a map of keys, got a list");
}

TEST_F(ConfigTest, DuplicateKeyInOneFileIsAnErrorButADiamondOfBasesIsNot) {
  EXPECT_HAS(error_of(write("dup.yaml", "optim:\n  lr: 1\nmodel:\n  width: 2\noptim:\n  lr: 3\n")),
             "dup.yaml:6: key 'optim.lr' is set twice in this file (also on line 2)");
  write("common.yaml", "model:\n  width: 7\n");
  write("left.yaml", "base: common.yaml\n");
  write("right.yaml", "base: common.yaml\n");
  auto job = cfg::load<TestJob>(write("top.yaml", "base: [left.yaml, right.yaml]\n"));
  EXPECT_EQ(job.model.width, 7);
}

TEST_F(ConfigTest, CommandLineErrorsSayCommandLine) {
  std::string path = write("ok.yaml", "");
  EXPECT_HAS(error_of(path, {"optim.lrr=1"}), "command line: unknown key 'optim.lrr' (did you mean 'optim.lr'?)");
  EXPECT_HAS(error_of(path, {"optim.lr=abc"}), "command line: key 'optim.lr': expected a number, got 'abc'");
  EXPECT_HAS(error_of(path, {"optim.lr"}), "command line: 'optim.lr' is not an override of the form key=value");
  EXPECT_HAS(error_of(path, {"model.sizes=[1, 2"}), "command line: 'model.sizes=[1, 2': malformed value");
  EXPECT_HAS(error_of(path, {"base=x.yaml"}), "'base' can only be set inside a config file");
}

TEST_F(ConfigTest, YamlRenderingRoundTrips) {
  TestJob job;
  job.name = "yes";  // must stay a string
  job.optim.lr = 1e-5;
  job.optim.weight_decay = 3;
  job.optim.no_decay = {"", "a b", "1.5", "quote\"d", "x: y"};
  job.model.mean = {0.1, 1.0 / 3.0};
  job.model.big = {-5};
  std::string yaml = cfg::to_yaml(job);
  EXPECT_HAS(yaml, "name: \"yes\"\n");
  EXPECT_HAS(yaml, "optim:\n  lr: 1.0e-05\n  weight_decay: 3.0\n");
  EXPECT_EQ(cfg::render(30.0), "30.0");
  EXPECT_EQ(cfg::render(5e-4), "0.0005");
  EXPECT_EQ(cfg::render(0.1), "0.1");
  EXPECT_EQ(cfg::render(1e20), "1.0e+20");
  EXPECT_EQ(cfg::render(-2.5), "-2.5");
  auto back = cfg::read<TestJob>(cfg::Document::from_string(yaml, "rendered"));
  EXPECT_EQ(back.name, job.name);
  EXPECT_EQ(back.optim.lr, job.optim.lr);
  EXPECT_EQ(back.optim.weight_decay, job.optim.weight_decay);
  EXPECT_EQ(back.optim.no_decay, job.optim.no_decay);
  EXPECT_EQ(back.model.mean, job.model.mean);  // exact: shortest round-trip digits
  EXPECT_EQ(back.model.big, job.model.big);
  EXPECT_EQ(cfg::to_yaml(back), yaml);
}

// ---- lists of sections ---------------------------------------------------------------------------

TEST_F(ConfigTest, ListOfSectionsReadsBlockAndFlowElements) {
  auto job = cfg::load<ListJob>(write("list.yaml", R"(train:
  init_from:
    - path: runs/demo-phase1
    - {path: weights/llm, map: ["model. -> llm.model."], strict: false}
    - path: x.safetensors
      limits:
        max: 3
)"));
  ASSERT_EQ(job.train.init_from.size(), 3u);
  EXPECT_EQ(job.train.init_from[0].path, "runs/demo-phase1");
  EXPECT_TRUE(job.train.init_from[0].strict);
  EXPECT_TRUE(job.train.init_from[0].map.empty());
  EXPECT_EQ(job.train.init_from[1].path, "weights/llm");
  EXPECT_EQ(job.train.init_from[1].map, std::vector<std::string>{"model. -> llm.model."});
  EXPECT_FALSE(job.train.init_from[1].strict);
  EXPECT_EQ(job.train.init_from[2].limits.max, 3);
}

TEST_F(ConfigTest, ListOfSectionsFromTheCommandLineReplacesTheFileList) {
  auto path = write("l.yaml", "train:\n  init_from:\n    - path: a\n    - path: b\n");
  auto job = cfg::load<ListJob>(path, {"train.init_from=[{path: x, strict: false}]"});
  ASSERT_EQ(job.train.init_from.size(), 1u);
  EXPECT_EQ(job.train.init_from[0].path, "x");
  EXPECT_FALSE(job.train.init_from[0].strict);
  EXPECT_TRUE(cfg::load<ListJob>(path, {"train.init_from=[]"}).train.init_from.empty());
}

TEST_F(ConfigTest, ListElementErrorsNameFileLineElementAndNearestKey) {
  auto error = [&](const std::string& file, const std::string& text, const std::vector<std::string>& overrides = {}) {
    try {
      cfg::load<ListJob>(write(file, text), overrides);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  // Element 2 (index 1), on line 7.
  EXPECT_HAS(error("typo.yaml", "name: x\ntrain:\n  steps: 3\n  init_from:\n    - path: a\n    - strict: false\n      paht: b\n"),
             "typo.yaml:7: unknown key 'train.init_from[1].paht' (did you mean 'train.init_from[1].path'?)");
  EXPECT_HAS(error("far.yaml", "train:\n  init_from:\n    - zzzzzzzzzzzz: 1\n"),
             "far.yaml:3: unknown key 'train.init_from[0].zzzzzzzzzzzz'; keys in 'train.init_from[0]': limits, path, "
             "map, strict");
  EXPECT_HAS(error("type.yaml", "train:\n  init_from:\n    - path: a\n      strict: maybe\n"),
             "type.yaml:4: key 'train.init_from[0].strict': expected true or false, got 'maybe'");
  EXPECT_HAS(error("range.yaml", "train:\n  init_from:\n    - limits: {max: -1}\n"),
             "range.yaml:3: key 'train.init_from[0].limits.max': value -1 is out of range");
  EXPECT_HAS(error("scalar.yaml", "train:\n  init_from: runs/x\n"),
             "scalar.yaml:2: key 'train.init_from': expected a list of maps, got 'runs/x'");
  EXPECT_HAS(error("item.yaml", "train:\n  init_from:\n    - path: a\n    - runs/x\n"),
             "item.yaml:4: key 'train.init_from[1]': expected a map of keys, got 'runs/x'");
  EXPECT_HAS(error("cl.yaml", "", {"train.init_from=[{pth: x}]"}),
             "command line: unknown key 'train.init_from[0].pth' (did you mean 'train.init_from[0].path'?)");
  // Problems in elements are reported with the rest.
  EXPECT_HAS(error("many.yaml", "name: [x]\ntrain:\n  init_from:\n    - paht: a\n    - strict: 2\n"),
             "the config has 3 problems");
}

TEST_F(ConfigTest, ListOfSectionsRoundTripsThroughYaml) {
  ListJob job;
  job.train.init_from.resize(2);
  job.train.init_from[0].path = "runs/demo-phase1";
  job.train.init_from[1].path = "weights/llm";
  job.train.init_from[1].map = {"model. -> llm.model.", "-> x."};
  job.train.init_from[1].strict = false;
  job.train.init_from[1].limits.max = 4;
  std::string yaml = cfg::to_yaml(job);
  EXPECT_HAS(yaml, "  init_from:\n    - path: runs/demo-phase1\n      map: []\n      strict: true\n      limits:\n"
                   "        max: 0\n    - path: weights/llm\n");
  auto back = cfg::read<ListJob>(cfg::Document::from_string(yaml, "rendered"));
  ASSERT_EQ(back.train.init_from.size(), 2u);
  EXPECT_EQ(back.train.init_from[1].map, job.train.init_from[1].map);
  EXPECT_FALSE(back.train.init_from[1].strict);
  EXPECT_EQ(back.train.init_from[1].limits.max, 4);
  EXPECT_EQ(cfg::to_yaml(back), yaml);
  EXPECT_HAS(cfg::to_yaml(ListJob{}), "  init_from: []\n");
  EXPECT_TRUE(cfg::read<ListJob>(cfg::Document::from_string(cfg::to_yaml(ListJob{}))).train.init_from.empty());
}

TEST(ConfigDocs, ListOfSectionsIsDocumentedPerElementKeyAndShownInFlowStyle) {
  std::string docs = cfg::docs<ListJob>();
  EXPECT_HAS(docs, "train.init_from ");
  EXPECT_HAS(docs, "list[section]");
  EXPECT_HAS(docs, "train.init_from[].path ");
  EXPECT_HAS(docs, "train.init_from[].limits.max ");
  ListJob job;
  job.train.init_from.resize(1);
  job.train.init_from[0].path = "runs/a";
  std::string table = cfg::settings_table(job);
  EXPECT_HAS(table, "| train.init_from | [{path: runs/a, map: [], strict: true, limits: {max: 0}}] *");
  EXPECT_EQ(table.find("init_from[]"), std::string::npos) << table;
}

TEST(ConfigDocs, ListsEveryKeyWithTypeDefaultConstraintAndDoc) {
  auto keys = cfg::schema<TestJob>();
  std::string docs = cfg::docs<TestJob>();
  for (const auto& k : keys) EXPECT_HAS(docs, k.key);
  EXPECT_EQ(keys.size(), 13u);  // 3 top-level + 4 optim + 6 model
  bool found = false;
  std::istringstream lines(docs);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("optim.lr ", 0) != 0) continue;
    found = true;
    EXPECT_HAS(line, "double");
    EXPECT_HAS(line, "0.0005");
    EXPECT_HAS(line, "peak learning rate (>= 0)");
  }
  EXPECT_TRUE(found) << docs;
  EXPECT_HAS(docs, "[optim]  optimizer");
}

TEST(ConfigDocs, MarkdownHasOneTablePerSection) {
  std::string md = cfg::docs<TestJob>(true);
  EXPECT_EQ(md.rfind("| key | type | default | allowed | description |\n|---|---|---|---|---|\n| `name` | string | `job` |", 0), 0u)
      << md;
  EXPECT_HAS(md, "\n### `optim`\n\noptimizer\n\n| key |");
  EXPECT_HAS(md, "| `optim.schedule` | string | `cosine` | one of: cosine, constant | learning-rate schedule |\n");
  EXPECT_HAS(md, "| `model.mean` | list[double] | `[0.5, 0.25]` |");
}

TEST(ConfigDocs, SettingsTableMarksNonDefaults) {
  TestJob job;
  job.optim.lr = 0.1;
  std::string table = cfg::settings_table(job);
  std::istringstream lines(table);
  int rows = 0;
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("| optim.lr ", 0) == 0) {
      EXPECT_HAS(line, "| 0.1 ");
      EXPECT_HAS(line, " * |");
    }
    if (line.rfind("| model.width ", 0) == 0) {
      EXPECT_HAS(line, "| 512 ");
      EXPECT_EQ(line.find('*'), std::string::npos) << line;
    }
    rows += line.rfind("| ", 0) == 0;
  }
  EXPECT_EQ(rows, 12);  // header + 11 fields
}

TEST(ConfigSuggest, EditDistanceAndNearestKey) {
  EXPECT_EQ(cfg::edit_distance("kitten", "sitting"), 3u);
  EXPECT_EQ(cfg::edit_distance("", "abc"), 3u);
  EXPECT_EQ(cfg::nearest_key("optim.lrr", {"optim.lr", "optim.wd"}), "optim.lr");
  EXPECT_EQ(cfg::nearest_key("totally.different", {"optim.lr", "model.width"}), "");
}

TEST(JobConfig, EveryKeyIsDocumentedAndRoundTrips) {
  for (const auto& k : cfg::schema<JobConfig>()) EXPECT_FALSE(k.doc.empty()) << k.key << " has no doc";
  JobConfig defaults;
  std::string yaml = cfg::to_yaml(defaults);
  EXPECT_EQ(cfg::to_yaml(cfg::read<JobConfig>(cfg::Document::from_string(yaml, "defaults"))), yaml);
  // train.init_from, a list of sections, too.
  JobConfig job;
  job.train.init_from = {{"runs/phase1", {}, true}, {"weights/llm", {"model. -> llm.model."}, false}};
  yaml = cfg::to_yaml(job);
  auto back = cfg::read<JobConfig>(cfg::Document::from_string(yaml, "job"));
  ASSERT_EQ(back.train.init_from.size(), 2u);
  EXPECT_EQ(back.train.init_from[1].map, job.train.init_from[1].map);
  EXPECT_EQ(cfg::to_yaml(back), yaml);
}

TEST(JobConfig, EveryRecipeInConfigsLoads) {
  fs::path configs = fs::path(PATHVLM_SOURCE_DIR) / "configs";
  if (!fs::exists(configs)) GTEST_SKIP() << "no configs/ directory yet";
  std::set<std::string> sections;
  for (const auto& k : cfg::schema<JobConfig>())
    if (k.is_section && k.key.find('.') == std::string::npos) sections.insert(k.key);
  int loaded = 0;
  for (const auto& entry : fs::recursive_directory_iterator(configs)) {
    if (entry.path().extension() != ".yaml") continue;
    if (entry.path().parent_path().filename() == "sweeps") continue;  // sweep files: tests/sweep loads them
    // Data files that live beside the recipes (zero-shot class lists) set no job section at all.
    auto keys = cfg::Document::from_file(entry.path().string()).keys();
    if (std::none_of(keys.begin(), keys.end(), [&](const std::string& k) { return sections.count(k.substr(0, k.find('.'))); }))
      continue;
    try {
      load_job_config(entry.path().string());
    } catch (const Error& e) {
      ADD_FAILURE() << e.what();
    }
    ++loaded;
  }
  if (loaded == 0) GTEST_SKIP() << "no recipes in configs/ yet";
}
