// Host reads of tensor values: where a training step would wait for the device.
//
// A step stays asynchronous on a GPU only if nothing in it reads a tensor's value on the host (.item(), a copy to
// host memory, a bool of a comparison): each such read waits for every kernel queued before it. The training loop
// marks its step with StepScope and reads its numbers only at sync points; HostReadCounter (tests, benchmarks)
// counts the reads made inside step scopes through libtorch's operator observers, so a read added anywhere in the
// step path (trainer, task, model, loss, comm) is caught even on the CPU.
//
//   { pathvlm::StepScope step; ... forward, backward, optimizer ... }      // the loop
//   pathvlm::HostReadCounter reads;  run();  EXPECT_EQ(reads.in_steps(), 0); // a test
//
// Reading host memory directly (a CPU tensor's data_ptr) is not a read here: on the CPU there is no device to wait
// for, and a CUDA tensor's data cannot be read that way.
#pragma once
#include <ATen/record_function.h>

#include <cstdint>
#include <string>
#include <vector>

namespace pathvlm {

// The truth of a 0-dim flag: read from host memory on the CPU (nothing to wait for, not counted); on a device a
// read that waits for it (counted).
bool host_flag(const at::Tensor& flag);

// Marks the enclosed code as the inside of a training step (a profiler scope named kStepScopeName).
class StepScope {
 public:
  StepScope();
  ~StepScope();
  StepScope(const StepScope&) = delete;
  StepScope& operator=(const StepScope&) = delete;

 private:
  at::RecordFunction record_;
};
inline constexpr const char* kStepScopeName = "pathvlm::train_step";

// Counts, while alive, the host reads: scalar reads (aten::_local_scalar_dense, what .item() and bool(tensor) call)
// and copies from a device into host memory, separately inside and outside step scopes. Reads of device tensors
// count on any thread; reads of CPU tensors only on the thread of the step scope (the loop's: on a GPU the same
// code would read device tensors there), not on the data loader's workers, which work on host data by design.
// One counter at a time. PATHVLM_TRACE_HOST_READS=1 prints each in-step read's stack to stderr.
class HostReadCounter {
 public:
  HostReadCounter();
  ~HostReadCounter();
  HostReadCounter(const HostReadCounter&) = delete;
  HostReadCounter& operator=(const HostReadCounter&) = delete;

  int64_t in_steps() const;      // reads inside step scopes
  int64_t outside_steps() const; // reads anywhere else (setup, sync points, evaluation, checkpoints)
  int64_t steps() const;         // step scopes entered
  // The operators of the reads inside step scopes, in order ("aten::_local_scalar_dense", "aten::copy_ (cuda:0 -> cpu)").
  std::vector<std::string> in_step_reads() const;

 private:
  at::CallbackHandle handle_;
};

}  // namespace pathvlm
