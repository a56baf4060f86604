#include "core/device.h"

#include "core/error.h"

namespace pathvlm {

torch::Device parse_device(const std::string& name, const std::string& key) {
  if (name == "auto") return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  auto device = [&] {
    try {
      return torch::Device(name);
    } catch (const c10::Error&) {
      throw Error(str(key, " '", name, "': expected auto, cpu, cuda or cuda:N"));
    }
  }();
  PATHVLM_CHECK(!device.is_cuda() || torch::cuda::is_available(), key, " ", name, ": CUDA is not available");
  return device;
}

}  // namespace pathvlm
