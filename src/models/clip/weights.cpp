// CLIP weights: HF directories, open_clip state dicts and our checkpoints in; HF export directories out.
#include "models/clip/weights.h"

#include <yaml-cpp/yaml.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/config.h"
#include "core/error.h"
#include "core/json_fields.h"
#include "core/text_file.h"
#include "io/safetensors.h"
#include "models/llava/hf_layout.h"

namespace pathvlm::models {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Number of consecutive indices i with `prefix` i `suffix` present.
int count_blocks(const std::function<bool(const std::string&)>& has, const std::string& prefix,
                 const std::string& suffix) {
  int n = 0;
  while (has(str(prefix, n, suffix))) ++n;
  return n;
}

// CLIP towers use 64-dimensional heads; the head count is not visible in the tensors.
int heads_for(int width, const std::string& where, const char* tower) {
  PATHVLM_CHECK(width % 64 == 0, where, ": cannot infer the ", tower, " head count of width ", width,
                " (not a multiple of 64); load it from a directory with config.json instead");
  return width / 64;
}

// The open_clip <-> HF correspondence of one transformer block's LayerNorms, output projection and MLP.
const std::pair<const char*, const char*> kBlockRenames[] = {
    {"ln_1.weight", "layer_norm1.weight"},          {"ln_1.bias", "layer_norm1.bias"},
    {"ln_2.weight", "layer_norm2.weight"},          {"ln_2.bias", "layer_norm2.bias"},
    {"attn.out_proj.weight", "self_attn.out_proj.weight"}, {"attn.out_proj.bias", "self_attn.out_proj.bias"},
    {"mlp.c_fc.weight", "mlp.fc1.weight"},          {"mlp.c_fc.bias", "mlp.fc1.bias"},
    {"mlp.c_proj.weight", "mlp.fc2.weight"},        {"mlp.c_proj.bias", "mlp.fc2.bias"},
};
// Whole-model tensors renamed one to one (the projections are transposed separately).
const std::pair<const char*, const char*> kRenames[] = {
    {"visual.class_embedding", "vision_model.embeddings.class_embedding"},
    {"visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"},
    {"visual.positional_embedding", "vision_model.embeddings.position_embedding.weight"},
    {"visual.ln_pre.weight", "vision_model.pre_layrnorm.weight"},
    {"visual.ln_pre.bias", "vision_model.pre_layrnorm.bias"},
    {"visual.ln_post.weight", "vision_model.post_layernorm.weight"},
    {"visual.ln_post.bias", "vision_model.post_layernorm.bias"},
    {"token_embedding.weight", "text_model.embeddings.token_embedding.weight"},
    {"positional_embedding", "text_model.embeddings.position_embedding.weight"},
    {"ln_final.weight", "text_model.final_layer_norm.weight"},
    {"ln_final.bias", "text_model.final_layer_norm.bias"},
};
// Tensors a checkpoint may carry that are not CLIP parameters: buffers of older transformers / open_clip, and
// the SigLIP bias the clip task registers on the model (not part of an HF CLIPModel; re-initialised).
bool ignorable(const std::string& name) {
  auto ends_with = [&](const std::string& s) {
    return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with("position_ids") || name == "attn_mask" || ends_with(".attn_mask") || name == "logit_bias";
}

// The parameters ClipModelImpl itself registers (a task may register more on the module, e.g. logit_bias).
bool is_clip_parameter(const std::string& name) {
  for (const char* prefix : {"vision_model.", "text_model.", "visual_projection.", "text_projection."}) {
    if (name.rfind(prefix, 0) == 0) return true;
  }
  return name == "logit_scale";
}

// Loads HF-named tensors from `ckpt` into `model` and rejects tensors the model does not have.
void load_hf_named(ClipModel& model, const safetensors::Checkpoint& ckpt, const std::string& prefix,
                   const std::string& where) {
  load_clip_state(model, [&](const std::string& name) {
    PATHVLM_CHECK(ckpt.contains(prefix + name), where, ": lacks tensor '", prefix + name, "'");
    return ckpt.get(prefix + name);
  }, where);
  std::set<std::string> params;
  for (const auto& item : model->named_parameters()) {
    if (is_clip_parameter(item.key())) params.insert(prefix + item.key());
  }
  std::vector<std::string> extra;
  for (const auto& name : ckpt.names()) {
    if (!params.count(name) && !ignorable(name) && name.rfind(prefix, 0) == 0) extra.push_back(name);
  }
  PATHVLM_CHECK(extra.empty(), where, ": ", extra.size(), " tensors are not CLIP parameters, e.g. '", 
                extra.empty() ? "" : extra.front(), "' (a different architecture?)");
}

// The clip.model section of a resolved run config (YAML text), checked like any config.
YAML::Node parse_run_config(const std::string& yaml_text, const std::string& where) {
  try {
    return YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    throw Error(str(where, ": the run config is not valid YAML: ", e.what()));
  }
}

ClipModelConfig clip_section_of_run_config(const std::string& yaml_text, const std::string& where) {
  const YAML::Node root = parse_run_config(yaml_text, where);
  PATHVLM_CHECK(root.IsMap() && root["clip"] && root["clip"]["model"], where,
                ": the run config has no clip.model section (not a CLIP run?)");
  YAML::Emitter out;
  out << root["clip"]["model"];
  return cfg::read<ClipModelConfig>(cfg::Document::from_string(out.c_str(), where + " (clip.model)"));
}

// A checkpoint step directory's trainer_state.json, checked to hold the run's resolved config.
json read_trainer_state(const fs::path& dir) {
  auto state_path = dir / "trainer_state.json";
  json state;
  try {
    state = json::parse(read_text_file(state_path));
  } catch (const json::exception& e) {
    throw Error(str("checkpoint '", state_path.string(), "': not valid JSON: ", e.what()));
  }
  PATHVLM_CHECK(state.contains("config") && state["config"].is_string(), "checkpoint '", state_path.string(),
                "': has no resolved config");
  return state;
}

// The checkpoint a run directory's checkpoints/latest names ("" when `p` is no run directory).
fs::path latest_step_dir(const fs::path& p) {
  if (!fs::exists(p / "checkpoints" / "latest")) return {};
  std::string step = read_text_file(p / "checkpoints" / "latest");
  while (!step.empty() && std::isspace(static_cast<unsigned char>(step.back()))) step.pop_back();
  fs::path dir = fs::path(step).is_absolute() ? fs::path(step) : p / "checkpoints" / fs::path(step).filename();
  PATHVLM_CHECK(fs::is_directory(dir), "run '", p.string(), "': checkpoints/latest names '", step,
                "', which is not a directory");
  return dir;
}

ClipModel load_step_dir(const fs::path& dir, const ClipLoadOptions& options) {
  const std::string where = dir.string();
  const json state = read_trainer_state(dir);
  // A partial checkpoint's frozen tensors live in their init_from sources; ckpt::ModelTensors reads them, but
  // it belongs to the train library, which builds on this one (and wsi links models without train).
  PATHVLM_CHECK(!state.contains("external"), "checkpoint '", where, "' is partial: ",
                state["external"].is_object() ? state["external"].value("tensors", json::object()).size() : 0,
                " frozen tensors are not in its model.safetensors but in the init_from sources listed under "
                "'external' in trainer_state.json; CLIP tools read only full weights: use the run's export/ "
                "(checkpoint.export_final) instead");
  auto config = resolve_clip_config(clip_section_of_run_config(state["config"].get<std::string>(), where));
  auto ckpt = safetensors::Checkpoint::open((dir / "model.safetensors").string());
  ClipModel model(config, /*init_weights=*/false);  // the load sets every parameter
  load_hf_named(model, ckpt, "", "checkpoint '" + (dir / "model.safetensors").string() + "'");
  return model;
}

ClipModel load_safetensors_file(const fs::path& file, const ClipLoadOptions& options) {
  const std::string where = "CLIP weights '" + file.string() + "'";
  auto ckpt = safetensors::Checkpoint::open(file.string());
  const bool open_clip = ckpt.contains("visual.conv1.weight") || ckpt.contains("module.visual.conv1.weight");
  const std::string prefix = ckpt.contains("module.visual.conv1.weight") ? "module." : "";
  PATHVLM_CHECK(open_clip || ckpt.contains("vision_model.embeddings.patch_embedding.weight"), where,
                ": neither open_clip names (visual.conv1.weight) nor Hugging Face CLIP names "
                "(vision_model.embeddings.patch_embedding.weight)");
  ClipModelConfig base;
  base.hidden_act = options.hidden_act.empty() ? "quick_gelu" : options.hidden_act;
  auto open_clip_config = file.parent_path() / "open_clip_config.json";
  if (open_clip && options.hidden_act.empty() && fs::exists(open_clip_config)) {
    const std::string at = "'" + open_clip_config.string() + "'";
    const json j = json_fields::parse(read_text_file(open_clip_config), at);
    const json model_cfg = json_fields::present(j, "model_cfg") ? j.at("model_cfg") : json::object();
    PATHVLM_CHECK(model_cfg.is_object(), at, ": 'model_cfg' must be an object, got ", model_cfg.dump());
    base.hidden_act = json_fields::bool_or(model_cfg, "quick_gelu", false, at + ": model_cfg") ? "quick_gelu" : "gelu";
  }
  auto has = [&](const std::string& n) { return ckpt.contains(prefix + n); };
  auto shape = [&](const std::string& n) {
    PATHVLM_CHECK(has(n), where, ": lacks tensor '", prefix + n, "'");
    return ckpt.info(prefix + n).shape;
  };
  auto config = infer_clip_config(has, shape, base, where);
  ClipModel model(config, /*init_weights=*/false);  // the load sets every parameter
  if (!open_clip) {
    load_hf_named(model, ckpt, "", where);
    return model;
  }
  std::set<std::string> used;
  auto get = [&](const std::string& n) {
    PATHVLM_CHECK(has(n), where, ": lacks tensor '", prefix + n, "'");
    used.insert(prefix + n);
    return ckpt.get(prefix + n);
  };
  auto named = open_clip_to_hf(model->config(), get);
  std::map<std::string, torch::Tensor> by_name(named.begin(), named.end());
  load_clip_state(model, [&](const std::string& n) { return by_name.at(n); }, where);
  for (const auto& name : ckpt.names()) {
    PATHVLM_CHECK(used.count(name) || ignorable(name), where, ": tensor '", name,
                  "' is not part of an open_clip ViT CLIP (attention pooling, CoCa or SigLIP models are not supported)");
  }
  return model;
}

}  // namespace

// ---- config inference ------------------------------------------------------------------------------

ClipModelConfig infer_clip_config(const std::function<bool(const std::string&)>& has,
                                  const std::function<std::vector<int64_t>(const std::string&)>& shape,
                                  const ClipModelConfig& base, const std::string& where) {
  ClipModelConfig c = base;
  const bool open_clip = has("visual.conv1.weight");
  auto dim = [&](const std::string& name, size_t axis) -> int {
    auto s = shape(name);
    PATHVLM_CHECK(axis < s.size(), where, ": tensor '", name, "' has ", s.size(), " dimensions");
    // 0 would mean "the preset's value" to resolve_clip_config: an empty tensor must not pass as a size.
    PATHVLM_CHECK(s[axis] > 0 && s[axis] <= std::numeric_limits<int>::max(), where, ": tensor '", name, "' has size ",
                  s[axis], " on axis ", axis, ", not a model size");
    return static_cast<int>(s[axis]);
  };
  int positions;
  if (open_clip) {
    c.vision_width = dim("visual.conv1.weight", 0);
    c.patch_size = dim("visual.conv1.weight", 2);
    positions = dim("visual.positional_embedding", 0);
    c.vision_layers = count_blocks(has, "visual.transformer.resblocks.", ".attn.in_proj_weight");
    c.vision_mlp_dim = dim("visual.transformer.resblocks.0.mlp.c_fc.weight", 0);
    c.text_width = dim("ln_final.weight", 0);
    c.context_length = dim("positional_embedding", 0);
    c.vocab_size = dim("token_embedding.weight", 0);
    c.text_layers = count_blocks(has, "transformer.resblocks.", ".attn.in_proj_weight");
    c.text_mlp_dim = dim("transformer.resblocks.0.mlp.c_fc.weight", 0);
    c.embed_dim = dim("text_projection", 1);
  } else {
    c.vision_width = dim("vision_model.embeddings.patch_embedding.weight", 0);
    c.patch_size = dim("vision_model.embeddings.patch_embedding.weight", 2);
    positions = dim("vision_model.embeddings.position_embedding.weight", 0);
    c.vision_layers = count_blocks(has, "vision_model.encoder.layers.", ".self_attn.q_proj.weight");
    c.vision_mlp_dim = dim("vision_model.encoder.layers.0.mlp.fc1.weight", 0);
    c.text_width = dim("text_model.final_layer_norm.weight", 0);
    c.context_length = dim("text_model.embeddings.position_embedding.weight", 0);
    c.vocab_size = dim("text_model.embeddings.token_embedding.weight", 0);
    c.text_layers = count_blocks(has, "text_model.encoder.layers.", ".self_attn.q_proj.weight");
    c.text_mlp_dim = dim("text_model.encoder.layers.0.mlp.fc1.weight", 0);
    c.embed_dim = dim("text_projection.weight", 0);
  }
  const int grid = static_cast<int>(std::lround(std::sqrt(std::max(positions - 1, 0))));
  PATHVLM_CHECK(grid * grid + 1 == positions, where, ": ", positions,
                " image position embeddings is not 1 + a square number of patches");
  c.image_size = grid * c.patch_size;
  c.vision_heads = heads_for(c.vision_width, where, "image");
  c.text_heads = heads_for(c.text_width, where, "text");
  return resolve_clip_config(c);
}

// ---- state dicts -----------------------------------------------------------------------------------

void load_clip_state(ClipModel& model, const std::function<torch::Tensor(const std::string&)>& get,
                     const std::string& where) {
  torch::NoGradGuard no_grad;
  for (auto& item : model->named_parameters()) {
    if (!is_clip_parameter(item.key())) continue;
    auto& param = item.value();
    auto tensor = get(item.key());
    if (param.dim() == 0 && tensor.numel() == 1) tensor = tensor.reshape({});  // logit_scale saved as [1]
    PATHVLM_CHECK(tensor.sizes() == param.sizes(), where, ": tensor '", item.key(), "' has shape ", tensor.sizes(),
                  ", the model expects ", param.sizes());
    safetensors::check_convertible(tensor.scalar_type(), param.scalar_type(), where, item.key());
    param.copy_(tensor.to(param.device(), param.scalar_type()));
  }
}

std::vector<std::pair<std::string, torch::Tensor>> open_clip_to_hf(
    const ClipModelConfig& config, const std::function<torch::Tensor(const std::string&)>& get) {
  const auto c = resolve_clip_config(config);
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [from, to] : kRenames) out.emplace_back(to, get(from));
  auto blocks = [&](const std::string& from, const std::string& to, int layers) {
    for (int i = 0; i < layers; ++i) {
      const std::string src = str(from, i, "."), dst = str(to, i, ".");
      auto qkv_w = get(src + "attn.in_proj_weight").chunk(3, 0);
      auto qkv_b = get(src + "attn.in_proj_bias").chunk(3, 0);
      const char* names[] = {"q_proj", "k_proj", "v_proj"};
      for (int k = 0; k < 3; ++k) {
        out.emplace_back(dst + "self_attn." + names[k] + ".weight", qkv_w[k]);
        out.emplace_back(dst + "self_attn." + names[k] + ".bias", qkv_b[k]);
      }
      for (const auto& [a, b] : kBlockRenames) out.emplace_back(dst + b, get(src + a));
    }
  };
  blocks("visual.transformer.resblocks.", "vision_model.encoder.layers.", c.vision_layers);
  blocks("transformer.resblocks.", "text_model.encoder.layers.", c.text_layers);
  // open_clip projects with x @ proj ([width, embed]); nn.Linear stores [embed, width].
  out.emplace_back("visual_projection.weight", get("visual.proj").t());
  out.emplace_back("text_projection.weight", get("text_projection").t());
  out.emplace_back("logit_scale", get("logit_scale"));
  return out;
}

std::vector<std::pair<std::string, torch::Tensor>> hf_to_open_clip(ClipModel& model) {
  std::map<std::string, torch::Tensor> p;
  for (const auto& item : model->named_parameters()) p[item.key()] = item.value().detach();
  const auto& c = model->config();
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& [open_clip_name, hf_name] : kRenames) out.emplace_back(open_clip_name, p.at(hf_name));
  auto blocks = [&](const std::string& hf, const std::string& oc, int layers) {
    for (int i = 0; i < layers; ++i) {
      const std::string src = str(hf, i, ".self_attn."), dst = str(oc, i, ".");
      out.emplace_back(dst + "attn.in_proj_weight",
                       torch::cat({p.at(src + "q_proj.weight"), p.at(src + "k_proj.weight"), p.at(src + "v_proj.weight")}));
      out.emplace_back(dst + "attn.in_proj_bias",
                       torch::cat({p.at(src + "q_proj.bias"), p.at(src + "k_proj.bias"), p.at(src + "v_proj.bias")}));
      for (const auto& [a, b] : kBlockRenames) out.emplace_back(dst + a, p.at(str(hf, i, ".") + b));
    }
  };
  blocks("vision_model.encoder.layers.", "visual.transformer.resblocks.", c.vision_layers);
  blocks("text_model.encoder.layers.", "transformer.resblocks.", c.text_layers);
  out.emplace_back("visual.proj", p.at("visual_projection.weight").t().contiguous());
  out.emplace_back("text_projection", p.at("text_projection.weight").t().contiguous());
  out.emplace_back("logit_scale", p.at("logit_scale"));
  return out;
}

// ---- load / export ---------------------------------------------------------------------------------

std::string clip_vocab_of(const std::string& path) {
  const fs::path p(path);
  if (!fs::is_directory(p)) return "";
  if (fs::exists(p / "vocab.json") && fs::exists(p / "merges.txt")) return path;
  fs::path step = fs::exists(p / "trainer_state.json") ? p : latest_step_dir(p);
  if (step.empty()) return "";
  const YAML::Node root = parse_run_config(read_trainer_state(step)["config"].get<std::string>(), step.string());
  const auto vocab = root["clip"] && root["clip"]["vocab"] ? root["clip"]["vocab"].as<std::string>("") : "";
  return !vocab.empty() && fs::exists(vocab) ? vocab : "";
}

ClipModel load_clip(const std::string& path, const ClipLoadOptions& options) {
  const fs::path p(path);
  PATHVLM_CHECK(fs::exists(p), "CLIP weights '", path, "': no such file or directory");
  if (fs::is_directory(p)) {
    if (fs::exists(p / "config.json")) {
      auto config = parse_hf_clip_config(read_text_file(p / "config.json"), "'" + (p / "config.json").string() + "'");
      auto ckpt = safetensors::Checkpoint::open(path);
      ClipModel model(config, /*init_weights=*/false);  // the load sets every parameter
      load_hf_named(model, ckpt, "", "CLIP weights '" + path + "'");
      return model;
    }
    if (fs::exists(p / "trainer_state.json")) return load_step_dir(p, options);
    if (const auto step = latest_step_dir(p); !step.empty()) return load_step_dir(step, options);
    if (fs::exists(p / "model.safetensors")) return load_safetensors_file(p / "model.safetensors", options);
    // A hub directory holding only pickles (open_clip_pytorch_model.bin, CONCH's pytorch_model.bin): the conversion.
    for (const auto& entry : fs::directory_iterator(p))
      PATHVLM_CHECK(!safetensors::is_pickle_file(entry.path().string()),
                    safetensors::pickle_refusal(str("'", path, "' (", entry.path().filename().string(), ")"), path));
    throw Error(str("CLIP weights '", path, "': not a CLIP directory (no config.json, trainer_state.json, "
                    "checkpoints/latest or model.safetensors)"));
  }
  return load_safetensors_file(p, options);
}

ClipModel load_clip_image_tower(const std::string& path, const ClipLoadOptions& options) {
  const fs::path config_file = fs::path(path) / "config.json";
  if (!fs::is_directory(path) || !fs::exists(config_file)) return load_clip(path, options);
  const std::string where = "'" + config_file.string() + "'";
  const json j = json_fields::parse(read_text_file(config_file), where);
  const auto type = j.is_object() ? json_fields::string_or(j, "model_type", "", where) : "";
  if (type != "clip_vision_model" && type != "llava") return load_clip(path, options);

  json vision = type == "llava" ? j.value("vision_config", json::object()) : j;
  PATHVLM_CHECK(vision.is_object(), where, ": vision_config is not an object");
  const auto vision_type = json_fields::string_or(vision, "model_type", "clip_vision_model", where + ": vision_config");
  PATHVLM_CHECK(vision_type == "clip_vision_model", where, ": the vision tower is a ", vision_type,
                ", not a CLIP image tower (clip_vision_model)");
  // A one-layer text tower of the tower's activation and LayerNorm eps stands in for the one the source lacks.
  json text = {{"hidden_size", 64}, {"intermediate_size", 64}, {"num_hidden_layers", 1}, {"num_attention_heads", 1},
               {"vocab_size", 2},   {"max_position_embeddings", 2}};
  for (const char* key : {"hidden_act", "layer_norm_eps"})
    if (vision.contains(key)) text[key] = vision[key];
  json whole = {{"model_type", "clip"}, {"vision_config", vision}, {"text_config", text}};
  if (vision.contains("projection_dim")) whole["projection_dim"] = vision["projection_dim"];
  const auto config = parse_hf_clip_config(whole.dump(), where);

  const auto ckpt = safetensors::Checkpoint::open(path);
  std::string prefix;  // before vision_model.*
  if (type == "llava") {
    const auto layout = HfLlavaLayout::of([&](const std::string& name) { return ckpt.contains(name); });
    PATHVLM_CHECK(layout, "CLIP weights '", path, "': a LlavaForConditionalGeneration config, but the weights hold "
                  "no language model under transformers' names (language_model.model.* or model.language_model.*)");
    prefix = layout->vision_tower;
  }
  const std::string tower_where = "CLIP image tower '" + path + "'";
  ClipModel model(config, /*init_weights=*/false);
  auto params = model->named_parameters();
  std::set<std::string> tower;
  load_clip_state(model, [&](const std::string& name) -> torch::Tensor {
    if (name.rfind("vision_model.", 0) != 0) return torch::zeros_like(params[name]);  // the placeholders
    PATHVLM_CHECK(ckpt.contains(prefix + name), tower_where, ": lacks tensor '", prefix + name, "'");
    tower.insert(prefix + name);
    return ckpt.get(prefix + name);
  }, tower_where);
  for (const auto& name : ckpt.names())
    PATHVLM_CHECK(tower.count(name) || ignorable(name) || name.rfind(prefix + "vision_model.", 0) != 0, tower_where,
                  ": tensor '", name, "' is not a parameter of the image tower ", where, " describes");
  return model;
}

void export_hf_clip(ClipModel& model, const ClipModelConfig& config, const std::string& out_dir,
                    torch::ScalarType dtype) {
  const auto c = resolve_clip_config(config);
  PATHVLM_CHECK(describe(c) == describe(model->config()), "export '", out_dir, "': config (", describe(c),
                ") does not describe the model (", describe(model->config()), ")");
  std::error_code ec;
  fs::create_directories(out_dir, ec);
  PATHVLM_CHECK(!ec, "export '", out_dir, "': cannot create the directory: ", ec.message());
  safetensors::NamedTensors tensors;
  for (const auto& item : model->named_parameters()) {
    if (!is_clip_parameter(item.key())) continue;
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, dtype).contiguous());
  }
  safetensors::save((fs::path(out_dir) / "model.safetensors").string(), tensors, {{"format", "pt"}});
  write_text_file(fs::path(out_dir) / "config.json", hf_clip_config_json(c, dtype));
  write_text_file(fs::path(out_dir) / "preprocessor_config.json", hf_clip_preprocessor_config_json(c));
}

torch::Tensor resize_text_positions(const torch::Tensor& table, int64_t context_length) {
  PATHVLM_CHECK(table.dim() == 2 && context_length >= 1, "text positions: expected a [L,W] table and a length >= 1");
  const int64_t rows = table.size(0);
  if (context_length <= rows) return table.slice(0, 0, context_length).clone();
  namespace F = torch::nn::functional;
  auto stretched = F::interpolate(table.to(torch::kFloat).t().unsqueeze(0),
                                  F::InterpolateFuncOptions()
                                      .size(std::vector<int64_t>{context_length})
                                      .mode(torch::kLinear)
                                      .align_corners(true));
  return stretched.squeeze(0).t().contiguous().to(table.scalar_type());
}

}  // namespace pathvlm::models
