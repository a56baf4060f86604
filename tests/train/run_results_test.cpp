// What a user looks at after `pathvlm train` (the tiny `lm` job): results.json equal to the last logged evaluation,
// the plots, fractional epochs, the eval printed once, the settings table of the task's sections, the training time
// summed over resumed pieces, and a finished run that is not continued unless asked.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/text_file.h"
#include "train/job_config.h"
#include "train/lm/task.h"
#include "train/run_results.h"
#include "train/trainer.h"
#include "train_test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

// 10 steps, evaluated at 5 and 10, logged every step, checkpoints every 4 steps.
JobConfig evaluated_job(const std::string& dir, const std::string& name) {
  JobConfig job = tiny_lm_job(dir, name, /*seed=*/5, /*steps=*/10);
  job.log.every = 1;
  job.eval.every = 5;
  job.checkpoint.every_steps = 4;
  job.checkpoint.resume = "auto";
  auto& lm = job.task_config<train::LmConfig>();
  lm.data.eval = {tiny_text_corpus().eval_jsonl};
  lm.eval.max_sequences = 24;
  return job;
}

nlohmann::json read_json(const std::string& path) { return nlohmann::json::parse(read_text_file(path)); }

// The PNG signature.
bool is_png(const std::string& path) { return read_text(path).rfind("\x89PNG\r\n\x1a\n", 0) == 0; }

}  // namespace

TEST(RunResults, ResultsJsonHoldsTheLastLoggedEvalAndTheRunIsPlotted) {
  auto dir = fresh_dir("results");
  auto job = evaluated_job(dir, "r");
  ASSERT_EQ(train::train(job), 0);
  const std::string run = dir + "/r";
  const auto results = read_json(run + "/results.json");
  EXPECT_EQ(results["run"], "r");
  EXPECT_EQ(results["task"], "lm");
  EXPECT_EQ(results["status"], "finished");
  EXPECT_EQ(results["steps"], 10);
  EXPECT_EQ(results["samples"], 10 * 12);  // 10 steps of one micro-batch of 12 sequences on one rank
  ASSERT_EQ(results["pieces"].size(), 1u);
  EXPECT_EQ(results["pieces"][0]["from_step"], 0);
  EXPECT_EQ(results["pieces"][0]["to_step"], 10);
  EXPECT_EQ(results["train_seconds"], results["pieces"][0]["seconds"]);
  EXPECT_GT(results["train_seconds"].get<double>(), 0);
  EXPECT_DOUBLE_EQ(results["samples_per_s"].get<double>(), 120 / results["train_seconds"].get<double>());

  // final_eval is the last evaluation record of metrics.jsonl, value for value; best_eval picks by direction.
  nlohmann::json last_eval, eval5;
  std::ifstream in(run + "/metrics.jsonl");
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (!j.contains("eval/loss")) continue;
    if (j["step"] == 5) eval5 = j;
    last_eval = j;
  }
  ASSERT_FALSE(last_eval.is_null());
  EXPECT_EQ(last_eval["step"], 10);
  const auto& final_eval = results["final_eval"];
  EXPECT_EQ(final_eval["step"], 10);
  for (const char* tag : {"eval/loss", "eval/perplexity", "eval/accuracy"}) {
    EXPECT_EQ(final_eval[tag], last_eval[tag]) << tag;
    const bool lower = train::lower_is_better(tag);
    const auto& better = (lower ? eval5[tag] < last_eval[tag] : eval5[tag] > last_eval[tag]) ? eval5 : last_eval;
    EXPECT_EQ(results["best_eval"][tag]["value"], better[tag]) << tag;
    EXPECT_EQ(results["best_eval"][tag]["step"], better["step"]) << tag;
  }
  EXPECT_TRUE(train::lower_is_better("eval/loss"));
  EXPECT_TRUE(train::lower_is_better("retrieval/image_to_text_median_rank"));
  EXPECT_FALSE(train::lower_is_better("zeroshot/top1"));
  EXPECT_EQ(results["final_train"]["step"], 10);
  EXPECT_TRUE(results["final_train"].contains("train/loss"));

  const auto& paths = results["paths"];
  EXPECT_EQ(paths["run_dir"], fs::absolute(run).lexically_normal().string());
  EXPECT_EQ(paths["checkpoint"], fs::absolute(run + "/checkpoints/step_00000010").lexically_normal().string());
  EXPECT_TRUE(fs::exists(paths["export"].get<std::string>() + "/model.safetensors"));
  EXPECT_TRUE(is_png(paths["loss_plot"].get<std::string>()));
  EXPECT_TRUE(is_png(paths["eval_plot"].get<std::string>()));  // eval/accuracy lies in [0, 1]

  // Fractional epochs: within the first epoch, step 10 is twice as far as step 5.
  const auto history = train::read_metric_history(run + "/metrics.jsonl");
  const double e5 = history.at("train/epoch").at(5), e10 = history.at("train/epoch").at(10);
  EXPECT_GT(e5, 0);
  EXPECT_LT(e10, 1);
  EXPECT_DOUBLE_EQ(e10, 2 * e5);
  EXPECT_DOUBLE_EQ(results["epoch"].get<double>(), e10);

  // The console: each evaluation once (a header, the task's line), no dump of the same values; the settings table
  // has the lm section, not the other tasks'.
  const auto log = read_text(run + "/log.txt");
  EXPECT_HAS(log, "eval at step 5, epoch ");
  EXPECT_HAS(log, "lm.data.eval: loss ");
  EXPECT_EQ(log.find("eval/loss"), std::string::npos) << "metric values printed a second time";
  EXPECT_HAS(log, "| lm.seq_len ");
  EXPECT_EQ(log.find("| clip."), std::string::npos);
  EXPECT_EQ(log.find("| instruct."), std::string::npos);
  EXPECT_HAS(log, "not shown, unused by this job: clip, instruct, slide");
  EXPECT_HAS(log, "results: " + run + "/results.json and the plots loss.png, eval.png");
  fs::remove_all(dir);
}

// A finished run with a fixed name is not continued by a rerun: exit status 2 and a message saying what to do,
// nothing appended. --force continues it (here to more steps): the training time is the sum of both pieces, the
// first as its checkpoint recorded it.
TEST(RunResults, FinishedRunStopsUnlessForcedAndTimeSumsOverPieces) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("finished");
  const auto config = write_config(dir, evaluated_job(dir, "fixed"));
  const std::string run = dir + "/fixed";
  ASSERT_EQ(launch(1, config, {}, dir + "/first.out"), 0) << read_text(dir + "/first.out");
  const auto first = read_json(run + "/results.json");
  const auto metrics_before = read_text(run + "/metrics.jsonl");

  EXPECT_EQ(launch(1, config, {"train.steps=14"}, dir + "/again.out"), train::kExitError);
  const auto again = read_text(dir + "/again.out");
  EXPECT_HAS(again, "run 'fixed' finished already (10 steps, " + run + "/results.json); it is not continued.");
  EXPECT_HAS(again, "pathvlm train --force");
  EXPECT_HAS(again, "checkpoint.resume=" + run + "/checkpoints/step_XXXXXXXX");
  EXPECT_EQ(read_text(run + "/metrics.jsonl"), metrics_before) << "the refused run wrote metrics";

  ASSERT_EQ(launch(1, config, {"train.steps=14", "--force"}, dir + "/forced.out"), 0) << read_text(dir + "/forced.out");
  const auto results = read_json(run + "/results.json");
  EXPECT_EQ(results["steps"], 14);
  ASSERT_EQ(results["pieces"].size(), 2u);
  const auto state = read_json(run + "/checkpoints/step_00000010/trainer_state.json");
  ASSERT_EQ(state["pieces"].size(), 1u);
  EXPECT_EQ(results["pieces"][0], state["pieces"][0]);
  EXPECT_EQ(results["pieces"][0]["to_step"], 10);
  EXPECT_EQ(results["pieces"][1]["from_step"], 10);
  EXPECT_EQ(results["pieces"][1]["to_step"], 14);
  EXPECT_DOUBLE_EQ(results["train_seconds"].get<double>(),
                   results["pieces"][0]["seconds"].get<double>() + results["pieces"][1]["seconds"].get<double>());
  EXPECT_GE(results["train_seconds"].get<double>(), first["train_seconds"].get<double>());
  EXPECT_EQ(results["samples"], 14 * 12);
  EXPECT_HAS(read_text(dir + "/forced.out"), "over 2 resumed pieces");

  // An explicit checkpoint is a request too.
  EXPECT_EQ(launch(1, config, {"train.steps=14", "checkpoint.resume=" + run + "/checkpoints/step_00000012"},
                   dir + "/explicit.out"),
            0)
      << read_text(dir + "/explicit.out");
  fs::remove_all(dir);
}

// Killed after step 6 (checkpoint at 4) and resumed: two pieces, 0-4 (as the checkpoint saved it; the work after it
// was lost) and 4-10, whose sum is the run's training time.
TEST(RunResults, KilledAndResumedRunSumsItsPieces) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  auto dir = fresh_dir("pieces");
  auto job = evaluated_job(dir, "killed");
  job.eval.every = 0;
  const auto config = write_config(dir, job);
  EXPECT_NE(launch(1, config, {"train.fault.step=6"}, dir + "/first.out"), 0);
  EXPECT_FALSE(fs::exists(dir + "/killed/results.json"));
  const auto saved = read_json(dir + "/killed/checkpoints/step_00000004/trainer_state.json")["pieces"];
  ASSERT_EQ(launch(1, config, {}, dir + "/second.out"), 0) << read_text(dir + "/second.out");
  const auto results = read_json(dir + "/killed/results.json");
  ASSERT_EQ(results["pieces"].size(), 2u);
  EXPECT_EQ(results["pieces"][0], saved[0]);
  EXPECT_EQ(results["pieces"][1]["from_step"], 4);
  EXPECT_EQ(results["pieces"][1]["to_step"], 10);
  EXPECT_DOUBLE_EQ(results["train_seconds"].get<double>(),
                   saved[0]["seconds"].get<double>() + results["pieces"][1]["seconds"].get<double>());
  EXPECT_EQ(results["final_eval"], nullptr);  // no evaluation configured
  EXPECT_EQ(results["paths"]["eval_plot"], "");
  fs::remove_all(dir);
}

// metrics.jsonl lines that are torn, not records, or have a step that is not a number are skipped, not fatal.
TEST(RunResults, MetricHistorySkipsLinesThatAreNotRecords) {
  const std::string path = fresh_dir("metric_history") + "/metrics.jsonl";
  write_text_file(path,
                  "{\"step\": 1, \"train/loss\": 2.5}\n{\"step\": 2, \"train/lo\n[1, 2]\n"
                  "{\"step\": \"3\", \"train/loss\": 9}\n{\"step\": null}\n{\"step\": 4, \"train/loss\": 1.5, "
                  "\"note\": \"text\"}\n");
  const auto history = train::read_metric_history(path);
  ASSERT_EQ(history.size(), 1u);
  EXPECT_EQ(history.at("train/loss"), (std::map<int64_t, double>{{1, 2.5}, {4, 1.5}}));
  fs::remove_all(fs::path(path).parent_path());
}
