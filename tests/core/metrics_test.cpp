// Metrics sinks (metrics.jsonl, TensorBoard event file read back by an independent decoder), the step
// line, progress bars, logging and the run directory.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include <unistd.h>

#include "core/log.h"
#include "core/metrics.h"
#include "core/progress.h"
#include "core/run_dir.h"
#include "core/tensorboard.h"
#include "train/job_config.h"

namespace fs = std::filesystem;
using namespace pathvlm;

namespace {

#define EXPECT_HAS(haystack, needle) EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << haystack

// A fresh directory removed afterwards; or, if `keep_env` names a set variable, that directory, kept
// (scripts/gpu/check_tensorboard.py reads what a test wrote there).
class TempDir {
 public:
  explicit TempDir(const char* keep_env = nullptr) {
    const char* keep = keep_env ? std::getenv(keep_env) : nullptr;
    keep_ = keep && *keep;
    path_ = keep_ ? fs::path(keep)
                  : fs::temp_directory_path() / ("pathvlm_metrics_" + std::to_string(::getpid()) + "_" +
                                                 ::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (!keep_) fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    if (!keep_) fs::remove_all(path_);
  }
  std::string str() const { return path_.string(); }
  fs::path path() const { return path_; }

 private:
  fs::path path_;
  bool keep_ = false;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// ---- an independent TFRecord + Event decoder (bitwise CRC, generic protobuf walk) ----

uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xffffffffu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

struct Field {
  int number, wire;
  uint64_t varint = 0;
  std::string bytes;  // wire 1, 2, 5: raw bytes
};

std::vector<Field> parse_proto(const std::string& data) {
  std::vector<Field> fields;
  size_t i = 0;
  auto varint = [&]() {
    uint64_t v = 0;
    for (int shift = 0;; shift += 7) {
      if (i >= data.size()) throw std::runtime_error("truncated varint");
      unsigned char b = data[i++];
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
  };
  while (i < data.size()) {
    uint64_t key = varint();
    Field f{int(key >> 3), int(key & 7), 0, {}};
    if (f.wire == 0) f.varint = varint();
    else if (f.wire == 1) f.bytes = data.substr(i, 8), i += 8;
    else if (f.wire == 5) f.bytes = data.substr(i, 4), i += 4;
    else if (f.wire == 2) {
      uint64_t n = varint();
      f.bytes = data.substr(i, n), i += n;
    } else {
      throw std::runtime_error("unexpected wire type");
    }
    fields.push_back(f);
  }
  return fields;
}

struct Event {
  double wall_time = 0;
  int64_t step = -1;
  std::string file_version;
  std::vector<std::pair<std::string, float>> values;
};

std::vector<Event> read_events(const std::string& path) {
  std::string data = slurp(path);
  std::vector<Event> events;
  size_t i = 0;
  while (i < data.size()) {
    EXPECT_GE(data.size() - i, 12u);
    std::string len_bytes = data.substr(i, 8);
    uint64_t len;
    uint32_t len_crc, data_crc;
    std::memcpy(&len, len_bytes.data(), 8);
    std::memcpy(&len_crc, data.data() + i + 8, 4);
    EXPECT_EQ(len_crc, masked(crc32c_bitwise(len_bytes))) << "length CRC of record at " << i;
    std::string payload = data.substr(i + 12, len);
    std::memcpy(&data_crc, data.data() + i + 12 + len, 4);
    EXPECT_EQ(data_crc, masked(crc32c_bitwise(payload))) << "payload CRC of record at " << i;
    i += 12 + len + 4;
    Event e;
    for (const auto& f : parse_proto(payload)) {
      if (f.number == 1) std::memcpy(&e.wall_time, f.bytes.data(), 8);
      if (f.number == 2) e.step = static_cast<int64_t>(f.varint);
      if (f.number == 3) e.file_version = f.bytes;
      if (f.number == 5)
        for (const auto& v : parse_proto(f.bytes)) {
          EXPECT_EQ(v.number, 1);
          std::pair<std::string, float> tv;
          for (const auto& g : parse_proto(v.bytes)) {
            if (g.number == 1) tv.first = g.bytes;
            if (g.number == 2) std::memcpy(&tv.second, g.bytes.data(), 4);
          }
          e.values.push_back(tv);
        }
    }
    events.push_back(e);
  }
  EXPECT_EQ(i, data.size());
  return events;
}

}  // namespace

TEST(TensorBoard, Crc32cMatchesTheStandardCheckValue) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c("123456789", 9), crc32c_bitwise("123456789"));
}

TEST(TensorBoard, EventFileRoundTrip) {
  TempDir dir;
  std::string path;
  {
    EventFileWriter writer(dir.str());
    path = writer.path();
    writer.add_scalars(10, 1700000000.5, {{"train/loss", 2.5}, {"train/lr", 1e-4}});
    writer.add_scalar(20, 1700000001.25, "eval/r1", 0.375);
    writer.add_scalar(-3, 1700000002.0, "odd/step", -7.0);
  }
  EXPECT_HAS(fs::path(path).filename().string(), "events.out.tfevents.");
  auto events = read_events(path);
  ASSERT_EQ(events.size(), 4u);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  EXPECT_EQ(events[1].step, 10);
  EXPECT_DOUBLE_EQ(events[1].wall_time, 1700000000.5);
  ASSERT_EQ(events[1].values.size(), 2u);
  EXPECT_EQ(events[1].values[0].first, "train/loss");
  EXPECT_EQ(events[1].values[0].second, 2.5f);
  EXPECT_EQ(events[1].values[1].first, "train/lr");
  EXPECT_EQ(events[1].values[1].second, 1e-4f);
  EXPECT_EQ(events[2].step, 20);
  EXPECT_EQ(events[2].values[0].second, 0.375f);
  EXPECT_EQ(events[3].step, -3);  // negative int64 as a 10-byte varint
  EXPECT_EQ(events[3].values[0].second, -7.0f);
}

TEST(Metrics, WritesJsonlAndTensorBoardWithTheSameScalars) {
  TempDir dir("PATHVLM_METRICS_OUT");
  fs::remove(dir.path() / "metrics.jsonl");
  std::string event_path;
  {
    MetricsWriter metrics(dir.str(), true, 0.0);
    event_path = metrics.event_path();
    metrics.write(10, {{"train/loss", 2.5}, {"train/lr", 1e-4}});
    StepStats s;
    s.step = 20;
    s.epoch = 0.5;
    s.losses = {{"loss", 1.25}, {"contrastive", 1.0}};
    s.lr = 2e-4;
    s.samples_per_s = 100;
    s.data_wait_pct = 5;
    s.mfu = 0.4;
    metrics.write(s);
    metrics.write(30, {{"train/loss", std::nan("")}});
    // flush_secs 0: already on disk before the writer closes
    std::string written = slurp(metrics.jsonl_path());
    EXPECT_EQ(std::count(written.begin(), written.end(), '\n'), 3);
  }
  std::ifstream in(dir.path() / "metrics.jsonl");
  std::vector<nlohmann::json> records;
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(records.size(), 3u);
  EXPECT_EQ(records[0]["step"], 10);
  EXPECT_GT(records[0]["time"].get<double>(), 1.6e9);
  EXPECT_EQ(records[0]["train/loss"], 2.5);
  EXPECT_EQ(records[1]["step"], 20);
  EXPECT_EQ(records[1]["train/loss"], 1.25);
  EXPECT_EQ(records[1]["train/contrastive"], 1.0);
  EXPECT_EQ(records[1]["train/mfu"], 0.4);
  EXPECT_FALSE(records[1].contains("train/tokens_per_s"));  // optional, not set
  EXPECT_TRUE(records[2]["train/loss"].is_null());          // NaN
  auto events = read_events(event_path);
  ASSERT_EQ(events.size(), 4u);
  for (size_t r = 0; r < records.size(); ++r) {
    const auto& e = events[r + 1];
    EXPECT_EQ(e.step, records[r]["step"].get<int64_t>());
    EXPECT_NEAR(e.wall_time, records[r]["time"].get<double>(), 1e-6);
    for (const auto& [tag, value] : e.values) {
      ASSERT_TRUE(records[r].contains(tag)) << tag;
      if (records[r][tag].is_null()) EXPECT_TRUE(std::isnan(value));
      else EXPECT_EQ(value, static_cast<float>(records[r][tag].get<double>())) << tag;
    }
    EXPECT_EQ(e.values.size() + 2, records[r].size());  // + step, time
  }
}

TEST(Metrics, EmptyDirectoryWriterDropsEverything) {
  MetricsWriter metrics("", true, 0);
  EXPECT_FALSE(metrics.enabled());
  metrics.write(1, {{"a", 1}});
  EXPECT_EQ(metrics.event_path(), "");
}

TEST(Metrics, StepLineHasEveryPart) {
  StepStats s;
  s.step = 120;
  s.total_steps = 5000;
  s.epoch = 0.48;
  s.losses = {{"loss", 2.3456}, {"contrastive", 2.1}, {"caption", 0.2456}};
  s.lr = 4.99e-4;
  s.samples_per_s = 1234.5;
  s.tokens_per_s = 56789;
  s.mfu = 0.412;
  s.data_wait_pct = 3.14;
  s.peak_mem_bytes = static_cast<int64_t>(12.3 * (1ull << 30));
  s.eta_s = 3725;
  EXPECT_EQ(format_step_line(s),
            "step  120/5000 | epoch 0.48 | loss 2.3456 (contrastive 2.1000, caption 0.2456) | lr 4.99e-04 | "
            "1.23k samples/s | 56.79k tok/s | MFU 41.2% | data 3.1% | mem 12.3 GiB | ETA 1h02m");
  StepStats minimal;
  minimal.step = 7;
  minimal.losses = {{"loss", 1}};
  minimal.samples_per_s = 12.5;
  EXPECT_EQ(format_step_line(minimal), "step 7 | epoch 0.00 | loss 1.0000 | lr 0.00e+00 | 12.5 samples/s | data 0.0%");
  auto scalars = step_scalars(s);
  std::map<std::string, double> m(scalars.begin(), scalars.end());
  EXPECT_EQ(m.at("train/caption"), 0.2456);
  EXPECT_EQ(m.at("train/tokens_per_s"), 56789);
  EXPECT_NEAR(m.at("train/peak_mem_gib"), 12.3, 1e-6);
}

TEST(Format, DurationsBytesCounts) {
  EXPECT_EQ(format_duration(12.4), "12s");
  EXPECT_EQ(format_duration(185), "3m05s");
  EXPECT_EQ(format_duration(90061), "1d01h");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_bytes(512), "512 B");
  EXPECT_EQ(format_bytes(1.5 * 1024 * 1024), "1.5 MiB");
  EXPECT_EQ(format_count(999), "999.0");
  EXPECT_EQ(format_count(2.5e6), "2.50M");
}

TEST(Progress, PlainLinesWhenNotATerminal) {
  std::ostringstream out;
  {
    Progress bar("tiling", 4, "slides", {&out, 0, 0.0, true});
    for (int i = 0; i < 4; ++i) bar.advance(1, {{"tiles", 10}});
    EXPECT_EQ(bar.done(), 4);
    EXPECT_EQ(bar.counter("tiles"), 40);
  }  // the destructor prints the summary
  std::vector<std::string> lines;
  std::istringstream in(out.str());
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 5u) << out.str();
  EXPECT_EQ(out.str().find('\r'), std::string::npos);
  EXPECT_HAS(lines[1], "tiling [############------------] 2/4 slides (50.0%)");
  EXPECT_HAS(lines[1], "| tiles 20 |");
  EXPECT_EQ(lines[4].rfind("tiling: 4 slides in ", 0), 0u) << lines[4];
  EXPECT_HAS(lines[4], ", tiles 40");
}

TEST(Progress, IntervalThrottlesAndTerminalRedrawsInPlace) {
  std::ostringstream plain, tty;
  {
    Progress bar("embed", 0, "tiles", {&plain, 0, 3600.0, true});
    for (int i = 0; i < 100; ++i) bar.advance();
    bar.finish();
    bar.finish();
  }
  std::string plain_text = plain.str(), tty_text;
  EXPECT_EQ(std::count(plain_text.begin(), plain_text.end(), '\n'), 1) << plain_text;
  EXPECT_HAS(plain.str(), "embed: 100 tiles in");
  {
    Progress bar("shards", 2, "files", {&tty, 1, 0.0, true});
    bar.advance();
    bar.advance();
  }
  tty_text = tty.str();
  EXPECT_HAS(tty_text, "\r\033[Kshards [");
  EXPECT_EQ(std::count(tty_text.begin(), tty_text.end(), '\n'), 1);
}

TEST(Log, RankRulesAndPrefixes) {
  testing::internal::CaptureStdout();
  testing::internal::CaptureStderr();
  log_set_rank(1, 4);
  log_info("hidden on rank 1");
  log_error("disk full");
  log_set_all_ranks(true);
  log_info("shown with all_ranks");
  log_set_all_ranks(false);
  log_set_rank(0, 4);
  log_info("from rank 0");
  log_set_level("warn");
  log_info("below the level");
  log_warn("careful");
  log_set_level(LogLevel::Info);
  log_set_rank(0, 1);
  std::string out = testing::internal::GetCapturedStdout();
  std::string err = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  EXPECT_EQ(out.find("below the level"), std::string::npos);
  EXPECT_HAS(err, "] [rank 1] ERROR: disk full\n");
  EXPECT_HAS(out, "] [rank 1] shown with all_ranks\n");
  EXPECT_HAS(out, "] from rank 0\n");
  EXPECT_EQ(out.find("[rank 0] from"), std::string::npos);
  EXPECT_HAS(err, "warning: careful");
  EXPECT_EQ(out[0], '[');
  EXPECT_THROW(log_set_level("loud"), Error);
}

TEST(RunDir, RankZeroCreatesTheDirectoryAndOtherRanksDoNot) {
  TempDir dir;
  RunConfig run;
  run.runs_dir = dir.str();
  run.name = "demo";
  RunDir other = open_run_dir(run, "a: 1\n", 1);
  EXPECT_FALSE(other.writer);
  EXPECT_EQ(other.path, (dir.path() / "demo").string());
  EXPECT_FALSE(fs::exists(other.path));

  RunDir rd = open_run_dir(run, "a: 1\n", 0);
  EXPECT_TRUE(rd.writer);
  EXPECT_FALSE(rd.resumed);
  EXPECT_EQ(slurp(rd.config_path()), "a: 1\n");
  EXPECT_TRUE(fs::is_directory(rd.checkpoints_dir()));
  testing::internal::CaptureStdout();
  log_info("into the log file");
  testing::internal::GetCapturedStdout();
  log_set_file("");
  EXPECT_HAS(slurp(rd.log_path()), "] into the log file\n");
  EXPECT_TRUE(open_run_dir(run, "a: 2\n", 1).resumed);

  run.name = "a/b";
  EXPECT_THROW(open_run_dir(run, "", 0), Error);
  run.name = "";
  run.task = "slide";
  std::string name = resolve_run_name(run);
  EXPECT_EQ(name.rfind("slide-", 0), 0u) << name;
}

TEST(RunDir, StartRunWritesConfigLogAndSettingsTable) {
  TempDir dir;
  JobConfig job;
  job.run.runs_dir = dir.str();
  job.run.name = "start";
  job.run.seed = 7;
  testing::internal::CaptureStdout();
  RunDir rd = start_run(job, 0, 1);
  std::string out = testing::internal::GetCapturedStdout();
  log_set_file("");
  EXPECT_EQ(slurp(rd.config_path()), cfg::to_yaml(job));
  std::string log = slurp(rd.log_path());
  EXPECT_HAS(log, "settings:\n+--");
  EXPECT_HAS(log, "| run.seed ");
  EXPECT_EQ(log, out);
  auto back = load_job_config(rd.config_path());
  EXPECT_EQ(back.run.seed, 7);
}
