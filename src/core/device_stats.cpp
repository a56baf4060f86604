#include "core/device_stats.h"

#include <algorithm>
#include <utility>
#include <vector>

#ifdef PATHVLM_HAVE_CUDA
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "core/ascii.h"

namespace pathvlm {

int64_t peak_memory_bytes(const torch::Device& device) {
#ifdef PATHVLM_HAVE_CUDA
  if (device.is_cuda()) {
    const auto index = device.has_index() ? device.index() : c10::DeviceIndex(0);
    return c10::cuda::CUDACachingAllocator::getDeviceStats(index).allocated_bytes[0].peak;
  }
#endif
  return 0;
}

void reset_peak_memory(const torch::Device& device) {
#ifdef PATHVLM_HAVE_CUDA
  if (device.is_cuda()) c10::cuda::CUDACachingAllocator::resetPeakStats(device.has_index() ? device.index() : 0);
#endif
}

double bf16_peak_tflops(const std::string& device_name) {
  const std::string name = ascii_lower(device_name);
  // First match wins: the specific variants before the family name.
  static const std::vector<std::pair<const char*, double>> kTable = {
      {"h100 pcie", 756}, {"h100 nvl", 835}, {"h100", 989}, {"h200", 989}, {"h800", 989}, {"gh200", 989},
      {"b200", 2250},     {"a100", 312},     {"a800", 312}, {"a30", 165},  {"a10g", 70},  {"a10", 125},
      {"l40s", 362},      {"l40", 181},      {"l4", 121},   {"4090", 165}, {"3090", 71},
  };
  for (const auto& [key, tflops] : kTable)
    if (name.find(key) != std::string::npos) return tflops;
  return 0;
}

double device_bf16_peak_tflops(const torch::Device& device) {
#ifdef PATHVLM_HAVE_CUDA
  if (device.is_cuda())
    return bf16_peak_tflops(at::cuda::getDeviceProperties(device.has_index() ? device.index() : 0)->name);
#endif
  return 0;
}

}  // namespace pathvlm
