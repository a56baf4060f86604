// Run directories read back (metrics.jsonl, config.yaml, checkpoints), compared in Markdown, CSV and JSON, plotted;
// a sweep directory's point states from the launchers' status files and the SLURM queue.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/image.h"
#include "sweep/run_summary.h"
#include "sweep/run_table.h"
#include "sweep/sweep_dir.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::sweep;

namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

struct Runs {
  fs::path dir = fs::temp_directory_path() / ("pathvlm_run_table_" + std::to_string(::getpid()));
  Runs() {
    fs::remove_all(dir);
    // "fast": finished (final checkpoint at step 4), accuracy 0.5 then 0.75.
    write("fast", 4, {R"({"step": 1, "time": 100.0, "train/loss": 3.0, "train/samples_per_s": 10.0})",
                      R"({"step": 2, "time": 101.0, "eval/accuracy": 0.5, "eval/loss": 2.5})",
                      R"({"step": 4, "time": 104.0, "train/loss": 2.0, "train/samples_per_s": 30.0})",
                      R"({"step": 4, "time": 105.0, "eval/accuracy": 0.75, "eval/loss": 2.0})"});
    fs::create_directories(dir / "fast/checkpoints/step_00000004");
    std::ofstream(dir / "fast/checkpoints/step_00000004/DONE");
    // "slow": stopped at step 3 of 4 and resumed from step 2 (step 3 logged twice: the later value counts); a torn
    // last line from a kill.
    write("slow", 4, {R"({"step": 2, "time": 200.0, "train/loss": 2.9, "eval/accuracy": 0.8, "eval/loss": 1.5})",
                      R"({"step": 3, "time": 201.0, "train/loss": 9.0})",
                      R"({"step": 3, "time": 250.0, "train/loss": 2.7, "train/samples_per_s": 5.0})",
                      R"({"step": 3, "time": 251.0, "eval/accuracy": 0.6})", R"({"step": 4, "ti)"});
  }
  ~Runs() { fs::remove_all(dir); }
  void write(const std::string& name, int steps, const std::vector<std::string>& lines) {
    fs::create_directories(dir / name);
    std::ofstream(dir / name / "config.yaml") << "run:\n  name: " << name << "\ntrain:\n  steps: " << steps << "\n";
    std::ofstream out(dir / name / "metrics.jsonl");
    for (const auto& l : lines) out << l << "\n";
  }
  std::string path(const std::string& name) const { return (dir / name).string(); }
};

}  // namespace

TEST(RunSummary, ReadsProgressMetricsAndStateFromTheRunDirectory) {
  Runs r;
  auto fast = summarize_run(r.path("fast"));
  EXPECT_EQ(fast.name, "fast");
  EXPECT_EQ(fast.state, "done");
  EXPECT_EQ(fast.step, 4);
  EXPECT_EQ(fast.total_steps, 4);
  EXPECT_DOUBLE_EQ(*fast.last_loss, 2.0);
  EXPECT_DOUBLE_EQ(fast.best_metrics.at("eval/accuracy"), 0.75);
  EXPECT_DOUBLE_EQ(fast.final_metrics.at("eval/accuracy"), 0.75);
  EXPECT_DOUBLE_EQ(fast.best_metrics.at("eval/loss"), 2.0);  // lower is better for losses
  EXPECT_DOUBLE_EQ(fast.wall_s, 5.0);
  EXPECT_DOUBLE_EQ(*fast.samples_per_s, 20.0);

  auto slow = summarize_run(r.path("slow"));
  EXPECT_EQ(slow.state, "incomplete");
  EXPECT_EQ(slow.step, 3);
  EXPECT_DOUBLE_EQ(*slow.last_loss, 2.7);  // the resumed run's value replaces the first one's
  EXPECT_EQ(slow.history.at("train/loss").size(), 2u);
  EXPECT_DOUBLE_EQ(slow.best_metrics.at("eval/accuracy"), 0.8);
  EXPECT_DOUBLE_EQ(slow.final_metrics.at("eval/accuracy"), 0.6);

  EXPECT_EQ(summarize_run(r.path("never")).state, "pending");
  EXPECT_EQ(slow.bad_lines, 1);
  // A torn line continued by the resumed run's next record, and more records after it.
  std::ofstream(r.dir / "slow/metrics.jsonl", std::ios::app) << "me\": 5}{\"step\": 4}\n{\"step\": 5}\n";
  slow = summarize_run(r.path("slow"));
  EXPECT_EQ(slow.step, 5);
  EXPECT_EQ(slow.bad_lines, 2);
}

TEST(RunTable, SortsFormatsPicksTheBestAndPlots) {
  Runs r;
  std::vector<RunSummary> runs = {summarize_run(r.path("fast")), summarize_run(r.path("slow"))};
  EXPECT_EQ(compared_metric(runs, ""), "eval/accuracy");
  EXPECT_EQ(best_run(runs, "eval/accuracy")->name, "slow");  // best 0.8 beats 0.75
  EXPECT_EQ(best_run(runs, "eval/loss")->name, "slow");
  EXPECT_EQ(best_run(runs, "train/loss")->name, "fast");
  EXPECT_THROW(compared_metric(runs, "eval/bleu"), Error);

  sort_runs(runs, "eval/accuracy");
  EXPECT_EQ(runs[0].name, "slow");
  sort_runs(runs, "loss");
  EXPECT_EQ(runs[0].name, "fast");
  sort_runs(runs, "name");
  EXPECT_EQ(runs[0].name, "fast");
  EXPECT_THROW(sort_runs(runs, "colour"), Error);

  const std::string md = format_runs(runs, "eval/accuracy", "md");
  EXPECT_HAS(md, "| run    | state      | step/total | loss | best eval/accuracy | final eval/accuracy |");
  EXPECT_HAS(md, "| slow * | incomplete | 3/4        | 2.7  | 0.8 ");
  EXPECT_HAS(md, "* best eval/accuracy: slow (0.8)");
  const std::string csv = format_runs(runs, "eval/accuracy", "csv");
  EXPECT_HAS(csv, "run,state,step,total_steps,loss,best eval/accuracy,final eval/accuracy,best eval/loss,final "
                  "eval/loss,wall_s,samples/s\n");
  EXPECT_HAS(csv, "fast,done,4,4,2,0.75,0.75,2,2,5,20\n");
  auto json = nlohmann::json::parse(format_runs(runs, "eval/accuracy", "json"));
  EXPECT_EQ(json["best"], "slow");
  EXPECT_EQ(json["runs"][0]["name"], "fast");
  EXPECT_EQ(json["runs"][1]["final"]["eval/accuracy"], 0.6);
  EXPECT_THROW(format_runs(runs, "eval/accuracy", "xml"), Error);

  const auto plot = (r.dir / "acc.png").string();
  const std::string report = compare_runs(runs, {"", "", "md", plot});
  EXPECT_HAS(report, "resolved config of slow");
  EXPECT_HAS(report, "name: slow");
  auto img = data::read_image(plot);
  EXPECT_EQ(img.size(1), 800);
  auto j = nlohmann::json::parse(compare_runs(runs, {"train/loss", "", "json", ""}));
  EXPECT_EQ(j["best"], "fast");
  EXPECT_HAS(j["best_config"].get<std::string>(), "name: fast");
}

TEST(SweepDir, PointStatesComeFromRunsStatusFilesAndTheQueue) {
  Runs r;
  SweepDir dir{r.dir.string()};
  std::ofstream(dir.tasks_path()) << "fast\tbase.yaml\trun.name=fast\nslow\tbase.yaml\trun.name=slow\n"
                                  << "never\tbase.yaml\trun.name=never\nbroken\tbase.yaml\trun.name=broken\n";
  fs::create_directories(r.dir / "status");
  write_status(dir, "slow", "exit 42");
  write_status(dir, "broken", "exit 2");
  auto states = point_states(open_sweep_dir(dir.path));
  ASSERT_EQ(states.size(), 4u);
  EXPECT_EQ(states[0].state, "done");
  EXPECT_EQ(states[1].state, "preempted");
  EXPECT_EQ(states[2].state, "pending");
  EXPECT_EQ(states[3].state, "failed (exit 2)");
  write_status(dir, "never", "running");
  EXPECT_EQ(point_states(dir)[2].state, "running");
  EXPECT_EQ(point_states(dir, SlurmQueue(std::in_place))[2].state, "incomplete");  // no longer queued: cancelled or killed
  using Queue = std::vector<std::pair<int, std::string>>;
  states = point_states(dir, Queue{{1, "PENDING JobHeldUser"}, {2, "RUNNING None"}, {3, "PENDING Priority"}});
  EXPECT_EQ(states[1].state, "held");
  EXPECT_EQ(states[2].state, "running");
  EXPECT_EQ(states[3].state, "queued");
  record_launch(dir, "slurm", "17", {1, 2});
  record_launch(dir, "local", "local", {0});
  record_launch(dir, "slurm", "23", {3});
  EXPECT_EQ(recorded_slurm_jobs(dir), (std::vector<std::string>{"17", "23"}));
  EXPECT_THROW(open_sweep_dir((r.dir / "fast").string()), Error);
}
