#include "models/vit/hf_weights.h"

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/hf_dtype.h"
#include "models/layers/gated_mlp.h"
#include "models/layers/mlp.h"
#include "models/vit/loading.h"

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace pathvlm::models {
namespace {

bool is_vit_type(const std::string& type) {
  return type == "vit" || type == "dinov2" || type == "dinov2_with_registers";
}

// The ViT config of a transformers LLaVA's config.json `j` (its vision_config), else null.
json llava_vit_config(const json& j, const std::string& at) {
  if (!j.is_object() || json_fields::string_or(j, "model_type", "", at) != "llava") return nullptr;
  const json vision = j.value("vision_config", json::object());
  PATHVLM_CHECK(vision.is_object(), at, ": vision_config is not an object");
  return is_vit_type(json_fields::string_or(vision, "model_type", "", at + ": vision_config")) ? vision : json();
}

// The mlp_ratio for which DINOv2 builds the ViT's MLP width: int(width * ratio) wide, and for SwiGLU that rounded as
// (int(h * 2 / 3) + 7) // 8 * 8; computed as Python computes it, in double.
double dinov2_mlp_ratio(const VitConfig& c) {
  const auto swiglu_width = [](int64_t h) { return (static_cast<int64_t>(h * 2.0 / 3.0) + 7) / 8 * 8; };
  for (int64_t h = c.mlp_hidden; h <= 2 * int64_t{c.mlp_hidden}; ++h) {
    if (c.mlp == "swiglu" ? swiglu_width(h) != c.mlp_hidden : h != c.mlp_hidden) continue;
    double ratio = static_cast<double>(h) / c.width;
    while (static_cast<int64_t>(c.width * ratio) < h) ratio = std::nextafter(ratio, HUGE_VAL);
    return ratio;
  }
  throw Error(str("a SwiGLU MLP ", c.mlp_hidden, " wide is not one Dinov2Model builds (its width is a multiple of 8)"));
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
  if (type != "llava") return is_vit_type(type);
  const auto config = (fs::path(path) / "config.json").string(), at = "'" + config + "'";
  return !llava_vit_config(json_fields::parse(read_text_file(config), at), at).is_null();
}

Vit load_hf_vit(const std::string& path) {
  const std::string where = "transformers ViT '" + path + "'";
  const fs::path dir(path), config = dir / "config.json", preprocessor = dir / "preprocessor_config.json";
  PATHVLM_CHECK(fs::is_directory(dir) && fs::is_regular_file(config), where,
                ": not a model directory with config.json");
  const std::string at = "'" + config.string() + "'";
  std::string config_text = read_text_file(config.string());
  const auto ckpt = safetensors::Checkpoint::open(path);
  auto shape_of = shapes_in(ckpt);
  // A LLaVA's tower: its vision_config, its tensors under transformers' tower prefix (before 4.52, or since).
  std::string tower;
  if (const json vision = llava_vit_config(json_fields::parse(config_text, at), at); !vision.is_null()) {
    config_text = vision.dump();
    tower = ckpt.contains("vision_tower.embeddings.patch_embeddings.projection.weight") ? "vision_tower."
                                                                                           : "model.vision_tower.";
    shape_of = [all = shape_of, tower](const std::string& name) { return all(tower + name); };
  }
  std::string preprocessor_text = fs::is_regular_file(preprocessor) ? read_text_file(preprocessor.string()) : "";
  std::string preprocessor_at = "'" + preprocessor.string() + "'";
  const fs::path processor = dir / "processor_config.json";
  if (preprocessor_text.empty() && !tower.empty() && fs::is_regular_file(processor)) {
    // transformers 5 saves a LLaVA processor's image processor inside processor_config.json.
    const json j = json_fields::parse(read_text_file(processor.string()), "'" + processor.string() + "'");
    if (j.is_object() && j.contains("image_processor")) {
      preprocessor_text = j.at("image_processor").dump();
      preprocessor_at = "'" + processor.string() + "': image_processor";
    }
  }
  HfVitLayout layout = hf_vit_config(shape_of, config_text, preprocessor_text,
                                     tower.empty() ? at : at + ": vision_config", preprocessor_at, where);
  layout.prefix = tower + layout.prefix;
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
  if (layout.position_grid != c.grid()) {  // as transformers' DINOv2 does; Dinov2WithRegistersModel antialiased
    patch_positions = resample_patch_positions(patch_positions, layout.position_grid,
                                               torch::nn::functional::InterpolateFuncOptions()
                                                   .size(std::vector<int64_t>{c.grid(), c.grid()})
                                                   .mode(torch::kBicubic)
                                                   .align_corners(false)
                                                   .antialias(c.reg_tokens > 0));
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
  set_layer_norm(vit->norm, t, p + "layernorm");
  t.refuse_untaken(
      [&](const std::string& name) {
        return name == p + "embeddings.mask_token" || name.rfind(p + "pooler.", 0) == 0 ||
               (!p.empty() && name.rfind("classifier.", 0) == 0) ||
               (!tower.empty() && name.rfind(tower, 0) != 0);  // a LLaVA's language model and projector
      },
      layout.model_type + " model");
  vit->eval();
  return vit;
}

std::string hf_dinov2_config_json(const VitConfig& c, torch::ScalarType dtype) {
  PATHVLM_CHECK(c.class_token, "a ViT without a class token is not one Dinov2Model builds");
  const bool registers = c.reg_tokens > 0;
  json j = {{"architectures", {registers ? "Dinov2WithRegistersModel" : "Dinov2Model"}},
            {"model_type", registers ? "dinov2_with_registers" : "dinov2"},
            {"hidden_size", c.width},
            {"num_hidden_layers", c.depth},
            {"num_attention_heads", c.heads},
            {"mlp_ratio", dinov2_mlp_ratio(c)},
            {"use_swiglu_ffn", c.mlp == "swiglu"},
            {"hidden_act", "gelu"},
            {"layer_norm_eps", c.norm_eps},
            {"image_size", c.image_size},
            {"patch_size", c.patch_size},
            {"num_channels", 3},
            {"qkv_bias", true},
            {"layerscale_value", 1.0},
            {"drop_path_rate", 0.0},
            {"hidden_dropout_prob", 0.0},
            {"attention_probs_dropout_prob", 0.0},
            {"initializer_range", 0.02},
            {"torch_dtype", hf_dtype_name(dtype)}};
  if (registers) j["num_register_tokens"] = c.reg_tokens;
  return j.dump(2) + "\n";
}

safetensors::NamedTensors hf_dinov2_tensors(VitImpl& vit, const std::string& prefix, torch::ScalarType dtype) {
  const VitConfig& c = vit.config();
  hf_dinov2_config_json(c, dtype);  // refuses what Dinov2Model cannot express
  safetensors::NamedTensors t;
  const auto add = [&](const std::string& name, const torch::Tensor& value) {
    t.emplace_back(prefix + name, value.detach().to(torch::kCPU, torch::kFloat).to(dtype).contiguous());
  };
  const auto add_linear = [&](const std::string& name, const auto& layer) {
    add(name + ".weight", layer->weight);
    add(name + ".bias", layer->bias);
  };
  const int64_t width = c.width, prefix_tokens = c.prefix_tokens();
  // DINOv2 adds positions to the class token and the patches, then puts the registers between them.
  const auto positions = vit.pos_embed.detach().to(torch::kCPU, torch::kFloat);
  auto class_position = torch::zeros({1, 1, width});
  auto patch_positions = positions;
  torch::Tensor registers = c.reg_tokens > 0 ? vit.reg_token.detach().to(torch::kCPU, torch::kFloat) : torch::Tensor();
  if (!c.no_embed_class) {
    class_position = positions.narrow(1, 0, 1);
    if (registers.defined()) registers = registers + positions.narrow(1, 1, c.reg_tokens);
    patch_positions = positions.narrow(1, prefix_tokens, positions.size(1) - prefix_tokens);
  }
  add("embeddings.cls_token", vit.cls_token);
  add("embeddings.mask_token", torch::zeros({1, width}));  // masked pre-training's; unused by a forward pass
  if (registers.defined()) add("embeddings.register_tokens", registers);
  add("embeddings.position_embeddings", torch::cat({class_position, patch_positions}, 1));
  add_linear("embeddings.patch_embeddings.projection", vit.patch_embed);
  for (int i = 0; i < c.depth; ++i) {
    const std::string b = "encoder.layer." + std::to_string(i) + ".";
    auto& block = *vit.blocks->ptr<TransformerBlockImpl>(i);
    add_linear(b + "norm1", block.norm1.get<torch::nn::LayerNorm>());
    add_linear(b + "attention.attention.query", block.self_attn->q_proj);
    add_linear(b + "attention.attention.key", block.self_attn->k_proj);
    add_linear(b + "attention.attention.value", block.self_attn->v_proj);
    add_linear(b + "attention.output.dense", block.self_attn->out_proj);
    add(b + "layer_scale1.lambda1", torch::ones({width}));  // LayerScale is folded into the projections
    add_linear(b + "norm2", block.norm2.get<torch::nn::LayerNorm>());
    if (c.mlp == "gelu") {
      const auto& mlp = *block.mlp.get<Mlp>();
      add_linear(b + "mlp.fc1", mlp.fc1);
      add_linear(b + "mlp.fc2", mlp.fc2);
    } else {  // DINOv2's SwiGLU packs the gate, then the value
      const auto& mlp = *block.mlp.get<GatedMlp>();
      add(b + "mlp.weights_in.weight", torch::cat({mlp.gate_proj->weight, mlp.up_proj->weight}, 0));
      add(b + "mlp.weights_in.bias", torch::cat({mlp.gate_proj->bias, mlp.up_proj->bias}, 0));
      add_linear(b + "mlp.weights_out", mlp.down_proj);
    }
    add(b + "layer_scale2.lambda1", torch::ones({width}));
  }
  add_linear("layernorm", vit.norm);
  return t;
}

}  // namespace pathvlm::models
