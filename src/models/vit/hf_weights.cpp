#include "models/vit/hf_weights.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/vit/loading.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace pathvlm::models {
namespace {

// Patch position embeddings [1, from², W] resampled to a to x to grid as transformers' DINOv2 embeddings do (bicubic,
// align_corners false, float32); Dinov2WithRegistersModel's antialiased.
torch::Tensor resample_positions(const torch::Tensor& patch_positions, int from, int to, bool antialias) {
  const int64_t width = patch_positions.size(2);
  const auto grid = patch_positions.reshape({1, from, from, width}).permute({0, 3, 1, 2}).to(torch::kFloat);
  const auto resampled = torch::nn::functional::interpolate(grid, torch::nn::functional::InterpolateFuncOptions()
                                                                      .size(std::vector<int64_t>{to, to})
                                                                      .mode(torch::kBicubic)
                                                                      .align_corners(false)
                                                                      .antialias(antialias));
  return resampled.permute({0, 2, 3, 1}).reshape({1, int64_t{to} * to, width});
}

}  // namespace

std::string hub_model_type(const std::string& path) {
  const fs::path config = fs::path(path) / "config.json";
  if (!fs::is_directory(path) || !fs::is_regular_file(config)) return "";
  const json j = json_fields::parse(read_text_file(config.string()), "'" + config.string() + "'");
  if (!j.is_object() || !j.contains("model_type") || !j.at("model_type").is_string()) return "";
  return j.at("model_type").get<std::string>();
}

bool is_hf_vit(const std::string& path) {
  const std::string type = hub_model_type(path);
  return type == "vit" || type == "dinov2" || type == "dinov2_with_registers";
}

Vit load_hf_vit(const std::string& path) {
  const std::string where = "transformers ViT '" + path + "'";
  const fs::path dir(path), config = dir / "config.json", preprocessor = dir / "preprocessor_config.json";
  PATHVLM_CHECK(fs::is_directory(dir) && fs::is_regular_file(config), where,
                ": not a model directory with config.json");
  const auto ckpt = safetensors::Checkpoint::open(path);
  const HfVitLayout layout = hf_vit_config(
      shapes_in(ckpt), read_text_file(config.string()),
      fs::is_regular_file(preprocessor) ? read_text_file(preprocessor.string()) : "", "'" + config.string() + "'",
      "'" + preprocessor.string() + "'", where);
  const VitConfig& c = layout.config;
  Vit vit = unset_vit(c);
  CheckpointTensors t(ckpt, where);
  const std::string& p = layout.prefix;

  t.copy(vit->patch_embed->weight, p + "embeddings.patch_embeddings.projection.weight");
  t.copy(vit->patch_embed->bias, p + "embeddings.patch_embeddings.projection.bias");
  const auto cls = t.get(p + "embeddings.cls_token");
  const auto positions = t.get(p + "embeddings.position_embeddings");
  const auto class_position = positions.narrow(1, 0, 1);
  auto patch_positions = positions.narrow(1, 1, positions.size(1) - 1);
  if (layout.position_grid != c.grid()) {
    patch_positions = resample_positions(patch_positions, layout.position_grid, c.grid(), c.reg_tokens > 0);
  }
  if (c.no_embed_class) {  // registers sit between the class token and the patches, without a position
    set_vit_tensor(vit->cls_token, cls + class_position, p + "embeddings.cls_token", where);
    set_vit_tensor(vit->pos_embed, patch_positions, p + "embeddings.position_embeddings", where);
    t.copy(vit->reg_token, p + "embeddings.register_tokens");
  } else {
    set_vit_tensor(vit->cls_token, cls, p + "embeddings.cls_token", where);
    set_vit_tensor(vit->pos_embed, torch::cat({class_position, patch_positions}, 1),
                   p + "embeddings.position_embeddings", where);
  }
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = p + "encoder.layer." + std::to_string(i) + ".";
    VitBlockWeights w;
    w.norm1 = t.linear(b + layout.norm1);
    w.norm2 = t.linear(b + layout.norm2);
    w.q = t.linear(b + "attention.attention.query");
    w.k = t.linear(b + "attention.attention.key");
    w.v = t.linear(b + "attention.attention.value");
    w.out = t.linear(b + "attention.output.dense");
    w.fc1 = t.linear(b + layout.fc1);
    w.fc2 = t.linear(b + layout.fc2);
    w.ls1 = t.get_if(b + "layer_scale1.lambda1");
    w.ls2 = t.get_if(b + "layer_scale2.lambda1");
    set_vit_block(*vit->blocks[i]->as<TransformerBlockImpl>(), c, w, where);
  }
  t.copy(vit->norm->weight, p + "layernorm.weight");
  t.copy(vit->norm->bias, p + "layernorm.bias");
  t.refuse_untaken(
      [&](const std::string& name) {
        return name == p + "embeddings.mask_token" || name.rfind(p + "pooler.", 0) == 0 ||
               (!p.empty() && name.rfind("classifier.", 0) == 0);
      },
      layout.model_type + " model");
  vit->eval();
  return vit;
}

}  // namespace pathvlm::models
