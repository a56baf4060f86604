// Task: what one kind of training (lm, clip, instruct, slide) plugs into the generic Trainer.
//
// The Trainer owns the loop (optimizer, schedule, clipping, checkpoints, preemption, logging); a Task owns
// its model, its data and its loss. Per optimizer step the Trainer asks for `grad_accum` micro-batches
// (next_batch, timed as data wait) and hands them to forward_backward, which by default is plain gradient
// accumulation (loss / n, backward per micro-batch, Reducer sync only on the last). A task whose loss couples
// the micro-batches (CLIP's contrastive loss over the full global batch) overrides forward_backward.
//
//   class MyTask : public train::Task {
//     void build(const TaskContext& ctx) override;             // model on ctx.device, data for ctx.rank
//     torch::nn::Module& model() override;
//     Batch next_batch() override;                             // this rank's next micro-batch
//     LossOutput loss(const Batch& b) override;                // mean loss over the micro-batch
//   };
//   // in its own folder src/train/<task>/, and one registration line in src/train/tasks.cpp
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "data/loader.h"
#include "train/train_config.h"

namespace pathvlm {
struct JobConfig;
namespace dist {
class Comm;
class Reducer;
}  // namespace dist
}  // namespace pathvlm

namespace pathvlm::train {

// One micro-batch on this rank: named tensors already on the task's device (the loader's batch, so a task's
// next_batch can hand it over as it comes).
using Batch = data::Batch;

struct LossOutput {
  torch::Tensor loss;                             // scalar, mean over the micro-batch, with grad
  std::map<std::string, torch::Tensor> metrics;   // extra scalars to log (detached), averaged over micro-batches
};

// What forward_backward returns for one optimizer step on this rank.
struct StepOutput {
  torch::Tensor loss;                             // scalar, detached: mean over the micro-batches
  std::map<std::string, torch::Tensor> metrics;   // detached scalars, logged (rank-averaged) by the Trainer
};

// Everything build() may use. The task reads its own config section from `job`.
struct TaskContext {
  const JobConfig& job;
  torch::Device device;
  dist::Comm& comm;
  int rank = 0;
  int world_size = 1;
  int64_t micro_batch_size = 1;  // samples per rank per micro-step (train.micro_batch_size)
  int grad_accum = 1;            // micro-steps per optimizer step
  uint64_t seed = 0;             // data order seed (train.seed); model init is seeded by the Trainer
  std::string run_dir;
};

// The Loader settings of a task's data on this rank (its place, the data seed, the device) with the task's thread
// counts; each loader then picks its batch size and mode: task_loader_options(ctx, 2, 4).batches(64, true).
data::LoaderOptions task_loader_options(const TaskContext& ctx, int workers, int prefetch);

// A training loader's position as a task's data_state() saves it ({"epoch", "batch"}), and its restore; errors name
// `task` and the state that lacks a key.
nlohmann::json loader_state(const data::Loader& loader);
void restore_loader_state(data::Loader& loader, const nlohmann::json& state, const std::string& task);
// The training loader's fractional epoch: epochs done plus the share of this epoch's batches taken (2.25).
double loader_epoch(const data::Loader& loader);

// Handed to forward_backward: the gradient synchronisation of this step.
struct StepContext {
  dist::Reducer& reducer;  // prepare_backward(sync) before every backward; finish_backward() after the last
  dist::Comm& comm;        // for losses that need other ranks' data (CLIP all-gathers features)
  int step = 0;            // 1-based optimizer step being computed
};

// The factor that turns this rank's summed losses into its share of the mean over the global batch: world size /
// the count (of targets, tokens) summed over every rank (the Reducer averages gradients over the ranks). `count`
// is this rank's, 1 element on the device; the sum is an allreduce and the factor stays on the device (a float32
// 0-dim tensor), so the step does not wait for it.
torch::Tensor global_mean_scale(torch::Tensor count, dist::Comm& comm);

class Task {
 public:
  virtual ~Task() = default;

  // Builds the model on ctx.device (parameters initialised from the current torch seed) and the data.
  virtual void build(const TaskContext& ctx) = 0;
  // `pathvlm eval`: builds the model from `weights` (a run directory, checkpoint or export; empty: the task's
  // configured initial weights) and only the evaluation data. Default: the task has no standalone evaluation.
  virtual void build_for_eval(const TaskContext& ctx, const std::string& weights);
  virtual torch::nn::Module& model() = 0;

  // Tensors saved in model.safetensors and restored on resume, by their export names (Hugging Face names for
  // CLIP). Default: the model's parameters and buffers by their module paths.
  virtual std::vector<std::pair<std::string, torch::Tensor>> state_tensors();

  // Weights loaded after build() like train.init_from sources and before them (a pretrained model the task's
  // config names), so that frozen ones are recorded as external in partial checkpoints. Skipped on resume.
  virtual std::vector<KeyedInitSource> init_sources() const { return {}; }

  // Model FLOPs of one training sample (forward + backward), for MFU; 0 (the default): the Trainer counts
  // 6 x trainable parameters per token instead, for tasks whose batches count tokens.
  virtual double train_flops_per_sample() const { return 0; }

  // This rank's next micro-batch (rolls over epochs).
  virtual Batch next_batch() = 0;
  // Forward on one micro-batch.
  virtual LossOutput loss(const Batch& batch) = 0;
  // Forward + backward of one optimizer step over its micro-batches. The default is plain accumulation.
  virtual StepOutput forward_backward(const std::vector<Batch>& micro, StepContext& ctx);

  // Runs on every rank every eval.every steps (model in eval mode, no grad); returns metrics already reduced
  // over ranks (identical on every rank). Default: nothing to evaluate.
  virtual std::map<std::string, double> evaluate(dist::Comm& comm) { return {}; }
  // Writes the deployable artifact of the trained model into `dir` (called on rank 0 at the end).
  virtual void export_model(const std::string& dir) {}

  // Data position for resume (sampler cursor and any augmentation RNG of this rank), and the fractional epoch
  // (loader_epoch).
  virtual nlohmann::json data_state() const = 0;
  virtual void restore_data_state(const nlohmann::json& state) = 0;
  virtual double epoch() const = 0;
};

}  // namespace pathvlm::train
