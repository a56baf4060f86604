#include "models/vit/timm_weights.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"

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
  return holds_safetensors(path) && safetensors::Checkpoint::open(path).contains(kPatchWeight);
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

void set_timm_vit(CheckpointTensors& t, const std::string& prefix, Vit& vit,
                  const std::function<torch::Tensor(const torch::Tensor&)>& positions) {
  const VitConfig& c = vit->config();
  t.copy(vit->patch_embed->weight, prefix + kPatchWeight);
  t.copy(vit->patch_embed->bias, prefix + "patch_embed.proj.bias");
  if (c.class_token) t.copy(vit->cls_token, prefix + "cls_token");
  if (c.reg_tokens > 0) t.copy(vit->reg_token, prefix + "reg_token");
  const std::string pos = prefix + "pos_embed";
  set_vit_tensor(vit->pos_embed, positions ? positions(t.get(pos)) : t.get(pos), pos, t.where());
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = prefix + "blocks." + std::to_string(i) + ".";
    VitBlockWeights w;
    w.norm1 = t.linear(b + "norm1");
    w.norm2 = t.linear(b + "norm2");
    split_packed_qkv(w, t.linear(b + "attn.qkv"), c.width, t.where());
    w.out = t.linear(b + "attn.proj");
    if (t.contains(b + "mlp.fc1_g.weight")) {  // timm's SwiGLU: gate and value apart
      w.gate = t.linear(b + "mlp.fc1_g");
      w.up = t.linear(b + "mlp.fc1_x");
    } else {
      w.fc1 = t.linear(b + "mlp.fc1");
    }
    w.fc2 = t.linear(b + "mlp.fc2");
    w.ls1 = t.get_if(b + "ls1.gamma");
    w.ls2 = t.get_if(b + "ls2.gamma");
    set_vit_block(*vit->blocks[i]->as<TransformerBlockImpl>(), c, w, t.where());
  }
  set_layer_norm(vit->norm, t, prefix + (c.fc_norm ? "fc_norm" : "norm"));
}

Vit load_timm_vit(const std::string& path) {
  const fs::path p(path);
  const auto ckpt = safetensors::Checkpoint::open(path);
  const std::string where = "timm ViT '" + path + "'";
  const VitConfig c = timm_vit_config(shapes_in(ckpt), config_text_of(p), "'" + (p / "config.json").string() + "'", where);
  Vit vit = unset_vit(c);
  CheckpointTensors t(ckpt, where);
  set_timm_vit(t, "", vit);
  t.refuse_untaken([](const std::string& name) { return name == "head.weight" || name == "head.bias"; },
                   "timm ViT (q/k norms, a pre-norm, attention pooling are not)");
  vit->eval();
  return vit;
}

}  // namespace pathvlm::models
