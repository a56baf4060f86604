// Sweep files and their expansion: grid, zip, seeded random draws, run names, checks before launch.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "sweep/expand.h"
#include "sweep/launch.h"
#include "sweep/sweep_spec.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::sweep;

namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// A folder with a valid base config (configs/demo/lm_tiny.yaml's keys; nothing runs) and sweep files beside it.
struct Scratch {
  fs::path dir = fs::temp_directory_path() / ("pathvlm_sweep_expand_" + std::to_string(::getpid()));
  Scratch() {
    fs::remove_all(dir);
    fs::create_directories(dir / "sweeps");
    std::ofstream(dir / "base.yaml") << "run: {task: lm, name: base}\ntrain: {steps: 10, device: cpu}\n"
                                        "optim: {lr: 1.0e-3}\nlm: {model: tiny}\n";
  }
  ~Scratch() { fs::remove_all(dir); }
  std::string sweep(const std::string& name, const std::string& body) const {
    const auto path = dir / "sweeps" / (name + ".yaml");
    std::ofstream(path) << "base: ../base.yaml\n" << body;
    return path.string();
  }
};

std::vector<std::string> names(const Expansion& e) {
  std::vector<std::string> out;
  for (const auto& p : e.points) out.push_back(p.name);
  return out;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(SweepExpand, GridIsEveryCombinationLastKeyFastestWithReadableNames) {
  Scratch s;
  auto spec = read_sweep_file(s.sweep("g", "set: {train.steps: 20}\n"
                                           "grid: {optim.lr: [1.0e-4, 3.0e-4], optim.weight_decay: [0.0, 0.1]}\n"));
  EXPECT_EQ(spec.base, (s.dir / "base.yaml").string());
  EXPECT_EQ(spec.name, "g");
  auto e = expand(spec);
  EXPECT_EQ(names(e), (std::vector<std::string>{"lr=1.0e-4_weight_decay=0.0", "lr=1.0e-4_weight_decay=0.1",
                                                "lr=3.0e-4_weight_decay=0.0", "lr=3.0e-4_weight_decay=0.1"}));
  EXPECT_EQ(e.points[2].index, 2);
  auto overrides = run_overrides(spec, e.points[1], "/sweeps/g");
  EXPECT_EQ(overrides, (std::vector<std::string>{"train.steps=20", "optim.lr=1.0e-4", "optim.weight_decay=0.1",
                                                 "checkpoint.resume=auto", "run.runs_dir=/sweeps/g",
                                                 "run.name=lr=1.0e-4_weight_decay=0.1"}));
  EXPECT_NO_THROW(check_points(spec, e.points, "/tmp/unused"));
}

TEST(SweepExpand, ZipAdvancesTogetherAndMultipliesTheGrid) {
  Scratch s;
  auto e = expand(read_sweep_file(s.sweep("z", "grid: {optim.lr: [1.0e-4, 3.0e-4]}\n"
                                               "zip: {train.micro_batch_size: [32, 64], optim.warmup_steps: [10, 20]}\n")));
  EXPECT_EQ(names(e), (std::vector<std::string>{"lr=1.0e-4_micro_batch_size=32_warmup_steps=10",
                                                "lr=1.0e-4_micro_batch_size=64_warmup_steps=20",
                                                "lr=3.0e-4_micro_batch_size=32_warmup_steps=10",
                                                "lr=3.0e-4_micro_batch_size=64_warmup_steps=20"}));
  EXPECT_EQ(e.varying_keys, (std::vector<std::string>{"optim.lr", "train.micro_batch_size", "optim.warmup_steps"}));
}

TEST(SweepExpand, RandomDrawsAreSeededInRangeAndStable) {
  Scratch s;
  const std::string body = "random: {count: 16, seed: 3, axes: {optim.lr: {log_uniform: [1.0e-5, 1.0e-2]},\n"
                           "  optim.warmup_steps: {uniform: [0, 50]}, optim.schedule: {choice: [cosine, constant]},\n"
                           "  optim.beta2: {uniform: [0.9, 0.99]}}}\n";
  auto a = expand(read_sweep_file(s.sweep("r", body)));
  auto b = expand(read_sweep_file(s.sweep("r2", body)));
  ASSERT_EQ(a.points.size() + a.duplicates_dropped, 16u);
  EXPECT_EQ(names(a), names(b));  // same seed, same draws
  std::set<std::string> schedules, lrs;
  for (const auto& p : a.points) {
    ASSERT_EQ(p.values.size(), 4u);
    const double lr = std::stod(p.values[0].second);
    EXPECT_GE(lr, 1e-5 * 0.999);
    EXPECT_LE(lr, 1e-2 * 1.001);
    lrs.insert(p.values[0].second);
    const std::string warmup = p.values[1].second;
    EXPECT_EQ(warmup.find_first_not_of("0123456789"), std::string::npos) << warmup;  // integer bounds: integers
    EXPECT_LE(std::stoi(warmup), 50);
    schedules.insert(p.values[2].second);
    const double beta2 = std::stod(p.values[3].second);
    EXPECT_GE(beta2, 0.9);
    EXPECT_LE(beta2, 0.99);
  }
  EXPECT_EQ(schedules, (std::set<std::string>{"cosine", "constant"}));
  EXPECT_GE(lrs.size(), 10u);  // spread, not one value
  // Log-uniform: about as many draws below the geometric middle (3.2e-4) as above.
  int below = 0;
  for (const auto& p : a.points) below += std::stod(p.values[0].second) < 3.16e-4;
  EXPECT_GE(below, 3);
  EXPECT_LE(below, 13);
  // Another seed, other draws; a draw does not depend on the other axes (adding one keeps lr's values).
  auto c = expand(read_sweep_file(s.sweep("r3", "random: {count: 16, seed: 4, axes: {optim.lr: {log_uniform: [1.0e-5, 1.0e-2]}}}\n")));
  auto d = expand(read_sweep_file(s.sweep("r4", "random: {count: 16, seed: 3, axes: {optim.lr: {log_uniform: [1.0e-5, 1.0e-2]}}}\n")));
  EXPECT_NE(c.points[0].values[0].second, d.points[0].values[0].second);
  EXPECT_EQ(d.points[0].values[0].second, a.points[0].values[0].second);
}

TEST(SweepExpand, NamesUseTheShortestSuffixThatTellsKeysApartAndNoAxesIsOnePoint) {
  Scratch s;
  auto e = expand(read_sweep_file(s.sweep("n", "grid: {lm.model: [tiny], train.steps: [5], lm.data.steps: [\"a b\"]}\n")));
  // "steps" is shared by train.steps and lm.data.steps: both get their parent; odd characters become '_'.
  EXPECT_EQ(names(e), (std::vector<std::string>{"model=tiny_train.steps=5_data.steps=a_b"}));
  auto one = expand(read_sweep_file(s.sweep("one", "set: {train.steps: 5}\n")));
  EXPECT_EQ(names(one), (std::vector<std::string>{"base"}));
}

TEST(SweepExpand, EveryBadPointIsNamedBeforeAnythingLaunches) {
  Scratch s;
  auto spec = read_sweep_file(s.sweep("bad", "grid: {optim.lr: [1.0e-4, -1.0], train.steps: [5, 6]}\n"));
  auto e = expand(spec);
  const std::string err = error_of([&] { check_points(spec, e.points, "/tmp/unused"); });
  EXPECT_HAS(err, "2 of 4 points have a bad config");
  EXPECT_HAS(err, "point 2 (lr=-1.0_steps=5)");
  EXPECT_HAS(err, "point 3 (lr=-1.0_steps=6)");
  EXPECT_HAS(err, "optim.lr");
  EXPECT_EQ(err.find("point 0"), std::string::npos) << err;
  // An unknown key is named with its near match.
  auto typo = read_sweep_file(s.sweep("typo", "grid: {optim.lrr: [1.0e-4]}\n"));
  EXPECT_HAS(error_of([&] { check_points(typo, expand(typo).points, "/tmp/unused"); }), "optim.lrr");
}

TEST(SweepExpand, MalformedSweepFilesNameFileLineAndKey) {
  Scratch s;
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e1", "gird: {optim.lr: [1]}\n")); }), "did you mean 'grid'");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e2", "grid: {optim.lr: 1.0e-4}\n")); }),
             "e2.yaml:2: 'grid.optim.lr' must be a non-empty list");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e3", "zip: {a.b: [1, 2], c.d: [1]}\n")); }),
             "zip lists advance together");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e4", "set: {optim.lr: 1}\nrandom: {count: 2, axes: {optim.lr: {uniform: [0, 1]}}}\n")); }),
             "key 'optim.lr' is fixed in `set` and varies in random");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e5", "random: {count: 2, axes: {optim.lr: {log_uniform: [0, 1]}}}\n")); }),
             "needs bounds above 0");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e6", "random: {count: 2, axes: {optim.lr: {gauss: [0, 1]}}}\n")); }),
             "random.axes.optim.lr");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e7", "set: {run.name: x}\n")); }), "cannot be set");
  EXPECT_HAS(error_of([&] { read_sweep_file(s.sweep("e8", "launch: {ranks: 0}\n")); }), "'launch.ranks' must be >= 1");
  std::ofstream(s.dir / "sweeps" / "nobase.yaml") << "base: ../missing.yaml\n";
  EXPECT_HAS(error_of([&] { read_sweep_file((s.dir / "sweeps" / "nobase.yaml").string()); }), "is not a file");
}

TEST(SweepLaunch, ArraySpecAndSbatchCommandCarryTheResources) {
  EXPECT_EQ(array_spec({5, 0, 1, 2, 7, 8, 3}, 2), "0-3,5,7-8%2");
  EXPECT_EQ(array_spec({4}, 0), "4");
  LaunchSpec l;
  l.ranks = 2;
  l.cpus_per_task = 3;
  l.gpus_per_task = 0;
  l.throttle = 1;
  l.partition = "debug";
  l.sbatch_args = {"--account=abc"};
  SweepDir dir{"/s/w"};
  auto cmd = sbatch_command(dir, "w", {0, 1}, l, "/repo/launch/slurm/train.sbatch", "/bin/pathvlm", "/repo");
  auto has = [&](const std::string& a) { return std::find(cmd.begin(), cmd.end(), a) != cmd.end(); };
  EXPECT_TRUE(has("--array=0-1%1"));
  EXPECT_TRUE(has("--ntasks=2"));
  EXPECT_TRUE(has("--cpus-per-task=3"));
  EXPECT_TRUE(has("--partition=debug"));
  EXPECT_TRUE(has("--account=abc"));
  EXPECT_TRUE(has("--output=/s/w/logs/%x_%A_%a.out"));
  EXPECT_TRUE(has("--export=ALL,PATHVLM=/bin/pathvlm,PATHVLM_TASKS=/s/w/points.tsv"));
  for (const auto& a : cmd) EXPECT_EQ(a.find("--gpus"), std::string::npos) << "a CPU-only job asks for no GPU";
  EXPECT_EQ(cmd.back(), "/repo/launch/slurm/train.sbatch");
  l.gpus_per_task = 1;
  cmd = sbatch_command(dir, "w", {0}, l, "t", "p", "/");
  EXPECT_TRUE(has("--gpus-per-task=1"));
}

TEST(SweepExpand, TheSweepFilesInConfigsExpandAndCheck) {
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(PATHVLM_SOURCE_DIR) / "configs/sweeps")) {
    auto spec = read_sweep_file(entry.path().string());
    auto e = expand(spec);
    EXPECT_GE(e.points.size(), 2u) << entry.path();
    EXPECT_NO_THROW(check_points(spec, e.points, "/tmp/unused")) << entry.path();
    ++files;
  }
  EXPECT_GE(files, 2);
}

// The issue's own example varies optim.lr in grid and in random: the random draws replace the grid's values, so the
// points are weight_decay (2) x zip (2) x lr draws (8), each once, named by the four keys.
TEST(SweepExpand, AKeyVariedInSeveralBlocksTakesTheLastBlocksValue) {
  Scratch s;
  const auto spec = read_sweep_file(s.sweep("both", "grid: {optim.lr: [1.0e-4, 3.0e-4], optim.weight_decay: [0.0, 0.1]}\n"
                                                    "zip: {train.micro_batch_size: [32, 64], optim.warmup_steps: [10, 20]}\n"
                                                    "random: {count: 8, seed: 0, axes: {optim.lr: {log_uniform: [1.0e-5, 1.0e-3]}}}\n"));
  const auto e = expand(spec);
  EXPECT_EQ(e.overridden_keys, std::vector<std::string>{"optim.lr"});
  EXPECT_EQ(e.varying_keys.size(), 4u);
  ASSERT_EQ(e.points.size(), 32u);
  EXPECT_EQ(e.duplicates_dropped, 32);
  std::set<std::string> names;
  for (const auto& p : e.points) {
    names.insert(p.name);
    ASSERT_EQ(p.values.size(), 4u) << p.name;
    const double lr = std::stod(p.values[0].second);
    EXPECT_TRUE(lr >= 1e-5 && lr <= 1e-3 && lr != 1e-4 && lr != 3e-4) << p.name;
  }
  EXPECT_EQ(names.size(), 32u);
}
