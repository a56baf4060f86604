// What one rank holds for the model and its optimizer, by category, as the startup log prints it:
//
//   weights            every parameter (trainable and frozen) at its dtype
//   gradients          the Reducer's gradient buffers of the trainable parameters (+ reduced shards when sharded)
//   master weights     fp32 copy of this rank's optimizer shard (train.precision bf16 only)
//   optimizer moments  AdamW's exp_avg and exp_avg_sq, fp32, over this rank's optimizer shard
//
// Activations and allocator slack are not counted: they depend on the batch, not on the model.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dist/reducer.h"

namespace pathvlm::train {

struct MemoryTable {
  int64_t weights = 0, gradients = 0, master_weights = 0, optimizer_moments = 0;
  int64_t total() const { return weights + gradients + master_weights + optimizer_moments; }
  // ("weights", bytes), ..., ("total", bytes): the rows of the log table.
  std::vector<std::pair<std::string, int64_t>> rows() const;
};

// `parameters`: all of the model's parameters; `fp32_master`: the optimizer keeps fp32 master weights.
MemoryTable memory_per_rank(const dist::Reducer::Memory& reducer, const std::vector<torch::Tensor>& parameters,
                            bool fp32_master);

// The same table for a run on rank `rank` of `world`, without allocating: `parameters` are all of the model's
// (requires_grad marks the trained ones, `decay` their weight-decay choice, as the trainer passes them to the
// Reducer) and `bf16_weights` casts the floating ones as train.precision bf16 does. Only shapes and dtypes are read,
// so a model built without drawing its weights (untouched memory) plans a recipe sized for another cluster.
MemoryTable plan_memory_per_rank(const std::vector<dist::NamedParam>& parameters, bool bf16_weights, int world,
                                 int rank, const dist::DistConfig& cfg);

}  // namespace pathvlm::train
