// Which optimizer steps are skipped as non-finite, decided on the device: each step's flag (the rank-averaged loss
// or the global gradient norm is inf/nan) goes straight to AdamW, and the counts are read back only at the loop's
// sync points (log lines, evaluation, checkpoints, the end), so a step never waits for the GPU to decide.
//
//   NonFiniteSteps nonfinite(device);
//   auto skip = nonfinite.record(loss, grad_norm, step);   // per step, no host read
//   optimizer.step(lr, skip);
//   auto seen = nonfinite.read();                          // at a sync point: one copy to the host
#pragma once
#include <torch/torch.h>

#include <cstdint>

namespace pathvlm::train {

class NonFiniteSteps {
 public:
  explicit NonFiniteSteps(torch::Device device);

  // The skip flag of `step` (1-based): a 0-dim float32 tensor on the device, 1 when `loss` or `grad_norm` (0-dim
  // tensors on the device) is not finite, else 0. Updates the counts on the device.
  torch::Tensor record(const torch::Tensor& loss, const torch::Tensor& grad_norm, int64_t step);

  struct Seen {
    int64_t total = 0;         // steps skipped in the whole run
    int64_t since_read = 0;    // skipped since the previous read
    int64_t in_row = 0;        // the current run of skipped steps (0 after a finite step)
    int64_t worst_in_row = 0;  // the longest run of skipped steps since the previous read
    int64_t last_step = 0;     // the last skipped step (0: none yet)
    double last_loss = 0, last_grad_norm = 0;  // its loss and gradient norm
  };
  // The counts, read to the host (a sync); starts the next "since the previous read".
  Seen read();
  // A resumed run's counts (a checkpoint's skipped_steps and nonfinite_in_row).
  void restore(int64_t total, int64_t in_row);

 private:
  torch::Tensor state_;  // float64 [7] on the device, in the order of Seen's fields
};

}  // namespace pathvlm::train
