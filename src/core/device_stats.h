// What the step line needs to know about the device: peak memory of the caching allocator, and the
// device's peak dense bf16 FLOP/s for MFU when the config does not give one (log.peak_tflops).
//
// MFU = model FLOPs of the step / (step time x peak FLOP/s of one device), per rank (docs/architecture.md).
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>

namespace pathvlm {

// Bytes the CUDA caching allocator held at most since the last reset_peak_memory; 0 on CPU (or in a build
// without CUDA).
int64_t peak_memory_bytes(const torch::Device& device);
void reset_peak_memory(const torch::Device& device);

// Peak dense bf16 TFLOP/s of a GPU by its CUDA name ("NVIDIA H100 80GB HBM3"), from the vendors' data
// sheets; 0 when the name is not in the table.
double bf16_peak_tflops(const std::string& device_name);

// bf16_peak_tflops of `device` (0 on CPU).
double device_bf16_peak_tflops(const torch::Device& device);

}  // namespace pathvlm
