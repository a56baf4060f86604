// The step line and the metrics sinks (metrics.jsonl, TensorBoard).
#include "core/metrics.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/log.h"
#include "core/tensorboard.h"

namespace pathvlm {

double unix_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

std::string format_step_line(const StepStats& s) {
  char buf[128];
  std::string line;
  if (s.total_steps > 0) {
    int width = static_cast<int>(std::to_string(s.total_steps).size());
    std::snprintf(buf, sizeof buf, "step %*lld/%lld", width, static_cast<long long>(s.step),
                  static_cast<long long>(s.total_steps));
  } else {
    std::snprintf(buf, sizeof buf, "step %lld", static_cast<long long>(s.step));
  }
  line += buf;
  std::snprintf(buf, sizeof buf, " | epoch %.2f", s.epoch);
  line += buf;
  for (size_t i = 0; i < s.losses.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s %.4f", s.losses[i].first.c_str(), s.losses[i].second);
    line += i == 0 ? " | " : i == 1 ? " (" : ", ";
    line += buf;
  }
  if (s.losses.size() > 1) line += ")";
  std::snprintf(buf, sizeof buf, " | lr %.2e", s.lr);
  line += buf;
  if (s.grad_norm) {
    std::snprintf(buf, sizeof buf, " | gnorm %.3f", *s.grad_norm);
    line += buf;
  }
  line += " | " + format_count(s.samples_per_s) + " samples/s";
  if (s.tokens_per_s) line += " | " + format_count(*s.tokens_per_s) + " tok/s";
  if (s.mfu) {
    std::snprintf(buf, sizeof buf, " | MFU %.1f%%", 100.0 * *s.mfu);
    line += buf;
  }
  std::snprintf(buf, sizeof buf, " | data %.1f%%", s.data_wait_pct);
  line += buf;
  if (s.peak_mem_bytes > 0) line += " | mem " + format_bytes(static_cast<double>(s.peak_mem_bytes));
  if (s.eta_s >= 0) line += " | ETA " + format_duration(s.eta_s);
  return line;
}

Scalars step_scalars(const StepStats& s) {
  Scalars out;
  for (const auto& [name, value] : s.losses) out.emplace_back("train/" + name, value);
  out.emplace_back("train/lr", s.lr);
  out.emplace_back("train/epoch", s.epoch);
  out.emplace_back("train/samples_per_s", s.samples_per_s);
  if (s.tokens_per_s) out.emplace_back("train/tokens_per_s", *s.tokens_per_s);
  if (s.mfu) out.emplace_back("train/mfu", *s.mfu);
  if (s.grad_norm) out.emplace_back("train/grad_norm", *s.grad_norm);
  out.emplace_back("train/data_wait_pct", s.data_wait_pct);
  if (s.peak_mem_bytes > 0) out.emplace_back("train/peak_mem_gib", s.peak_mem_bytes / double(1ull << 30));
  return out;
}

MetricsWriter::MetricsWriter(const std::string& dir, bool tensorboard, double flush_secs)
    : flush_secs_(flush_secs), last_flush_(unix_time_now()) {
  if (dir.empty()) return;
  jsonl_path_ = dir + "/metrics.jsonl";
  jsonl_.open(jsonl_path_, std::ios::app);
  PATHVLM_CHECK(jsonl_.good(), "metrics file '", jsonl_path_, "' cannot be opened for appending");
  if (tensorboard) events_ = std::make_unique<EventFileWriter>(dir);
}

MetricsWriter::~MetricsWriter() {
  if (!enabled()) return;
  try {
    flush();
  } catch (const Error& e) {
    log_error(e.what());
  }
}

void MetricsWriter::write(int64_t step, const Scalars& scalars) {
  if (!enabled()) return;
  double now = unix_time_now();
  nlohmann::ordered_json record;
  record["step"] = step;
  record["time"] = now;
  for (const auto& [tag, value] : scalars) {
    if (std::isfinite(value)) record[tag] = value;
    else record[tag] = nullptr;
  }
  jsonl_ << record.dump() << "\n";
  PATHVLM_CHECK(jsonl_.good(), "metrics file '", jsonl_path_, "': write failed");
  if (events_) events_->add_scalars(step, now, scalars);
  if (now - last_flush_ >= flush_secs_) flush();
}

void MetricsWriter::flush() {
  if (!enabled()) return;
  jsonl_.flush();
  PATHVLM_CHECK(jsonl_.good(), "metrics file '", jsonl_path_, "': flush failed");
  if (events_) events_->flush();
  last_flush_ = unix_time_now();
}

std::string MetricsWriter::event_path() const { return events_ ? events_->path() : ""; }

}  // namespace pathvlm
