// The device a command or config names: "auto" (CUDA when available, else the CPU), "cpu", "cuda" or "cuda:N".
#pragma once
#include <torch/torch.h>

#include <string>

namespace pathvlm {

// `key` names the option in errors ("--device", "embed.device"): an unknown name or CUDA without a GPU.
torch::Device parse_device(const std::string& name, const std::string& key);

}  // namespace pathvlm
