// The device facts behind the step line's MFU and memory columns.
#include <gtest/gtest.h>

#include "core/device_stats.h"

using namespace pathvlm;

TEST(DeviceStats, Bf16PeakByCudaName) {
  EXPECT_EQ(bf16_peak_tflops("NVIDIA H200"), 989);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA H100 80GB HBM3"), 989);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA H100 PCIe"), 756);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA A100-SXM4-80GB"), 312);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA A10"), 125);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA A10G"), 70);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA L40S"), 362);
  EXPECT_EQ(bf16_peak_tflops("NVIDIA L4"), 121);
  EXPECT_EQ(bf16_peak_tflops("Tesla T4"), 0);  // no bf16 tensor cores: no figure, no MFU
  EXPECT_EQ(bf16_peak_tflops(""), 0);
}

TEST(DeviceStats, CpuHasNoPeaks) {
  EXPECT_EQ(device_bf16_peak_tflops(torch::kCPU), 0);
  EXPECT_EQ(peak_memory_bytes(torch::kCPU), 0);
  reset_peak_memory(torch::kCPU);  // a no-op, not an error
}
