// Random CTransPath Swins for the tests (models/swin, `pathvlm embed` with CTransPath): safetensors in the names of
// its published state dict (timm 0.5's Swin with the ConvStem, the stored relative position indices, attention masks
// and batch-norm counters included), small but at its 224-px input, and its features from the numpy reference
// (swin_reference.py).
#pragma once
#include <unistd.h>

#include <filesystem>
#include <string>
#include <torch/torch.h>

#include "io/safetensors.h"
#include "models/vit/timm_vit_util.h"

namespace pathvlm::testing {

// Widths 24, 48, 96, 192 (8-wide heads), 2 blocks per stage, 7x7 windows: every stage kind of the real one (shifted
// masked windows in the first three, one unshifted window in the last).
inline constexpr int kSwinEmbed = 24, kSwinStages = 4, kSwinDepth = 2, kSwinWindow = 7, kSwinInput = 224;
inline constexpr int kSwinFeatures = kSwinEmbed << (kSwinStages - 1);

inline std::string write_ctranspath(const std::string& name, const std::string& extra_tensor = "") {
  const auto dir = std::filesystem::temp_directory_path() / ("pathvlm_swin_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(std::hash<std::string>{}(name) % 1000);
  safetensors::NamedTensors t;
  auto add = [&](const std::string& n, std::vector<int64_t> shape, double scale = 0.2, double offset = 0.0) {
    t.emplace_back(n, torch::randn(shape) * scale + offset);
  };
  auto norm = [&](const std::string& n, int64_t width) {
    add(n + ".weight", {width}, 0.1, 1.0);
    add(n + ".bias", {width}, 0.1);
  };
  const int e = kSwinEmbed;
  add("patch_embed.proj.0.weight", {e / 8, 3, 3, 3}, 0.3);
  add("patch_embed.proj.3.weight", {e / 4, e / 8, 3, 3}, 0.3);
  for (const auto& [bn, width] :
       {std::pair<std::string, int>{"patch_embed.proj.1", e / 8}, {"patch_embed.proj.4", e / 4}}) {
    norm(bn, width);
    add(bn + ".running_mean", {width}, 0.1);
    t.emplace_back(bn + ".running_var", torch::rand({width}) + 0.5);
    t.emplace_back(bn + ".num_batches_tracked", torch::tensor(int64_t{1000}));
  }
  add("patch_embed.proj.6.weight", {e, e / 4, 1, 1}, 0.3);
  add("patch_embed.proj.6.bias", {e});
  norm("patch_embed.norm", e);
  // The relative position index of a w x w window, as timm stores it.
  const auto grid = torch::arange(kSwinWindow, torch::kLong);
  const auto coords = torch::stack(torch::meshgrid({grid, grid}, "ij")).flatten(1);
  const auto relative = coords.unsqueeze(2) - coords.unsqueeze(1) + (kSwinWindow - 1);
  const auto index = relative[0] * (2 * kSwinWindow - 1) + relative[1];
  for (int i = 0; i < kSwinStages; ++i) {
    const int width = e << i, heads = width / 8, side = kSwinInput / 4 >> i;
    for (int j = 0; j < kSwinDepth; ++j) {
      const std::string b = "layers." + std::to_string(i) + ".blocks." + std::to_string(j) + ".";
      norm(b + "norm1", width);
      add(b + "attn.qkv.weight", {3 * width, width}, 0.15);
      add(b + "attn.qkv.bias", {3 * width});
      add(b + "attn.proj.weight", {width, width}, 0.15);
      add(b + "attn.proj.bias", {width});
      add(b + "attn.relative_position_bias_table", {(2 * kSwinWindow - 1) * (2 * kSwinWindow - 1), heads}, 1.0);
      t.emplace_back(b + "attn.relative_position_index", index.clone());
      // A stored mask, as the checkpoint holds one per shifted block (its values are not read).
      if (j % 2 == 1 && side > kSwinWindow) {
        const int64_t windows = (side / kSwinWindow) * (side / kSwinWindow);
        t.emplace_back(b + "attn_mask", torch::zeros({windows, kSwinWindow * kSwinWindow, kSwinWindow * kSwinWindow}));
      }
      norm(b + "norm2", width);
      add(b + "mlp.fc1.weight", {4 * width, width}, 0.15);
      add(b + "mlp.fc1.bias", {4 * width});
      add(b + "mlp.fc2.weight", {width, 4 * width}, 0.1);
      add(b + "mlp.fc2.bias", {width});
    }
    if (i + 1 < kSwinStages) {
      const std::string d = "layers." + std::to_string(i) + ".downsample.";
      norm(d + "norm", 4 * width);
      add(d + "reduction.weight", {2 * width, 4 * width}, 0.1);
    }
  }
  norm("norm", kSwinFeatures);
  if (!extra_tensor.empty()) add(extra_tensor, {2});
  safetensors::save((dir / "model.safetensors").string(), t);
  return dir.string();
}

inline torch::Tensor swin_reference_features(const std::string& dir, const torch::Tensor& pixels) {
  return reference_features(dir, pixels, "../swin/swin_reference.py");
}

}  // namespace pathvlm::testing
