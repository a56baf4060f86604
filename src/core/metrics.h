// Training metrics: the one-line live log (StepStats -> format_step_line) and MetricsWriter, which
// appends every logged scalar to <run>/metrics.jsonl and to the run's TensorBoard event file.
//
//   MetricsWriter metrics(run.writer ? run.path : "", job.log.tensorboard, job.log.flush_secs);
//   StepStats s; s.step = 120; s.total_steps = 5000; s.losses = {{"loss", 2.31}}; ...
//   log_info(format_step_line(s));
//   metrics.write(s);                                      // tags train/loss, train/lr, ...
//   metrics.write(step, {{"eval/retrieval_r1", 0.42}});    // any other scalars
#pragma once
#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm {

class EventFileWriter;

using Scalars = std::vector<std::pair<std::string, double>>;

// What the trainer measured over the last `log.every` steps.
struct StepStats {
  int64_t step = 0;         // optimizer steps done
  int64_t total_steps = 0;  // 0: unknown
  double epoch = 0;         // fractional epoch
  Scalars losses;           // the total first ("loss"), then its parts ("contrastive", "caption", ...)
  double lr = 0;
  double samples_per_s = 0;             // global (all ranks)
  std::optional<double> tokens_per_s;   // where tokens mean something (instruct)
  std::optional<double> mfu;            // model FLOPs utilisation in [0, 1], on GPU
  std::optional<double> grad_norm;      // before clipping
  double data_wait_pct = 0;             // share of step time spent waiting for batches
  int64_t peak_mem_bytes = 0;           // 0: unknown
  double eta_s = -1;                    // < 0: unknown
};

// "step  120/5000 | epoch 0.48 | loss 2.3456 (contrastive 2.1000) | lr 4.99e-04 | 1234.5 samples/s | ..."
std::string format_step_line(const StepStats& s);
// The scalars a StepStats logs: train/<loss name>, train/lr, train/samples_per_s, ... (optional ones if set).
Scalars step_scalars(const StepStats& s);

class MetricsWriter {
 public:
  // Appends to `dir`/metrics.jsonl and (if `tensorboard`) writes an event file in `dir`, flushing at
  // most every `flush_secs`. An empty `dir` gives a writer that drops everything (non-zero ranks).
  explicit MetricsWriter(const std::string& dir, bool tensorboard = true, double flush_secs = 30);
  ~MetricsWriter();

  // One JSON object per call: {"step": N, "time": unix seconds, "<tag>": value, ...}; NaN/inf as null.
  void write(int64_t step, const Scalars& scalars);
  void write(const StepStats& s) { write(s.step, step_scalars(s)); }
  void flush();

  bool enabled() const { return jsonl_.is_open(); }
  std::string jsonl_path() const { return jsonl_path_; }
  std::string event_path() const;

 private:
  std::string jsonl_path_;
  std::ofstream jsonl_;
  std::unique_ptr<EventFileWriter> events_;
  double flush_secs_;
  double last_flush_ = 0;
};

// Seconds since the Unix epoch, with sub-second precision.
double unix_time_now();

}  // namespace pathvlm
