#include "models/vit/timm_weights.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/layers/gated_mlp.h"
#include "models/layers/linear.h"
#include "models/layers/mlp.h"
#include "models/layers/transformer_block.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace pathvlm::models {
namespace {

const char* const kPatchWeight = "patch_embed.proj.weight";

// The text of the config.json beside the weights of a directory; "" when there is none.
std::string config_text_of(const fs::path& path) {
  const fs::path file = path / "config.json";
  return fs::is_directory(path) && fs::is_regular_file(file) ? read_text_file(file.string()) : "";
}

bool has_timm_tensors(const std::string& path) {
  const fs::path p(path);
  if (fs::is_directory(p) && !fs::is_regular_file(p / "model.safetensors") &&
      !fs::is_regular_file(p / "model.safetensors.index.json"))
    return false;
  if (!fs::is_directory(p) && p.extension() != ".safetensors") return false;
  return safetensors::Checkpoint::open(path).contains(kPatchWeight);
}

}  // namespace

bool is_timm_vit(const std::string& path) {
  const fs::path p(path);
  const std::string config = config_text_of(p);
  if (!config.empty()) {
    const json j = json_fields::parse(config, "'" + (p / "config.json").string() + "'");
    return j.is_object() && j.contains("architecture");
  }
  return has_timm_tensors(path);
}

Vit load_timm_vit(const std::string& path) {
  const fs::path p(path);
  const auto ckpt = safetensors::Checkpoint::open(path);
  const auto shape_of = [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
    if (!ckpt.contains(name)) return std::nullopt;
    return ckpt.info(name).shape;
  };
  const std::string where = "timm ViT '" + path + "'";
  const VitConfig c = timm_vit_config(shape_of, config_text_of(p), "'" + (p / "config.json").string() + "'", where);
  // Every value is loaded: nothing drawn, and the caller's random stream left where it was.
  Vit vit{nullptr};
  {
    const SkipWeightInit skip_init;
    const KeepCpuRandomStream keep_stream;
    vit = Vit(c);
  }

  std::set<std::string> used;
  auto get = [&](const std::string& name) {
    PATHVLM_CHECK(ckpt.contains(name), where, ": lacks tensor '", name, "'");
    used.insert(name);
    return ckpt.get(name).to(torch::kFloat);
  };
  torch::NoGradGuard no_grad;
  auto set = [&](torch::Tensor& target, const torch::Tensor& value, const std::string& name) {
    PATHVLM_CHECK(target.sizes() == value.sizes(), where, ": tensor '", name, "' has shape ", value.sizes(),
                  ", expected ", target.sizes());
    target.copy_(value);
  };
  auto copy = [&](torch::Tensor& target, const std::string& name) { set(target, get(name), name); };

  copy(vit->patch_embed->weight, kPatchWeight);
  copy(vit->patch_embed->bias, "patch_embed.proj.bias");
  if (c.class_token) copy(vit->cls_token, "cls_token");
  if (c.reg_tokens > 0) copy(vit->reg_token, "reg_token");
  copy(vit->pos_embed, "pos_embed");
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "blocks." + std::to_string(i) + ".";
    auto& block = *vit->blocks[i]->as<TransformerBlockImpl>();
    auto* norm1 = block.norm1.get<torch::nn::LayerNorm>().get();
    auto* norm2 = block.norm2.get<torch::nn::LayerNorm>().get();
    copy(norm1->weight, b + "norm1.weight");
    copy(norm1->bias, b + "norm1.bias");
    copy(norm2->weight, b + "norm2.weight");
    copy(norm2->bias, b + "norm2.bias");
    // LayerScale multiplies a branch's output: folded into the projection that ends the branch.
    auto scale = [&](const std::string& gamma) {
      return ckpt.contains(b + gamma) ? get(b + gamma) : torch::ones({c.width});
    };
    const auto ls1 = scale("ls1.gamma"), ls2 = scale("ls2.gamma");

    auto& attn = *block.self_attn;
    const auto qkv = get(b + "attn.qkv.weight").chunk(3, 0);
    const auto qkv_bias = ckpt.contains(b + "attn.qkv.bias") ? get(b + "attn.qkv.bias").chunk(3, 0)
                                                              : torch::zeros({3 * c.width}).chunk(3, 0);
    Linear* projections[] = {&attn.q_proj, &attn.k_proj, &attn.v_proj};
    for (int k = 0; k < 3; ++k) {
      set((*projections[k])->weight, qkv[k], b + "attn.qkv.weight");
      set((*projections[k])->bias, qkv_bias[k], b + "attn.qkv.bias");
    }
    set(attn.out_proj->weight, get(b + "attn.proj.weight") * ls1.unsqueeze(1), b + "attn.proj.weight");
    set(attn.out_proj->bias, get(b + "attn.proj.bias") * ls1, b + "attn.proj.bias");

    if (c.mlp == "gelu") {
      auto& mlp = *block.mlp.get<Mlp>();
      copy(mlp.fc1->weight, b + "mlp.fc1.weight");
      copy(mlp.fc1->bias, b + "mlp.fc1.bias");
      set(mlp.fc2->weight, get(b + "mlp.fc2.weight") * ls2.unsqueeze(1), b + "mlp.fc2.weight");
      set(mlp.fc2->bias, get(b + "mlp.fc2.bias") * ls2, b + "mlp.fc2.bias");
    } else {
      auto& mlp = *block.mlp.get<GatedMlp>();
      if (ckpt.contains(b + "mlp.fc1_g.weight")) {
        copy(mlp.gate_proj->weight, b + "mlp.fc1_g.weight");
        copy(mlp.gate_proj->bias, b + "mlp.fc1_g.bias");
        copy(mlp.up_proj->weight, b + "mlp.fc1_x.weight");
        copy(mlp.up_proj->bias, b + "mlp.fc1_x.bias");
      } else {  // SwiGLUPacked: silu(first half) * second half
        const auto w = get(b + "mlp.fc1.weight").chunk(2, 0), bias = get(b + "mlp.fc1.bias").chunk(2, 0);
        set(mlp.gate_proj->weight, w[0], b + "mlp.fc1.weight");
        set(mlp.up_proj->weight, w[1], b + "mlp.fc1.weight");
        set(mlp.gate_proj->bias, bias[0], b + "mlp.fc1.bias");
        set(mlp.up_proj->bias, bias[1], b + "mlp.fc1.bias");
      }
      set(mlp.down_proj->weight, get(b + "mlp.fc2.weight") * ls2.unsqueeze(1), b + "mlp.fc2.weight");
      set(mlp.down_proj->bias, get(b + "mlp.fc2.bias") * ls2, b + "mlp.fc2.bias");
    }
  }
  const std::string final_norm = c.norm_after_pool() ? "fc_norm." : "norm.";
  copy(vit->norm->weight, final_norm + "weight");
  copy(vit->norm->bias, final_norm + "bias");

  for (const auto& name : ckpt.names()) {
    PATHVLM_CHECK(used.count(name) || name == "head.weight" || name == "head.bias", where, ": tensor '", name,
                  "' is not part of a supported timm ViT (q/k norms, a pre-norm, attention pooling are not)");
  }
  vit->eval();
  return vit;
}

}  // namespace pathvlm::models
