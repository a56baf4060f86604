// Random transformers ViTs for the tests (models/vit/hf_weights.h, `pathvlm embed` with one): weights in the names of
// ViTModel (Phikon), Dinov2Model (Phikon-v2; Midnight: SwiGLU, 518 px position embeddings taken at 224 px) and
// Dinov2WithRegistersModel, with config.json and preprocessor_config.json; transformers' forward of them comes from
// the numpy reference (tests/models/vit/hf_vit_reference.py) through reference_features.
#pragma once
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <torch/torch.h>

#include "io/safetensors.h"
#include "models/vit/timm_vit_util.h"

namespace pathvlm::testing {

struct HfLayout {
  explicit HfLayout(std::string name, std::string model_type = "dinov2")
      : name(std::move(name)), model_type(std::move(model_type)) {}
  std::string name;
  std::string model_type;  // vit, dinov2, dinov2_with_registers
  bool swiglu = false;                // DINOv2's packed SwiGLU (weights_in / weights_out)
  int reg_tokens = 0;
  int position_grid = kImage / kPatch;  // of the checkpoint; the preprocessor's input is kImage
  std::string prefix;                   // "dinov2.": a task model's tensors, with its classifier
  double layer_norm_eps = 0;            // 0: not written (transformers' default)
  std::string hidden_act = "gelu";
  bool crop = true;  // BitImageProcessor's resize + center crop; else ViTImageProcessor's {height, width}
  bool preprocessor = true;
  int resample = -1;  // preprocessor_config's (PIL's numbering), left out when negative
  bool extra_tensor = false;  // a tensor no supported ViT has
};

inline std::string write_hf_vit(const HfLayout& layout) {
  const auto dir =
      std::filesystem::temp_directory_path() / ("pathvlm_hf_vit_" + layout.name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  torch::manual_seed(std::hash<std::string>{}(layout.name) % 1000);
  const bool vit = layout.model_type == "vit";
  const std::string& p = layout.prefix;
  safetensors::NamedTensors t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, double scale = 0.2, double offset = 0.0) {
    t.emplace_back(p + name, torch::randn(shape) * scale + offset);
  };
  auto add_linear = [&](const std::string& name, int64_t out, int64_t in) {
    add(name + ".weight", {out, in});
    add(name + ".bias", {out});
  };
  auto add_norm = [&](const std::string& name) {
    add(name + ".weight", {kWidth}, 0.1, 1.0);
    add(name + ".bias", {kWidth}, 0.1);
  };
  add("embeddings.cls_token", {1, 1, kWidth}, 1.0);
  if (!vit) add("embeddings.mask_token", {1, kWidth});  // for masked pre-training only: dropped
  if (layout.reg_tokens) add("embeddings.register_tokens", {1, layout.reg_tokens, kWidth}, 1.0);
  add("embeddings.position_embeddings", {1, layout.position_grid * layout.position_grid + 1, kWidth}, 0.5);
  add("embeddings.patch_embeddings.projection.weight", {kWidth, 3, kPatch, kPatch}, 0.05);
  add("embeddings.patch_embeddings.projection.bias", {kWidth});
  for (int i = 0; i < kDepth; ++i) {
    const std::string b = "encoder.layer." + std::to_string(i) + ".";
    add_norm(b + (vit ? "layernorm_before" : "norm1"));
    add_norm(b + (vit ? "layernorm_after" : "norm2"));
    for (const char* part : {"query", "key", "value"}) add_linear(b + "attention.attention." + part, kWidth, kWidth);
    add_linear(b + "attention.output.dense", kWidth, kWidth);
    if (vit) {
      add_linear(b + "intermediate.dense", kHidden, kWidth);
      add_linear(b + "output.dense", kWidth, kHidden);
      continue;
    }
    add_linear(b + (layout.swiglu ? "mlp.weights_in" : "mlp.fc1"), layout.swiglu ? 2 * kHidden : kHidden, kWidth);
    add_linear(b + (layout.swiglu ? "mlp.weights_out" : "mlp.fc2"), kWidth, kHidden);
    add(b + "layer_scale1.lambda1", {kWidth}, 0.3, 1.0);  // far from DINOv2's 1e-5 start, so one left out shows
    add(b + "layer_scale2.lambda1", {kWidth}, 0.3, 1.0);
  }
  add_norm("layernorm");
  if (vit && p.empty()) add_linear("pooler.dense", kWidth, kWidth);  // ViTModel's tanh pooler: dropped
  if (layout.extra_tensor) add("encoder.layer.0.attention.attention.q_norm.weight", {kWidth});
  if (!p.empty()) t.emplace_back("classifier.weight", torch::randn({5, kWidth}));  // the task head: dropped
  safetensors::save((dir / "model.safetensors").string(), t);

  nlohmann::json config = {{"model_type", layout.model_type},
                           {"hidden_size", kWidth},
                           {"num_hidden_layers", kDepth},
                           {"num_attention_heads", kHeads},
                           {"hidden_act", layout.hidden_act},
                           {"image_size", layout.position_grid * kPatch},
                           {"patch_size", kPatch},
                           {"qkv_bias", true}};
  if (layout.layer_norm_eps > 0) config["layer_norm_eps"] = layout.layer_norm_eps;
  if (vit) {
    config["architectures"] = {p.empty() ? "ViTModel" : "ViTForImageClassification"};
    config["intermediate_size"] = kHidden;
  } else {
    config["architectures"] = {p.empty() ? "Dinov2Model" : "Dinov2ForImageClassification"};
    config["use_swiglu_ffn"] = layout.swiglu;
    config["layerscale_value"] = 1.0;
    if (layout.reg_tokens) config["num_register_tokens"] = layout.reg_tokens;
  }
  std::ofstream((dir / "config.json").string()) << config.dump(2);
  nlohmann::json pre = {{"do_resize", true},   {"do_rescale", true},        {"rescale_factor", 1.0 / 255},
                        {"do_normalize", true}, {"image_mean", kMean},       {"image_std", kStd}};
  if (layout.crop) {
    pre["image_processor_type"] = "BitImageProcessor";
    pre["size"] = {{"shortest_edge", kImage + 8}};
    pre["do_center_crop"] = true;
    pre["crop_size"] = {{"height", kImage}, {"width", kImage}};
  } else {
    pre["image_processor_type"] = "ViTImageProcessor";
    pre["size"] = {{"height", kImage}, {"width", kImage}};
  }
  if (layout.resample >= 0) pre["resample"] = layout.resample;
  if (layout.preprocessor) std::ofstream((dir / "preprocessor_config.json").string()) << pre.dump(2);
  return dir.string();
}

}  // namespace pathvlm::testing
