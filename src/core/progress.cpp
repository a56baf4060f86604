// Progress bar rendering: one line, rewritten with '\r' on a terminal, appended otherwise.
#include "core/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "core/log.h"

namespace pathvlm {

Progress::Progress(std::string what, int64_t total, std::string unit, Options options)
    : what_(std::move(what)), unit_(std::move(unit)), total_(total) {
  out_ = options.out ? options.out : &std::cerr;
  tty_ = options.tty >= 0 ? options.tty == 1 : (out_ == &std::cerr && isatty(STDERR_FILENO));
  interval_s_ = options.interval_s >= 0 ? options.interval_s : tty_ ? 0.2 : 10.0;
  enabled_ = options.enabled && log_rank() == 0;
  start_ = last_draw_ = std::chrono::steady_clock::now();
}

Progress::~Progress() { finish(); }

int64_t Progress::counter(const std::string& name) const {
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& [n, v] : counters_)
    if (n == name) return v;
  return 0;
}

void Progress::advance(int64_t n, const std::vector<std::pair<std::string, int64_t>>& counters) {
  std::lock_guard<std::mutex> lock(mutex_);
  done_ += n;
  for (const auto& [name, value] : counters) {
    bool found = false;
    for (auto& [have, total] : counters_)
      if (have == name) total += value, found = true;
    if (!found) counters_.emplace_back(name, value);
  }
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_draw_).count() >= interval_s_) {
    last_draw_ = now;
    draw(false);
  }
}

void Progress::finish() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (finished_) return;
  finished_ = true;
  draw(true);
}

std::string Progress::render_line(double elapsed) const {
  char buf[256];
  std::string line = what_;
  double rate = elapsed > 0 ? done_ / elapsed : 0;
  if (total_ > 0) {
    const int width = 24;
    int filled = static_cast<int>(width * std::min<double>(1.0, double(done_) / total_));
    line += " [" + std::string(filled, '#') + std::string(width - filled, '-') + "]";
    std::snprintf(buf, sizeof buf, " %lld/%lld %s (%.1f%%)", static_cast<long long>(done_),
                  static_cast<long long>(total_), unit_.c_str(), 100.0 * done_ / total_);
  } else {
    std::snprintf(buf, sizeof buf, " %lld %s", static_cast<long long>(done_), unit_.c_str());
  }
  line += buf;
  line += " | " + format_count(rate) + " " + unit_ + "/s";
  for (const auto& [name, value] : counters_) line += " | " + name + " " + std::to_string(value);
  line += " | elapsed " + format_duration(elapsed);
  if (total_ > 0 && rate > 0 && done_ < total_) line += " | ETA " + format_duration((total_ - done_) / rate);
  return line;
}

void Progress::draw(bool final_line) {
  if (!enabled_) return;
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  if (final_line) {
    char buf[128];
    std::snprintf(buf, sizeof buf, "%s: %lld %s in %s (%s %s/s)", what_.c_str(), static_cast<long long>(done_),
                  unit_.c_str(), format_duration(elapsed).c_str(),
                  format_count(elapsed > 0 ? done_ / elapsed : 0).c_str(), unit_.c_str());
    std::string line = buf;
    for (const auto& [name, value] : counters_) line += ", " + name + " " + std::to_string(value);
    *out_ << (tty_ ? "\r\033[K" : "") << line << "\n" << std::flush;
    return;
  }
  if (tty_) *out_ << "\r\033[K" << render_line(elapsed) << std::flush;
  else *out_ << render_line(elapsed) << "\n" << std::flush;
}

}  // namespace pathvlm
