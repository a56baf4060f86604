// Rank-aware logging: rank 0 prints info (all ranks with log.all_ranks), errors print on every rank
// prefixed [rank N]; every line is timestamped and, once a run directory is open, appended to log.txt.
//
//   log_info("loaded ", n, " shards from ", dir);
//   log_warn("shard '", path, "' has no captions; skipped");
//   log_error("rank lost: ", why);
#pragma once
#include <string>

#include "core/error.h"

namespace pathvlm {

enum class LogLevel { Debug, Info, Warn, Error };

// Process-wide settings; call once at start (the defaults suit single-process tools).
void log_set_rank(int rank, int world_size);
void log_set_level(LogLevel level);
void log_set_level(const std::string& level);  // "debug" | "info" | "warn" | "error"
void log_set_all_ranks(bool all_ranks);
// Also append every printed line to `path` (empty: stop). Only rank 0 should pass a path.
void log_set_file(const std::string& path);
int log_rank();
int log_world_size();

// Prints one message if `level` passes; thread-safe. Lines after the first are printed unprefixed.
void log_write(LogLevel level, const std::string& message);

template <class... A>
void log_debug(A&&... a) { log_write(LogLevel::Debug, str(std::forward<A>(a)...)); }
template <class... A>
void log_info(A&&... a) { log_write(LogLevel::Info, str(std::forward<A>(a)...)); }
template <class... A>
void log_warn(A&&... a) { log_write(LogLevel::Warn, str(std::forward<A>(a)...)); }
template <class... A>
void log_error(A&&... a) { log_write(LogLevel::Error, str(std::forward<A>(a)...)); }

// "2024-05-01 13:02:11" local time.
std::string timestamp_now();

}  // namespace pathvlm

namespace pathvlm {

// Human-readable quantities for log lines: "1h02m", "3m05s", "12s"; "12.3 GiB"; "56.79k", "12.5".
std::string format_duration(double seconds);
std::string format_bytes(double bytes);
std::string format_count(double value);

}  // namespace pathvlm
