// Random timm ViTs for the tests (models/vit, `pathvlm embed` with a timm encoder): weights in timm's names and its
// config.json, in the layouts the pathology encoders publish, and timm's forward of them from the numpy reference
// (tests/models/vit/timm_vit_reference.py; timm itself needs torch, which this machine's python lacks).
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <array>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>
#include <vector>

#include "io/safetensors.h"
#include "models/lying_shapes.h"
#include "test_util.h"

namespace pathvlm::testing {

struct Layout {
  std::string name;
  std::string architecture = "vit_large_patch16_224";
  int reg_tokens = 0;
  bool no_embed_class = false;
  bool write_no_embed_class = false;  // in model_args (else inferred from pos_embed's length)
  std::string mlp = "gelu";           // gelu, packed (SwiGLUPacked), split (SwiGLU)
  bool layer_scale = true;
  bool qkv_bias = true;
  std::string global_pool = "token";  // as model_args.global_pool
  bool extra_tensor = false;          // a tensor no supported ViT has
  std::string interpolation{};        // pretrained_cfg.interpolation, left out when empty
};

inline constexpr int kWidth = 32, kDepth = 2, kHeads = 4, kPatch = 8, kImage = 32, kHidden = 48;
// The pixel normalisation written to pretrained_cfg (H-optimus-0's mean/std, rounded): not ImageNet's default.
inline const std::array<double, 3> kMean{0.70, 0.58, 0.70}, kStd{0.21, 0.23, 0.18};

inline std::string write_timm_vit(const Layout& layout) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("pathvlm_timm_vit_" + layout.name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(std::hash<std::string>{}(layout.name) % 1000);
  safetensors::NamedTensors t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale = 0.2, double offset = 0.0) {
    t.emplace_back(name, torch::randn(shape) * scale + offset);
  };
  const int prefix = 1 + layout.reg_tokens, grid = kImage / kPatch;
  add("patch_embed.proj.weight", {kWidth, 3, kPatch, kPatch}, 0.05);
  add("patch_embed.proj.bias", {kWidth});
  add("cls_token", {1, 1, kWidth}, 1.0);
  if (layout.reg_tokens) add("reg_token", {1, layout.reg_tokens, kWidth}, 1.0);
  add("pos_embed", {1, grid * grid + (layout.no_embed_class ? 0 : prefix), kWidth}, 0.5);
  for (int i = 0; i < kDepth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    for (const char* norm : {"norm1", "norm2"}) {
      add(b + norm + ".weight", {kWidth}, 0.1, 1.0);
      add(b + norm + ".bias", {kWidth}, 0.1);
    }
    add(b + "attn.qkv.weight", {3 * kWidth, kWidth});
    if (layout.qkv_bias) add(b + "attn.qkv.bias", {3 * kWidth});
    add(b + "attn.proj.weight", {kWidth, kWidth});
    add(b + "attn.proj.bias", {kWidth});
    if (layout.mlp == "split") {
      for (const char* part : {"fc1_g", "fc1_x"}) {
        add(b + "mlp." + part + ".weight", {kHidden, kWidth});
        add(b + "mlp." + part + ".bias", {kHidden});
      }
    } else {
      const int fc1 = layout.mlp == "packed" ? 2 * kHidden : kHidden;
      add(b + "mlp.fc1.weight", {fc1, kWidth});
      add(b + "mlp.fc1.bias", {fc1});
    }
    add(b + "mlp.fc2.weight", {kWidth, kHidden});
    add(b + "mlp.fc2.bias", {kWidth});
    if (layout.layer_scale) {  // far from timm's 1e-5 start, so a LayerScale left out shows
      add(b + "ls1.gamma", {kWidth}, 0.3, 1.0);
      add(b + "ls2.gamma", {kWidth}, 0.3, 1.0);
    }
  }
  const std::string final_norm = layout.global_pool == "avg" ? "fc_norm" : "norm";
  add(final_norm + ".weight", {kWidth}, 0.1, 1.0);
  add(final_norm + ".bias", {kWidth}, 0.1);
  add("head.weight", {5, kWidth});  // a classifier: dropped
  add("head.bias", {5});
  if (layout.extra_tensor) add("blocks.0.attn.q_norm.weight", {kWidth / kHeads});
  safetensors::save((dir / "model.safetensors").string(), t);

  nlohmann::json args = {{"img_size", kImage}, {"patch_size", kPatch}, {"num_heads", kHeads}, {"num_classes", 0},
               {"global_pool", layout.global_pool}, {"dynamic_img_size", true}};
  if (layout.layer_scale) args["init_values"] = 1e-5;
  if (layout.reg_tokens) args["reg_tokens"] = layout.reg_tokens;
  if (layout.write_no_embed_class) args["no_embed_class"] = layout.no_embed_class;
  if (layout.mlp != "gelu") args["act_layer"] = "torch.nn.modules.activation.SiLU";
  nlohmann::json config = {{"architecture", layout.architecture},
                 {"num_classes", 0},
                 {"model_args", args},
                 {"pretrained_cfg", {{"mean", kMean}, {"std", kStd}}}};
  if (!layout.interpolation.empty()) config["pretrained_cfg"]["interpolation"] = layout.interpolation;
  std::ofstream((dir / "config.json").string()) << config.dump(2);
  return dir.string();
}

inline torch::Tensor random_pixels(int64_t batch, int size = kImage) {
  torch::manual_seed(5);
  return torch::randint(0, 256, {batch, 3, size, size}, torch::kByte);
}

// uint8 pixels as the model takes them: scaled to [0,1] and normalised with `mean` / `std`.
inline torch::Tensor normalised(const torch::Tensor& pixels, const std::array<double, 3>& m = kMean,
                                const std::array<double, 3>& s = kStd) {
  const auto mean = torch::tensor({m[0], m[1], m[2]}).view({1, 3, 1, 1});
  const auto std = torch::tensor({s[0], s[1], s[2]}).view({1, 3, 1, 1});
  return ((pixels.to(torch::kFloat) / 255.0 - mean) / std).to(torch::kFloat);
}

// A python reference's JSON list of equal-length number lists as a float32 [rows, columns] tensor.
inline torch::Tensor json_matrix(const nlohmann::json& rows) {
  std::vector<double> values;
  for (const auto& row : rows)
    for (const auto& value : row) values.push_back(value.get<double>());
  const auto n = static_cast<int64_t>(rows.size());
  const int64_t columns = n > 0 ? static_cast<int64_t>(values.size()) / n : 0;
  return torch::tensor(values, torch::kFloat64).view({n, columns}).to(torch::kFloat32);
}

// The features of the model in `dir` on `pixels` from a numpy reference: timm's forward (timm_vit_reference.py), or
// transformers' (hf_vit_reference.py, with `extra` the pooling).
inline torch::Tensor reference_features(const std::string& dir, const torch::Tensor& pixels,
                                        const std::string& script = "timm_vit_reference.py",
                                        const std::string& extra = "") {
  const std::string file = dir + "/pixels.u8";
  std::ofstream(file, std::ios::binary)
      .write(static_cast<const char*>(pixels.contiguous().data_ptr()), static_cast<std::streamsize>(pixels.numel()));
  std::string output;
  const int status = run_command(std::string("/usr/bin/python3 ") + PATHVLM_SOURCE_DIR + "/tests/models/vit/" + script +
                                     " " + dir + " " + file + " " + std::to_string(pixels.size(0)) + " " + extra,
                                 output);
  EXPECT_EQ(status, 0) << output;
  if (status != 0) return {};
  return json_matrix(nlohmann::json::parse(output));
}

}  // namespace pathvlm::testing
