// The logger: one mutex, stderr for warnings and errors, stdout for the rest, and the run's log.txt.
#include "core/log.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iostream>
#include <mutex>

namespace pathvlm {

namespace {

struct LoggerState {
  std::mutex mutex;
  int rank = 0, world_size = 1;
  LogLevel level = LogLevel::Info;
  bool all_ranks = false;
  std::ofstream file;
};

LoggerState& state() {
  static LoggerState s;
  return s;
}

const char* level_tag(LogLevel level) {
  switch (level) {
    case LogLevel::Debug: return "debug: ";
    case LogLevel::Warn: return "warning: ";
    case LogLevel::Error: return "ERROR: ";
    default: return "";
  }
}

}  // namespace

void log_set_rank(int rank, int world_size) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().rank = rank, state().world_size = world_size;
}

void log_set_level(LogLevel level) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().level = level;
}

void log_set_level(const std::string& level) {
  if (level == "debug") return log_set_level(LogLevel::Debug);
  if (level == "info") return log_set_level(LogLevel::Info);
  if (level == "warn") return log_set_level(LogLevel::Warn);
  if (level == "error") return log_set_level(LogLevel::Error);
  throw Error(str("log level '", level, "' is not one of: debug, info, warn, error"));
}

void log_set_all_ranks(bool all_ranks) {
  std::lock_guard<std::mutex> lock(state().mutex);
  state().all_ranks = all_ranks;
}

void log_set_file(const std::string& path) {
  std::lock_guard<std::mutex> lock(state().mutex);
  auto& s = state();
  if (s.file.is_open()) s.file.close();
  if (path.empty()) return;
  s.file.open(path, std::ios::app);
  PATHVLM_CHECK(s.file.good(), "log file '", path, "' cannot be opened for appending");
}

int log_rank() { return state().rank; }
int log_world_size() { return state().world_size; }

std::string timestamp_now() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &local);
  return buf;
}

void log_write(LogLevel level, const std::string& message) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (level < s.level) return;
  // Errors come from every rank (a failure may be local to one); the rest from rank 0 unless asked.
  if (level != LogLevel::Error && s.rank != 0 && !s.all_ranks) return;
  std::string prefix = "[" + timestamp_now() + "] ";
  if (s.world_size > 1 && (s.rank != 0 || level == LogLevel::Error || s.all_ranks))
    prefix += "[rank " + std::to_string(s.rank) + "] ";
  prefix += level_tag(level);
  // Continuation lines (a table, a traceback) go out as they are, under the one prefixed line.
  std::string text = prefix + message;
  if (text.back() != '\n') text += '\n';
  std::ostream& out = level >= LogLevel::Warn ? std::cerr : std::cout;
  out << text << std::flush;
  if (s.file.is_open()) s.file << text << std::flush;
}

}  // namespace pathvlm

namespace pathvlm {

std::string format_duration(double seconds) {
  if (!(seconds >= 0) || seconds > 1e9) return "?";
  long long s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 86400) std::snprintf(buf, sizeof buf, "%lldd%02lldh", s / 86400, s % 86400 / 3600);
  else if (s >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s % 3600 / 60);
  else if (s >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

std::string format_bytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) bytes /= 1024, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", bytes, units[u]);
  return buf;
}

std::string format_count(double value) {
  const char* suffix[] = {"", "k", "M", "G", "T"};
  int u = 0;
  while (std::abs(value) >= 1000 && u < 4) value /= 1000, ++u;
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.1f" : "%.2f%s", value, suffix[u]);
  return buf;
}

}  // namespace pathvlm
