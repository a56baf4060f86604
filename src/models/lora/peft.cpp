#include "models/lora/peft.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/json_fields.h"
#include "io/safetensors.h"
#include "models/lora/apply.h"

namespace pathvlm::models {
namespace fs = std::filesystem;

namespace {

const std::string kA = ".lora_A.weight", kB = ".lora_B.weight";
// The PEFT release whose adapter layout and config keys these files follow.
const char* const kPeftVersion = "0.20.1.dev0";

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool same_options(const LoraOptions& a, const LoraOptions& b) {
  return a.r() == b.r() && a.alpha() == b.alpha() && a.dropout() == b.dropout() && a.use_rslora() == b.use_rslora();
}

// PEFT writes integral alphas as ints (lora_alpha=16).
nlohmann::json number(double v) {
  if (v == std::floor(v) && std::abs(v) < 1e15) return static_cast<int64_t>(v);
  return v;
}

}  // namespace

void save_peft_adapter(torch::nn::Module& module, const std::string& dir, const std::string& base_model_name_or_path,
                       const std::string& prefix) {
  const auto layers = lora_layers(module);
  PATHVLM_CHECK(!layers.empty(), "peft adapter '", dir, "': the model has no LoRA adapter to save");
  const LoraOptions options = layers.front().second->lora_options();
  safetensors::NamedTensors tensors;
  std::set<std::string> target_names;
  for (const auto& [path, layer] : layers) {
    PATHVLM_CHECK(same_options(layer->lora_options(), options), "peft adapter '", dir, "': layer '", path,
                  "' has other LoRA options (r ", layer->lora_options().r(), ", alpha ", layer->lora_options().alpha(),
                  ") than '", layers.front().first, "' (r ", options.r(), ", alpha ", options.alpha(),
                  "); one adapter_config.json describes one setting");
    tensors.emplace_back(prefix + path + kA, layer->lora_A.detach());
    tensors.emplace_back(prefix + path + kB, layer->lora_B.detach());
    target_names.insert(path.substr(path.rfind('.') + 1));
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  PATHVLM_CHECK(!ec, "peft adapter: cannot create '", dir, "': ", ec.message());
  safetensors::save(dir + "/adapter_model.safetensors", tensors, {{"format", "pt"}});

  // The keys PEFT's LoraConfig writes, with its defaults where this layer has no choice.
  nlohmann::json config = {
      {"alpha_pattern", nlohmann::json::object()},
      {"auto_mapping", nullptr},
      {"base_model_name_or_path", base_model_name_or_path.empty() ? nlohmann::json(nullptr)
                                                                 : nlohmann::json(base_model_name_or_path)},
      {"bias", "none"},
      {"fan_in_fan_out", false},
      {"inference_mode", true},
      {"init_lora_weights", true},
      {"layers_pattern", nullptr},
      {"layers_to_transform", nullptr},
      {"lora_alpha", number(options.alpha())},
      {"lora_dropout", options.dropout()},
      {"modules_to_save", nullptr},
      {"peft_type", "LORA"},
      {"peft_version", kPeftVersion},
      {"r", options.r()},
      {"rank_pattern", nlohmann::json::object()},
      {"revision", nullptr},
      {"target_modules", std::vector<std::string>(target_names.begin(), target_names.end())},
      {"task_type", "CAUSAL_LM"},
      {"use_rslora", options.use_rslora()},
  };
  const std::string path = dir + "/adapter_config.json";
  std::ofstream out(path, std::ios::binary);
  out << config.dump(2) << "\n";  // nlohmann's objects keep keys sorted, as PEFT's sort_keys
  out.close();
  PATHVLM_CHECK(out, "peft adapter: cannot write '", path, "'");
}

LoraOptions read_peft_config(const std::string& dir) {
  const std::string path = dir + "/adapter_config.json";
  std::ifstream in(path, std::ios::binary);
  PATHVLM_CHECK(in, "peft adapter: cannot read '", path, "'");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("peft adapter '", path, "': not valid JSON: ", e.what()));
  }
  const std::string where = str("peft adapter '", path, "'");
  PATHVLM_CHECK(j.is_object() && json_fields::string_or(j, "peft_type", "", where) == "LORA", where,
                ": peft_type is not LORA");
  PATHVLM_CHECK(json_fields::present(j, "r"), where, ": r is missing");
  auto unsupported = [&](const char* key, bool present) {
    PATHVLM_CHECK(!present, where, ": ", key, " = ", j[key].dump(), " is not supported");
  };
  auto flag = [&](const char* key) { return j.contains(key) && j[key].is_boolean() && j[key].get<bool>(); };
  auto non_empty = [&](const char* key) { return j.contains(key) && !j[key].is_null() && !j[key].empty(); };
  unsupported("fan_in_fan_out", flag("fan_in_fan_out"));
  unsupported("use_dora", flag("use_dora"));
  unsupported("lora_bias", flag("lora_bias"));
  unsupported("bias", j.contains("bias") && j["bias"] != "none");
  unsupported("rank_pattern", non_empty("rank_pattern"));
  unsupported("alpha_pattern", non_empty("alpha_pattern"));
  unsupported("modules_to_save", non_empty("modules_to_save"));
  const int64_t r = json_fields::integer_or(j, "r", 0, where);
  PATHVLM_CHECK(r >= 1, where, ": r must be at least 1, got ", r);
  // PEFT's defaults for absent keys: lora_alpha 8, lora_dropout 0, use_rslora false.
  const double dropout = json_fields::number_or(j, "lora_dropout", 0.0, where);
  PATHVLM_CHECK(dropout >= 0.0 && dropout < 1.0, where, ": lora_dropout must be in [0, 1), got ", dropout);
  return LoraOptions(r, json_fields::number_or(j, "lora_alpha", 8.0, where))
      .dropout(dropout)
      .use_rslora(json_fields::bool_or(j, "use_rslora", false, where));
}

std::vector<std::string> load_peft_adapter(torch::nn::Module& module, const std::string& dir,
                                           const std::string& prefix) {
  const LoraOptions options = read_peft_config(dir);
  const std::string file = dir + "/adapter_model.safetensors";
  const auto weights = safetensors::File::open(file);
  std::map<std::string, std::pair<std::string, std::string>> names;  // layer path -> (A name, B name)
  for (const auto& info : weights.tensors()) {
    const auto& name = info.name;
    PATHVLM_CHECK(name.compare(0, prefix.size(), prefix) == 0, "peft adapter '", file, "': tensor '", name,
                  "' does not start with '", prefix, "'");
    const bool a = ends_with(name, kA);
    PATHVLM_CHECK(a || ends_with(name, kB), "peft adapter '", file, "': tensor '", name,
                  "' is not a LoRA weight (<layer>.lora_A.weight / .lora_B.weight)");
    const auto path = name.substr(prefix.size(), name.size() - prefix.size() - kA.size());
    (a ? names[path].first : names[path].second) = name;
  }
  PATHVLM_CHECK(!names.empty(), "peft adapter '", file, "': holds no tensor");

  // Every check before any change, so a failing load leaves the model as it was.
  struct Pending {
    std::string path;
    std::shared_ptr<LinearImpl> layer;
    torch::Tensor a, b;
  };
  std::vector<Pending> pending;
  for (const auto& [path, layer] : linear_layers(module)) {
    auto found = names.find(path);
    if (found == names.end()) continue;
    const auto& [a_name, b_name] = found->second;
    PATHVLM_CHECK(!a_name.empty() && !b_name.empty(), "peft adapter '", file, "': layer '", path, "' has only ",
                  a_name.empty() ? b_name : a_name);
    PATHVLM_CHECK(!layer->has_lora(), "peft adapter '", file, "': layer '", path, "' has an adapter already");
    for (const auto& name : {a_name, b_name})
      safetensors::check_convertible(weights.info(name).dtype, layer->weight.scalar_type(),
                                     str("peft adapter '", file, "'"), name);
    auto a = weights.get(a_name), b = weights.get(b_name);
    const std::vector<int64_t> a_shape{options.r(), layer->in_features}, b_shape{layer->out_features, options.r()};
    PATHVLM_CHECK(a.sizes() == a_shape, "peft adapter '", file, "': tensor '", a_name, "' has shape ", a.sizes(),
                  ", the layer wants ", torch::IntArrayRef(a_shape), " (r ", options.r(), ")");
    PATHVLM_CHECK(b.sizes() == b_shape, "peft adapter '", file, "': tensor '", b_name, "' has shape ", b.sizes(),
                  ", the layer wants ", torch::IntArrayRef(b_shape), " (r ", options.r(), ")");
    pending.push_back({path, layer, a, b});
    names.erase(found);
  }
  if (!names.empty()) {
    const auto& [path, tensors] = *names.begin();
    throw Error(str("peft adapter '", file, "': tensor '", tensors.first.empty() ? tensors.second : tensors.first,
                    "' names no Linear layer of the model ('", path, "')"));
  }
  std::vector<std::string> loaded;
  torch::NoGradGuard no_grad;
  for (auto& p : pending) {
    p.layer->add_lora(options);
    p.layer->lora_A.copy_(p.a);
    p.layer->lora_B.copy_(p.b);
    loaded.push_back(p.path);
  }
  return loaded;
}

}  // namespace pathvlm::models
