// Progress bars for long non-training work (tiling, embedding, sharding): rate, ETA and extra counters;
// redrawn in place on a terminal, printed as a plain line every few seconds otherwise (logs, SLURM).
//
//   Progress bar("tiling", slides.size(), "slides");
//   for (...) { ...; bar.advance(1, {{"tiles", n_tiles}}); }
//   bar.finish();   // "tiling: 40/40 slides in 12s (3.3 slides/s), tiles 5012"
#pragma once
#include <chrono>
#include <cstdint>
#include <iosfwd>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm {

class Progress {
 public:
  struct Options {
    std::ostream* out = nullptr;  // default std::cerr
    int tty = -1;                 // -1: detect (std::cerr on a terminal), 0: plain lines, 1: in place
    double interval_s = -1;       // between redraws; -1: 0.2 s on a terminal, 10 s for plain lines
    bool enabled = true;          // also requires log rank 0
  };

  // `total` <= 0: unknown (no bar, no ETA).
  Progress(std::string what, int64_t total, std::string unit, Options options);
  Progress(std::string what, int64_t total, std::string unit) : Progress(what, total, unit, Options()) {}
  ~Progress();

  // Adds `n` done and adds each counter's value to its running total; thread-safe.
  void advance(int64_t n = 1, const std::vector<std::pair<std::string, int64_t>>& counters = {});
  // Prints the summary line (once).
  void finish();

  int64_t done() const { return done_; }
  int64_t counter(const std::string& name) const;

 private:
  std::string render_line(double elapsed) const;
  void draw(bool final_line);

  std::string what_, unit_;
  int64_t total_, done_ = 0;
  std::vector<std::pair<std::string, int64_t>> counters_;
  std::ostream* out_;
  bool tty_, enabled_, finished_ = false;
  double interval_s_;
  std::chrono::steady_clock::time_point start_, last_draw_;
  mutable std::mutex mutex_;
};

}  // namespace pathvlm
