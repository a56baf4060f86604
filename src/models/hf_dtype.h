// The names Hugging Face configs give weight dtypes (config.json's `torch_dtype` / `dtype`), and the ones exports
// take on the command line.
#pragma once
#include <torch/torch.h>

#include <string>

#include "core/error.h"

namespace pathvlm::models {

inline const char* hf_dtype_name(torch::ScalarType dtype) {
  return dtype == torch::kBFloat16 ? "bfloat16" : dtype == torch::kFloat16 ? "float16" : "float32";
}

// "fp32", "bf16" or "fp16" (`what` names the option in the error).
inline torch::ScalarType export_dtype(const std::string& name, const std::string& what) {
  if (name == "fp32") return torch::kFloat32;
  if (name == "bf16") return torch::kBFloat16;
  if (name == "fp16") return torch::kFloat16;
  throw Error(str(what, " '", name, "': expected fp32, bf16 or fp16"));
}

}  // namespace pathvlm::models
