// Checkpoints whose tensors lie about their shapes, for the weight loaders' tests: rewrite one tensor, or sweep every
// tensor of a checkpoint through shapes its model cannot have.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "core/error.h"
#include "io/safetensors.h"

namespace pathvlm::testing {

// Rewrites the safetensors of `dir` with tensor `name` replaced by `change` of it (a checkpoint that lies).
inline void rewrite_tensor(const std::string& dir, const std::string& name,
                           const std::function<torch::Tensor(const torch::Tensor&)>& change) {
  safetensors::NamedTensors tensors;
  {
    const auto checkpoint = safetensors::Checkpoint::open(dir);
    for (const auto& n : checkpoint.names()) tensors.emplace_back(n, checkpoint.get(n).clone());
  }
  for (auto& [n, tensor] : tensors)
    if (n == name) tensor = change(tensor).contiguous();
  safetensors::save(dir + "/model.safetensors", tensors);
}

// Every tensor of the checkpoint in `dir` in turn given a shape its model cannot have (one size one smaller, or one
// larger where it is 1; then flattened): `load` must refuse it with a pathvlm::Error naming `dir`, or give a model
// that `run` can run. Never another exception: a lying file is a clear error, not a crash deep in torch.
template <class Load, class Run>
void expect_lying_shapes_refused(const std::string& dir, Load load, Run run) {
  const std::string file = dir + "/model.safetensors", original = file + ".orig";
  const auto copy = [](const std::string& from, const std::string& to) {
    std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing);
  };
  copy(file, original);
  const std::vector<std::string> names = safetensors::Checkpoint::open(dir).names();
  for (const auto& name : names) {
    for (int variant = 0; variant < 2; ++variant) {
      copy(original, file);
      rewrite_tensor(dir, name, [&](const torch::Tensor& t) {
        if (variant == 1 || t.dim() == 0) return t.flatten().narrow(0, 0, std::max<int64_t>(t.numel() - 1, 1));
        auto shape = t.sizes().vec();
        shape.back() += shape.back() == 1 ? 1 : -1;
        return torch::zeros(shape, t.options());
      });
      SCOPED_TRACE(name + (variant ? " flattened" : " resized"));
      try {
        run(load(dir));
      } catch (const pathvlm::Error& e) {
        EXPECT_NE(std::string(e.what()).find(dir), std::string::npos) << e.what();
      } catch (const std::exception& e) {
        ADD_FAILURE() << "not a pathvlm::Error: " << e.what();
      }
    }
  }
  std::filesystem::rename(original, file);
}

}  // namespace pathvlm::testing
