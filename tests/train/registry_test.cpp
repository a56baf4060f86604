// The task registry: run.task accepts exactly the registered tasks (at config time, with file:line), each task's
// config is the job's section named after it, and the job's sections copy deeply.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <fstream>

#include "core/error.h"
#include "train/clip/config.h"
#include "train/job_config.h"
#include "train/lm/config.h"
#include "train/task.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;

namespace {

std::string write_config(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("pathvlm_registry_" + name + ".yaml");
  std::ofstream(path) << text;
  return path.string();
}

}  // namespace

TEST(TaskRegistry, RegisteredTasksAndTheirSections) {
  auto names = train::task_names();
  ASSERT_GE(names.size(), 2u);
  EXPECT_NE(std::find(names.begin(), names.end(), "lm"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "clip"), names.end());
  auto keys = cfg::schema<JobConfig>();
  auto has_key = [&](const std::string& k) {
    return std::any_of(keys.begin(), keys.end(), [&](const cfg::KeyInfo& i) { return i.key == k; });
  };
  for (const auto& name : names) EXPECT_TRUE(has_key(name)) << "no section for task " << name;
  EXPECT_TRUE(has_key("clip.data.train"));
  EXPECT_TRUE(has_key("lm.data.train"));
  EXPECT_NE(train::make_task("lm"), nullptr);
}

TEST(TaskRegistry, UnknownTaskIsRefusedAtConfigTimeNamingTheKnownOnes) {
  auto path = write_config("unknown", "run:\n  task: slidez\n");
  auto msg = error_of([&] { load_job_config(path); });
  EXPECT_NE(msg.find("pathvlm_registry_unknown.yaml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("'slidez' is not one of: lm, clip"), std::string::npos) << msg;
  msg = error_of([&] { train::make_task("slidez"); });
  EXPECT_NE(msg.find("run.task 'slidez' is not a registered task (known: lm, clip"), std::string::npos) << msg;
}

TEST(TaskRegistry, TaskSectionsReadWriteAndCopyDeeply) {
  auto path = write_config("sections", "run: {task: lm}\nlm: {model: tinyllama-1.1b, seq_len: 48}\nclip: {loss: siglip}\n");
  JobConfig job = load_job_config(path, {"lm.data.train=[a.jsonl, b.txt]"});
  EXPECT_EQ(job.task_config<train::LmConfig>().model, "tinyllama-1.1b");
  EXPECT_EQ(job.task_config<train::LmConfig>().seq_len, 48);
  EXPECT_EQ(job.task_config<train::LmConfig>().data.train, (std::vector<std::string>{"a.jsonl", "b.txt"}));
  EXPECT_EQ(job.task_config<train::ClipTaskConfig>().loss, "siglip");

  JobConfig copy = job;
  copy.task_config<train::LmConfig>().seq_len = 7;
  EXPECT_EQ(job.task_config<train::LmConfig>().seq_len, 48);

  // The YAML a run directory keeps reads back to the same values, task sections included.
  auto yaml = cfg::to_yaml(job);
  EXPECT_NE(yaml.find("lm:\n  model: tinyllama-1.1b"), std::string::npos) << yaml;
  JobConfig again = cfg::read<JobConfig>(cfg::Document::from_string(yaml));
  EXPECT_EQ(cfg::to_yaml(again), yaml);

  auto bad = write_config("badkey", "lm:\n  seq_lenn: 3\n");
  auto msg = error_of([&] { load_job_config(bad); });
  EXPECT_NE(msg.find("pathvlm_registry_badkey.yaml:2"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean 'lm.seq_len'"), std::string::npos) << msg;
}
