#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

#include "core/compat.h"
#include "core/device_stats.h"
#include "core/error.h"
#include "core/host_reads.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/run_dir.h"
#include "dist/comm.h"
#include "dist/gather.h"
#include "dist/process_group.h"
#include "dist/reducer.h"
#include "io/safetensors.h"
#include "models/lora/apply.h"
#include "models/lora/peft.h"
#include "train/adamw.h"
#include "train/checkpoint.h"
#include "train/init_from.h"
#include "train/memory.h"
#include "train/nonfinite_steps.h"
#include "train/parameters.h"
#include "train/preemption.h"
#include "train/registry.h"
#include "train/run_results.h"
#include "train/schedule.h"

namespace pathvlm::train {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// ---- small collectives on strings (run name, checkpoint path, per-rank state) ------------------------

std::string broadcast_string(dist::Comm& comm, torch::Device device, std::string s) {
  auto length = torch::tensor({static_cast<int64_t>(s.size())}, torch::kLong).to(device);
  comm.broadcast(length, 0);
  const int64_t n = length.cpu().item<int64_t>();
  auto bytes = torch::zeros({std::max<int64_t>(n, 1)}, torch::kUInt8);
  if (comm.rank() == 0) std::memcpy(bytes.data_ptr(), s.data(), s.size());
  bytes = bytes.to(device);
  comm.broadcast(bytes, 0);
  bytes = bytes.cpu();
  return std::string(static_cast<const char*>(bytes.data_ptr()), static_cast<size_t>(n));
}

// ---- RNG states -----------------------------------------------------------------------------------

std::string tensor_bytes(const torch::Tensor& t) {
  auto c = t.cpu().contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.nbytes());
}
torch::Tensor bytes_tensor(const std::string& s) {
  auto t = torch::empty({static_cast<int64_t>(s.size())}, torch::kUInt8);
  std::memcpy(t.data_ptr(), s.data(), s.size());
  return t;
}

nlohmann::json capture_rng(torch::Device device) {
  nlohmann::json j;
  j["cpu"] = ckpt::base64_encode(tensor_bytes(at::detail::getDefaultCPUGenerator().get_state()));
  if (device.is_cuda())
    j["cuda"] = ckpt::base64_encode(tensor_bytes(at::globalContext().defaultGenerator(device).get_state()));
  return j;
}

void restore_rng(const nlohmann::json& j, torch::Device device) {
  at::Generator cpu = at::detail::getDefaultCPUGenerator();
  cpu.set_state(bytes_tensor(ckpt::base64_decode(j.at("cpu").get<std::string>())));
  if (device.is_cuda() && j.contains("cuda")) {
    at::Generator gen = at::globalContext().defaultGenerator(device);
    gen.set_state(bytes_tensor(ckpt::base64_decode(j.at("cuda").get<std::string>())));
  }
}

}  // namespace

struct Trainer::State {
  JobConfig job;
  std::unique_ptr<Task> task;
  bool continue_finished = false;
  torch::Device device{torch::kCPU};
  std::unique_ptr<dist::Comm> comm;
  int rank = 0, world = 1;
  RunDir run;
  std::unique_ptr<MetricsWriter> metrics;
  std::unique_ptr<dist::Reducer> reducer;
  std::unique_ptr<AdamW> optimizer;
  std::unique_ptr<Schedule> schedule;
  bool bf16_autocast = false;  // train.precision bf16-mixed or bf16
  bool bf16_params = false;    // train.precision bf16: the model's floating tensors are bf16, AdamW keeps fp32 masters

  int64_t step = 0;              // optimizer steps done
  int64_t samples = 0;           // samples trained on, all ranks, all pieces of the run
  std::vector<RunPiece> earlier_pieces;  // the processes that trained this run before this one (from the checkpoint)
  RunPiece piece;                        // this process's: from_step is set when the loop starts
  Clock::time_point piece_start = Clock::now();
  std::string last_checkpoint;   // the newest checkpoint this run saved or resumed from
  std::unique_ptr<NonFiniteSteps> nonfinite;  // the skip decisions, on the device
  int64_t skipped_steps = 0;     // non-finite steps skipped, in total (as of the last sync point)
  int64_t nonfinite_in_row = 0;  // the current run of them (as of the last sync point)
  int64_t last_saved_step = -1;
  Clock::time_point last_save_time = Clock::now();
  std::string resume_dir;  // the checkpoint this run continues from (empty: a fresh start)
  // Where tensors loaded by train.init_from (or recorded as external by the resumed checkpoint) came from:
  // frozen ones among them are left out of model.safetensors and recorded instead.
  ckpt::External init_sources;
  int64_t trainable_params = 0;  // for MFU

  std::string setup_processes();
  std::string finished_run_refusal(const std::string& name);
  void open_run(const std::string& name);
  void find_resume_checkpoint();
  void build_model();
  void add_lora_adapters();
  void select_parameters(std::vector<dist::NamedParam>& params);
  void resume();
  void save_checkpoint();
  void export_model();
  bool agree(bool preempt_requested, bool time_due, bool* time_due_out);
  void check_nonfinite();
  void evaluate_and_log();
  std::vector<RunPiece> pieces_so_far();
  void write_results();
};

Trainer::Trainer(JobConfig job, std::unique_ptr<Task> task, bool continue_finished) : s_(std::make_unique<State>()) {
  s_->job = std::move(job);
  s_->task = std::move(task);
  s_->continue_finished = continue_finished;
}
Trainer::~Trainer() = default;

int Trainer::run() {
  State& s = *s_;
  const auto& tc = s.job.train;
  // Before: processes and the run's name; a finished run is not continued by accident; the run directory, model,
  // optimizer and the checkpoint to continue from.
  const std::string name = s.setup_processes();
  if (const std::string why = s.finished_run_refusal(name); !why.empty()) {
    if (s.rank == 0) log_error(why);
    return kExitError;
  }
  s.open_run(name);
  s.find_resume_checkpoint();  // before build_model: a resumed run skips train.init_from
  s.build_model();
  s.resume();
  install_preemption_handlers();
  // PATHVLM_TRACE_HOST_READS=1: every host read inside a step is printed with its stack, and counted at the end.
  std::optional<HostReadCounter> host_reads;
  if (std::getenv("PATHVLM_TRACE_HOST_READS")) host_reads.emplace();

  const int64_t total = tc.steps;
  log_info("training ", total - s.step, " steps (", s.step, " done) of ", tc.grad_accum, " x ", tc.micro_batch_size,
           " samples on each of ", s.world, s.world == 1 ? " rank" : " ranks", "; global batch ",
           tc.grad_accum * tc.micro_batch_size * s.world);

  // Interval statistics for the log line.
  auto interval_start = Clock::now();
  double interval_data_wait = 0;
  int64_t interval_samples = 0, interval_tokens = 0;
  const auto train_start = Clock::now();
  const int64_t start_step = s.step;
  s.piece = {start_step, start_step, 0.0};
  s.piece_start = train_start;

  while (s.step < total) {
    // 1. Step boundary: every rank learns whether any rank was signalled, and rank 0's clock decides timed saves
    //    (on the host communicator: the device is not waited for).
    const bool time_due = s.job.checkpoint.every_minutes > 0 &&
                          seconds_since(s.last_save_time) >= 60.0 * s.job.checkpoint.every_minutes;
    bool save_for_time = false;
    if (s.agree(preemption_signal() != 0, time_due, &save_for_time)) {
      log_warn("preemption signal received: saving a checkpoint at step ", s.step, " and exiting with status ",
               kExitRequeue, " (requeue)");
      if (s.last_saved_step != s.step) s.save_checkpoint();
      s.metrics->flush();
      return kExitRequeue;
    }
    if (save_for_time && s.last_saved_step != s.step) s.save_checkpoint();

    // Steps 2-5 never read a value on the host (src/core/host_reads.h): the GPU runs ahead of the loop, and the
    // numbers are read at step 6's sync points.
    const double lr = s.schedule->lr(s.step);
    torch::Tensor reduced, grad_norm;
    std::vector<std::string> metric_names;
    {
      StepScope step_scope;
      // 2. This step's micro-batches.
      auto t_data = Clock::now();
      std::vector<Batch> micro;
      for (int i = 0; i < tc.grad_accum; ++i) micro.push_back(s.task->next_batch());
      interval_data_wait += seconds_since(t_data);
      for (const auto& b : micro) interval_samples += b.samples, interval_tokens += b.tokens;
      for (const auto& b : micro) s.samples += b.samples * s.world;

      // 3. Forward and backward; gradients are rank-averaged (or reduce-scattered) when this returns.
      s.task->model().train();
      StepContext ctx{*s.reducer, *s.comm, static_cast<int>(s.step + 1)};
      StepOutput out;
      {
        compat::AutocastGuard autocast(s.device.type(), s.bf16_autocast, torch::kBFloat16);
        out = s.task->forward_backward(micro, ctx);
      }

      // 4. Rank-averaged loss and metrics (one small allreduce), global gradient norm and clipping.
      std::vector<torch::Tensor> values{out.loss.to(torch::kDouble).reshape({1})};
      for (const auto& [name, v] : out.metrics) {
        values.push_back(v.to(torch::kDouble).reshape({1}));
        metric_names.push_back(name);
      }
      reduced = torch::cat(values).to(s.device);
      s.comm->allreduce(reduced, dist::ReduceOp::Avg);
      grad_norm = clip_grad_norm(s.optimizer->grads(), s.job.optim.clip_grad_norm,
                                 s.reducer->sharded() ? s.comm.get() : nullptr);

      // 5. Update, unless the loss or the gradient is not finite: decided on the device, the same on every rank.
      s.optimizer->step(lr, s.nonfinite->record(reduced[0], grad_norm, s.step + 1));
      if (s.reducer->sharded()) s.reducer->gather_params();
      s.reducer->zero_grad();
    }
    ++s.step;

    // 6. Sync points: the log line, evaluation, checkpoints and the end read the step's numbers on the host
    //    (save_checkpoint reads the non-finite counts itself).
    const bool log_now = s.step % s.job.log.every == 0 || s.step == total || s.step == start_step + 1;
    const bool eval_now = s.job.eval.every > 0 && s.step % s.job.eval.every == 0 && s.step != total;
    const bool save_now = s.job.checkpoint.every_steps > 0 && s.step % s.job.checkpoint.every_steps == 0 &&
                          s.step != total;
    if (log_now || eval_now || s.step == total) s.check_nonfinite();
    if (log_now) {
      const auto numbers = torch::cat({reduced, grad_norm.to(torch::kDouble).reshape({1})}).cpu();
      const double* v = numbers.data_ptr<double>();
      const double elapsed = seconds_since(interval_start);
      StepStats st;
      st.step = s.step;
      st.total_steps = total;
      st.epoch = s.task->epoch();
      st.losses.emplace_back("loss", v[0]);
      for (size_t k = 0; k < metric_names.size(); ++k) st.losses.emplace_back(metric_names[k], v[k + 1]);
      st.lr = lr;
      st.samples_per_s = elapsed > 0 ? interval_samples * s.world / elapsed : 0;
      if (interval_tokens > 0) st.tokens_per_s = elapsed > 0 ? interval_tokens * s.world / elapsed : 0;
      // MFU = model FLOPs / (time x peak) per rank: the task's FLOPs per sample where it knows them, else 2 per
      // trained parameter and token forward, 4 backward (frozen parts and attention uncounted). The peak is
      // log.peak_tflops, else the device's bf16 figure when training in bf16.
      const double peak = s.job.log.peak_tflops > 0 ? s.job.log.peak_tflops
                          : s.bf16_autocast          ? device_bf16_peak_tflops(s.device)
                                                     : 0.0;
      const double flops_per_sample = s.task->train_flops_per_sample();
      if (peak > 0 && flops_per_sample > 0)
        st.mfu = flops_per_sample * st.samples_per_s / (s.world * peak * 1e12);
      else if (peak > 0 && st.tokens_per_s)
        st.mfu = 6.0 * static_cast<double>(s.trainable_params) * *st.tokens_per_s / (s.world * peak * 1e12);
      st.peak_mem_bytes = peak_memory_bytes(s.device);
      reset_peak_memory(s.device);
      st.grad_norm = v[metric_names.size() + 1];
      st.data_wait_pct = elapsed > 0 ? 100.0 * interval_data_wait / elapsed : 0;
      const double per_step = seconds_since(train_start) / static_cast<double>(s.step - start_step);
      st.eta_s = per_step * static_cast<double>(total - s.step);
      log_info(format_step_line(st));
      s.metrics->write(st);
      if (s.skipped_steps > 0) s.metrics->write(s.step, {{"train/skipped_steps", static_cast<double>(s.skipped_steps)}});
      interval_start = Clock::now();
      interval_data_wait = 0;
      interval_samples = interval_tokens = 0;
    }

    // 7. Evaluation and checkpoints.
    if (eval_now) s.evaluate_and_log();
    if (save_now) s.save_checkpoint();

    // Fault injection (tests): a rank signals itself right after this step.
    const auto& fault = tc.fault;
    if (fault.step > 0 && fault.step == s.step && fault.rank == s.rank) {
      log_warn("fault injection: rank ", s.rank, " sends itself SIG", fault.signal, " after step ", s.step);
      s.metrics->flush();
      std::raise(fault.signal == "KILL" ? SIGKILL : fault.signal == "TERM" ? SIGTERM : SIGUSR1);
    }
  }

  // End: final evaluation, checkpoint and export, then results.json and the plots (docs/formats.md).
  if (s.job.eval.every > 0) s.evaluate_and_log();
  if (s.job.checkpoint.save_final && s.last_saved_step != s.step) s.save_checkpoint();
  if (s.job.checkpoint.export_final) {
    if (s.rank == 0) s.export_model();
    s.comm->barrier();
  }
  s.metrics->flush();
  const auto pieces = s.pieces_so_far();
  log_info("done: ", s.step, " steps", s.skipped_steps ? str(" (", s.skipped_steps, " skipped as non-finite)") : "",
           " in ", format_duration(pieces.back().seconds),
           pieces.size() > 1 ? str("; ", format_duration(total_seconds(pieces)), " of training over ", pieces.size(),
                                   " resumed pieces")
                             : "");
  if (s.rank == 0) s.write_results();
  if (host_reads) log_info("host reads inside steps: ", host_reads->in_steps(), " in ", host_reads->steps(), " steps");
  s.comm->barrier();
  return 0;
}

// ---- setup -----------------------------------------------------------------------------------------

// Returns the run's name, rank 0's on every rank.
std::string Trainer::State::setup_processes() {
  const auto& env = dist::init_processes();
  const auto& tc = job.train;
  if (tc.device == "cpu") {
    device = torch::kCPU;
  } else {
    device = dist::local_device(env);
    PATHVLM_CHECK(tc.device != "cuda" || device.is_cuda(), "train.device is cuda but CUDA is not available");
  }
  comm = dist::make_comm(job.dist, device);
  rank = comm->rank();
  world = comm->world_size();

  // Every rank must use rank 0's run name (a timestamp otherwise differs between ranks).
  return broadcast_string(*comm, device, rank == 0 ? resolve_run_name(job.run) : "");
}

// A run that finished (its results.json, written last, exists) is not continued by accident: rerunning a config
// with a fixed run.name would append a second run's steps, metrics and export to the first. `pathvlm train
// --force` (continue_finished) or an explicit checkpoint.resume asks for it. Returns why not (the same on every
// rank), or "".
std::string Trainer::State::finished_run_refusal(const std::string& name) {
  if (continue_finished || job.checkpoint.resume != "auto") return "";
  std::string why;
  if (rank == 0) {
    const std::string dir = (std::filesystem::path(job.run.runs_dir) / name).string();
    const std::string results = dir + "/results.json";
    if (std::filesystem::exists(results)) {
      const auto done = nlohmann::json::parse(std::ifstream(results), nullptr, /*allow_exceptions=*/false);
      const std::string steps = done.is_object() && done.contains("steps") ? done["steps"].dump() + " steps, " : "";
      why = str("run '", name, "' finished already (", steps, results, "); it is not continued. Start a new run ",
                "(another run.name, or none: a new name each time), continue this one with `pathvlm train --force` ",
                "(e.g. after raising train.steps), or start from one of its checkpoints with checkpoint.resume=", dir,
                "/checkpoints/step_XXXXXXXX");
    }
  }
  return broadcast_string(*comm, device, why);
}

// The run directory, logging, the settings table (the engine's sections and this task's) and the metrics sinks.
void Trainer::State::open_run(const std::string& name) {
  const auto& tc = job.train;
  std::vector<std::string> other_tasks;
  for (const auto& task_name : task_names())
    if (task_name != job.run.task) other_tasks.push_back(task_name);
  run = start_run(job, rank, world, name, other_tasks);
  metrics = std::make_unique<MetricsWriter>(run.writer ? run.path : "", job.log.tensorboard, job.log.flush_secs);

  const std::string precision = tc.precision != "auto" ? tc.precision : device.is_cuda() ? "bf16-mixed" : "fp32";
  // bf16 weights still need autocast: inputs (pixels, fp32 masks) arrive in fp32 and must meet them in bf16.
  bf16_autocast = precision == "bf16-mixed" || precision == "bf16";
  bf16_params = precision == "bf16";
  if (device.is_cuda()) compat::allow_tf32(tc.tf32);
  log_info("device ", device.str(), ", ",
           bf16_params ? "bf16 weights with fp32 master weights, bf16 autocast"
                       : bf16_autocast ? "fp32 weights, bf16 autocast" : "fp32",
           device.is_cuda() && tc.tf32 ? ", TF32" : "", ", backend ", comm->backend());
}

void Trainer::State::build_model() {
  const auto& tc = job.train;
  // Identical initialisation on every rank (rank 0's parameters are broadcast anyway) and world size.
  torch::manual_seed(static_cast<uint64_t>(job.run.seed));
  if (device.is_cuda()) torch::cuda::manual_seed_all(static_cast<uint64_t>(job.run.seed));
  TaskContext ctx{job, device, *comm, rank, world, tc.micro_batch_size, tc.grad_accum,
                  static_cast<uint64_t>(job.run.seed), run.path};
  task->build(ctx);
  if (tc.lora.enabled()) add_lora_adapters();
  if (bf16_params) {
    // Before the Reducer packs the parameters into buckets of their dtype. Integer buffers stay as they are.
    torch::NoGradGuard no_grad;
    for (auto& t : task->model().parameters()) if (t.is_floating_point()) t.set_data(t.to(torch::kBFloat16));
    for (auto& t : task->model().buffers()) if (t.is_floating_point()) t.set_data(t.to(torch::kBFloat16));
  }
  // Dropout and augmentation streams differ between ranks.
  torch::manual_seed(static_cast<uint64_t>(job.run.seed) * 1000003ull + 1 + static_cast<uint64_t>(rank));
  if (device.is_cuda()) torch::cuda::manual_seed(static_cast<uint64_t>(job.run.seed) * 1000003ull + 1 + rank);

  // Initial weights from earlier runs or releases; a resumed run restores its own checkpoint instead.
  // The task's own sources (a pretrained model it names) come first, so train.init_from can overwrite them.
  auto sources = task->init_sources();
  for (auto& s : keyed_init_from(tc.init_from)) sources.push_back(std::move(s));
  if (!sources.empty()) {
    if (resume_dir.empty()) {
      // The sources hold the base model; LoRA adapters start from their own initialisation.
      auto targets = task->state_tensors();
      targets.erase(std::remove_if(targets.begin(), targets.end(),
                                   [](const auto& t) { return models::is_lora_parameter(t.first); }),
                    targets.end());
      init_sources = load_init_from(sources, targets);
    } else {
      log_info("train.init_from skipped: resuming from ", resume_dir);
    }
  }

  std::vector<dist::NamedParam> params;
  select_parameters(params);

  reducer = std::make_unique<dist::Reducer>(std::move(params), *comm, job.dist);
  const auto& o = job.optim;
  optimizer = std::make_unique<AdamW>(AdamW::Options{o.beta1, o.beta2, o.eps, o.weight_decay});
  for (const auto& shard : reducer->local_shards())
    optimizer->add(str(shard.flat_offset), shard.param, shard.grad, shard.decay);
  schedule = std::make_unique<Schedule>(job.optim, tc.steps);
  nonfinite = std::make_unique<NonFiniteSteps>(device);
  log_info("optimizer: AdamW (betas ", o.beta1, ", ", o.beta2, ", eps ", o.eps, ", weight decay ", o.weight_decay,
           "), ", schedule->describe(), ", clip ", o.clip_grad_norm > 0 ? str(o.clip_grad_norm) : "off",
           reducer->sharded() ? ", state sharded over ranks" : "");
  const auto table = memory_per_rank(reducer->memory(), task->model().parameters(), bf16_params);
  log_info("memory on this rank (without activations):");
  for (const auto& [category, bytes] : table.rows())
    log_info(str("  ", category, ":").append(std::string(21 - category.size(), ' ')),
             format_bytes(static_cast<double>(bytes)));
}

// train.lora: adapters on the chosen Linear layers, drawn right after the model from the same seed (identical
// on every rank), before anything reads the parameter set (bf16 cast, init_from, freezing, the Reducer).
void Trainer::State::add_lora_adapters() {
  const auto& lora = job.train.lora;
  const auto options = models::LoraOptions(lora.r, lora.alpha).dropout(lora.dropout).use_rslora(lora.use_rslora);
  const auto adapted = models::apply_lora(task->model(), lora.targets, options);
  log_info("train.lora: adapters of rank ", lora.r, " (scaling ", options.scaling(), ", dropout ", lora.dropout,
           ") on ", adapted.size(), " Linear layers, e.g. ", adapted.front());
}

// train.freeze / train.trainable (src/train/parameters.h): frozen parameters get requires_grad false; the
// trained ones, with their weight-decay choice, go to `params`. Printed per pattern and as a summary.
// With train.lora, the base is frozen and the adapters train: as if train.freeze held '*' and train.trainable
// the adapters' tensors (train.trainable may name more).
void Trainer::State::select_parameters(std::vector<dist::NamedParam>& params) {
  const auto& tc = job.train;
  auto named = task->model().named_parameters(/*recurse=*/true);
  std::vector<ParameterInfo> infos;
  for (const auto& p : named) infos.push_back({p.key(), p.value().numel(), p.value().requires_grad()});
  auto freeze = tc.freeze, trainable = tc.trainable;
  if (tc.lora.enabled()) {
    freeze.push_back("*");
    for (const auto& pattern : models::lora_parameter_patterns()) trainable.push_back(pattern);
  }
  const auto selection = select_trainable(infos, freeze, trainable);
  for (size_t i = 0; i < selection.uses.size(); ++i) {
    const auto& use = selection.uses[i];
    // The patterns train.lora added are the last freeze pattern and the last trainable ones.
    const bool from_lora = tc.lora.enabled() && (i == freeze.size() - 1 || i >= freeze.size() + tc.trainable.size());
    log_info(from_lora ? "train.lora" : use.key, " '", use.pattern, "': ", use.tensors,
             use.tensors == 1 ? " tensor, " : " tensors, ", format_count(static_cast<double>(use.elements)),
             from_lora && use.key == "train.freeze" ? " parameters frozen" : " parameters");
  }
  int64_t n_trainable = 0, n_frozen = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    auto& p = named[infos[i].name];
    if (!selection.trained[i]) {
      p.requires_grad_(false);
      n_frozen += p.numel();
      continue;
    }
    n_trainable += p.numel();
    params.push_back({infos[i].name, p, wants_weight_decay(infos[i].name, p, job.optim.no_decay)});
  }
  PATHVLM_CHECK(!params.empty(), "every parameter is frozen: nothing to train (train.freeze, train.trainable)");
  trainable_params = n_trainable;
  log_info("trained: ", trained_summary(infos, selection.trained));
  int64_t n_decay = 0;
  for (const auto& p : params) n_decay += p.decay ? p.param.numel() : 0;
  log_info("parameters: ", format_count(static_cast<double>(n_trainable + n_frozen)), " total, ",
           format_count(static_cast<double>(n_trainable)), " trainable (", format_count(static_cast<double>(n_decay)),
           " with weight decay), ", format_count(static_cast<double>(n_frozen)), " frozen");
}

// ---- resume ----------------------------------------------------------------------------------------

void Trainer::State::find_resume_checkpoint() {
  const std::string& mode = job.checkpoint.resume;
  if (mode == "none") return;
  std::string dir;
  if (rank == 0) {
    if (mode == "auto") {
      auto found = ckpt::find_latest_complete(run.checkpoints_dir(), [](const std::string& w) { log_warn(w); });
      if (found) dir = found->dir;
    } else {
      ckpt::verify(mode);  // an explicit path must be good: no silent fallback
      dir = mode;
    }
  }
  resume_dir = broadcast_string(*comm, device, dir);
}

void Trainer::State::resume() {
  if (job.checkpoint.resume == "none") return;
  const std::string& dir = resume_dir;
  if (dir.empty()) {
    log_info("no checkpoint to resume from in ", run.checkpoints_dir(), ": starting fresh");
    return;
  }
  nlohmann::json state = nlohmann::json::parse(std::ifstream(dir + "/trainer_state.json"));
  const int saved_world = state.at("world_size").get<int>();
  PATHVLM_CHECK(saved_world == world, "checkpoint '", dir, "' was written by ", saved_world,
                " ranks; this job has ", world, " (resume on the same world size, or start fresh with "
                "checkpoint.resume=none)");
  const bool saved_sharded = state.at("optimizer").at("sharded").get<bool>();
  PATHVLM_CHECK(saved_sharded == reducer->sharded(), "checkpoint '", dir, "' has ",
                saved_sharded ? "a sharded" : "an unsharded", " optimizer state; dist.shard_optimizer is ",
                reducer->sharded() ? "true" : "false");

  torch::NoGradGuard no_grad;
  // A partial checkpoint's frozen tensors come from their sources; rank 0 checked their checksums when it chose
  // this checkpoint (find_resume_checkpoint: verify / find_latest_complete), so no rank reads them twice.
  auto model_tensors = ckpt::ModelTensors::open(dir, /*check_sources=*/false);
  for (auto& [name, tensor] : task->state_tensors()) {
    PATHVLM_CHECK(model_tensors.contains(name), "checkpoint '", dir, "/model.safetensors' lacks tensor '", name, "'");
    auto saved = model_tensors.get(name);
    PATHVLM_CHECK(saved.sizes() == tensor.sizes(), "checkpoint '", dir, "': tensor '", name, "' (in '",
                  model_tensors.source_of(name).file, "') has shape ", saved.sizes(), ", the model has ",
                  tensor.sizes());
    tensor.copy_(saved);
  }
  // This run's later checkpoints leave out the same tensors (init_from was skipped, so they are known only here).
  init_sources = state.contains("external") ? ckpt::External::from_json(state["external"], dir) : ckpt::External{};
  const std::string opt_name = reducer->sharded() ? str("optimizer_rank", rank, ".safetensors") : "optimizer.safetensors";
  auto opt_file = safetensors::File::open(dir + "/" + opt_name);
  std::vector<std::pair<std::string, torch::Tensor>> moments;
  for (const auto& info : opt_file.tensors()) moments.emplace_back(info.name, opt_file.get(info.name));
  optimizer->load_state(moments, state.at("optimizer").at("step").get<int64_t>());

  const auto& mine = state.at("ranks").at(rank);
  restore_rng(mine.at("rng"), device);
  task->restore_data_state(mine.at("data"));
  step = state.at("step").get<int64_t>();
  skipped_steps = state.value("skipped_steps", int64_t{0});
  nonfinite_in_row = state.value("nonfinite_in_row", int64_t{0});
  nonfinite->restore(skipped_steps, nonfinite_in_row);
  last_saved_step = step;
  PATHVLM_CHECK(step <= job.train.steps, "checkpoint '", dir, "' is at step ", step, ", beyond train.steps (",
                job.train.steps, ")");
  samples = state.value("samples", int64_t{0});
  earlier_pieces = pieces_from_json(state.value("pieces", nlohmann::json()));
  last_checkpoint = dir;
  log_info("resumed from ", dir, " at step ", step, earlier_pieces.empty() ? "" : str(" after ",
           format_duration(total_seconds(earlier_pieces)), " of training"));
}

// ---- checkpoint ------------------------------------------------------------------------------------

void Trainer::State::save_checkpoint() {
  check_nonfinite();  // the counts it records are current
  const auto t0 = Clock::now();
  const std::string root = run.checkpoints_dir();
  if (rank == 0) ckpt::begin(root, step);
  comm->barrier();
  const std::string dir = ckpt::tmp_dir(root, step);
  const auto opt_state = optimizer->state();
  if (reducer->sharded())
    safetensors::save(str(dir, "/optimizer_rank", rank, ".safetensors"), opt_state);
  else if (rank == 0)
    safetensors::save(dir + "/optimizer.safetensors", opt_state);
  // Frozen parameters that init_from loaded still hold their source's values: record where instead of
  // rewriting them (a frozen 7B LLM next to a small trained projector).
  ckpt::External external;
  if (rank == 0) {
    std::set<const c10::TensorImpl*> frozen;
    for (const auto& p : task->model().parameters())
      if (!p.requires_grad()) frozen.insert(p.unsafeGetTensorImpl());
    safetensors::NamedTensors own;
    for (const auto& [name, tensor] : task->state_tensors()) {
      auto source = init_sources.tensors.find(name);
      if (source == init_sources.tensors.end() || !frozen.count(tensor.unsafeGetTensorImpl())) {
        own.emplace_back(name, tensor);
        continue;
      }
      external.tensors[name] = source->second;
      external.files[source->second.file] = init_sources.files.at(source->second.file);
    }
    safetensors::save(dir + "/model.safetensors", own, {{"format", "pt"}});
  }
  nlohmann::json mine = {{"rng", capture_rng(device)}, {"data", task->data_state()}};
  auto per_rank = dist::allgather_strings(*comm, device, mine.dump());
  comm->barrier();  // every rank's files are in place
  if (rank == 0) {
    nlohmann::json state = {
        {"format", "pathvlm-checkpoint"},
        {"version", 1},
        {"step", step},
        {"epoch", task->epoch()},
        {"world_size", world},
        {"task", job.run.task},
        {"skipped_steps", skipped_steps},
        {"nonfinite_in_row", nonfinite_in_row},
        {"samples", samples},
        {"pieces", pieces_to_json(pieces_so_far())},
        {"optimizer", {{"step", optimizer->step_count()}, {"sharded", reducer->sharded()}}},
        {"schedule", {{"kind", job.optim.schedule}, {"lr", schedule->lr(std::max<int64_t>(step - 1, 0))}}},
        {"torch", str(TORCH_VERSION_MAJOR, ".", TORCH_VERSION_MINOR, ".", TORCH_VERSION_PATCH)},
        {"config", cfg::to_yaml(job)},
    };
    if (!external.tensors.empty()) state["external"] = external.to_json();
    state["ranks"] = nlohmann::json::array();
    for (const auto& r : per_rank) state["ranks"].push_back(nlohmann::json::parse(r));
    const auto final_dir = ckpt::commit(root, step, std::move(state), job.checkpoint.keep_last);
    log_info("saved checkpoint ", final_dir, " in ", format_duration(seconds_since(t0)));
    last_checkpoint = final_dir;
  }
  comm->barrier();  // committed before anyone moves on
  metrics->flush();  // what was logged up to a checkpoint survives a crash after it
  last_saved_step = step;
  last_save_time = Clock::now();
}

// Rank 0, at the end: the task's export, preceded with train.lora by the adapter alone (PEFT's layout, for the
// base model train.init_from started from) and the merge of the adapters, so the exported model is the merged one.
void Trainer::State::export_model() {
  const std::string dir = run.path + "/export";
  if (job.train.lora.enabled()) {
    const auto& sources = job.train.init_from;
    models::save_peft_adapter(task->model(), dir + "/adapter", sources.empty() ? "" : sources.front().path);
    const auto merged = models::merge_lora(task->model());
    log_info("saved the LoRA adapter to ", dir, "/adapter and merged its ", merged, " layers into the model");
  }
  task->export_model(dir);
  log_info("exported the model to ", dir);
}

// True when any rank was signalled; sets *time_due_out from rank 0's clock. On the host communicator, from host
// memory: nothing here waits for the device.
bool Trainer::State::agree(bool preempt_requested, bool time_due, bool* time_due_out) {
  auto flags = torch::tensor({preempt_requested ? 1.0f : 0.0f, (rank == 0 && time_due) ? 1.0f : 0.0f});
  comm->host().allreduce(flags, dist::ReduceOp::Max);
  const float* f = flags.data_ptr<float>();
  *time_due_out = f[1] > 0;
  return f[0] > 0;
}

// At a sync point: the steps skipped as non-finite since the last one are reported, and a run of
// train.max_nonfinite of them in a row ends the run (before any evaluation or checkpoint of the diverged model).
void Trainer::State::check_nonfinite() {
  const auto seen = nonfinite->read();
  skipped_steps = seen.total;
  nonfinite_in_row = seen.in_row;
  if (seen.since_read > 0)
    log_warn("step ", seen.last_step, ": non-finite ", std::isfinite(seen.last_loss) ? "gradient norm" : "loss",
             " (loss ", seen.last_loss, ", grad norm ", seen.last_grad_norm, "); ", seen.since_read,
             seen.since_read == 1 ? " update" : " updates", " skipped since the last report (", seen.total,
             " in total, ", seen.in_row, " in a row now)");
  PATHVLM_CHECK(seen.worst_in_row < job.train.max_nonfinite, "training diverged: ", seen.worst_in_row,
                " steps in a row had a non-finite loss or gradient (train.max_nonfinite = ", job.train.max_nonfinite,
                "); lower optim.lr or check the data");
}

// The task prints its evaluation (formatted, with context such as chance level) under one header; the values go to
// metrics.jsonl and TensorBoard, not to the console a second time.
void Trainer::State::evaluate_and_log() {
  const auto t0 = Clock::now();
  char epoch[32];
  std::snprintf(epoch, sizeof epoch, "%.2f", task->epoch());
  log_info("eval at step ", step, ", epoch ", epoch);
  task->model().eval();
  std::map<std::string, double> results;
  {
    torch::NoGradGuard no_grad;
    compat::AutocastGuard autocast(device.type(), bf16_autocast, torch::kBFloat16);
    results = task->evaluate(*comm);
  }
  task->model().train();
  log_info("eval done in ", format_duration(seconds_since(t0)), ": ", results.size(), " metrics",
           results.empty() ? "" : " (metrics.jsonl)");
  if (results.empty()) return;
  metrics->write(step, Scalars(results.begin(), results.end()));
}

// The pieces of this run up to now: the resumed ones and this process's so far.
std::vector<RunPiece> Trainer::State::pieces_so_far() {
  auto pieces = earlier_pieces;
  pieces.push_back({piece.from_step, step, seconds_since(piece_start)});
  return pieces;
}

void Trainer::State::write_results() {
  RunFacts facts;
  facts.name = run.name;
  facts.task = job.run.task;
  facts.run_dir = run.path;
  facts.world_size = world;
  facts.steps = step;
  facts.skipped_steps = skipped_steps;
  facts.epoch = task->epoch();
  facts.samples = samples;
  facts.pieces = pieces_so_far();
  facts.checkpoint = last_checkpoint;
  if (job.checkpoint.export_final) facts.export_dir = run.path + "/export";
  facts.tensorboard = metrics->event_path();
  const auto results = write_run_results(facts);
  std::string plots;
  for (const char* plot : {"loss_plot", "eval_plot"})
    if (const auto path = results["paths"][plot].get<std::string>(); !path.empty())
      plots += str(", ", std::filesystem::path(path).filename().string());
  log_info("results: ", run.path, "/results.json", plots.empty() ? "" : " and the plots" + plots.substr(1));
}

int train(const JobConfig& job, bool continue_finished) {
  Trainer trainer(job, make_task(job.run.task), continue_finished);
  return trainer.run();
}

}  // namespace pathvlm::train
