#include "models/lora/apply.h"

#include <algorithm>
#include <set>

#include "core/error.h"
#include "core/glob.h"

namespace pathvlm::models {
namespace {

// For an error: the distinct last names of the layers and a few whole paths.
std::string describe_layers(const NamedLinears& layers) {
  if (layers.empty()) return "the module has no Linear layer";
  std::set<std::string> names;
  for (const auto& [path, layer] : layers) names.insert(path.substr(path.rfind('.') + 1));
  std::string out = str(layers.size(), " Linear layers, named ");
  size_t i = 0;
  for (const auto& name : names) out += (i++ ? ", " : "") + name;
  out += "; e.g. ";
  for (size_t k = 0; k < std::min<size_t>(4, layers.size()); ++k) out += (k ? ", " : "") + layers[k].first;
  return out;
}

}  // namespace

NamedLinears linear_layers(torch::nn::Module& module) {
  NamedLinears out;
  for (const auto& item : module.named_modules("", /*include_self=*/false))
    if (auto linear = std::dynamic_pointer_cast<LinearImpl>(item.value())) out.emplace_back(item.key(), linear);
  return out;
}

bool matches_module(const std::string& target, const std::string& path) {
  return glob_match(target, path) || glob_match("*." + target, path);
}

std::vector<std::string> apply_lora(torch::nn::Module& module, const std::vector<std::string>& targets,
                                    const LoraOptions& options) {
  PATHVLM_CHECK(!targets.empty(), "lora: no target modules given");
  const auto layers = linear_layers(module);
  std::vector<bool> chosen(layers.size(), false);
  for (const auto& target : targets) {
    bool any = false;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (!matches_module(target, layers[i].first)) continue;
      chosen[i] = any = true;
    }
    PATHVLM_CHECK(any, "lora: target '", target, "' matches no Linear layer (", describe_layers(layers),
                  "). A target is a module path or its last names (q_proj), * and ? are globs");
  }
  // Checked before any change, so a failing call leaves the model as it was.
  for (size_t i = 0; i < layers.size(); ++i)
    PATHVLM_CHECK(!chosen[i] || !layers[i].second->has_lora(), "lora: layer '", layers[i].first,
                  "' has an adapter already");
  std::vector<std::string> adapted;
  for (size_t i = 0; i < layers.size(); ++i) {
    if (!chosen[i]) continue;
    layers[i].second->add_lora(options);
    adapted.push_back(layers[i].first);
  }
  return adapted;
}

NamedLinears lora_layers(torch::nn::Module& module) {
  auto layers = linear_layers(module);
  layers.erase(std::remove_if(layers.begin(), layers.end(), [](const auto& l) { return !l.second->has_lora(); }),
               layers.end());
  return layers;
}

int64_t merge_lora(torch::nn::Module& module) {
  const auto layers = lora_layers(module);
  for (const auto& [path, layer] : layers) layer->merge_lora();
  return static_cast<int64_t>(layers.size());
}

const std::vector<std::string>& lora_parameter_patterns() {
  static const std::vector<std::string> patterns{"*.lora_A.weight", "*.lora_B.weight"};
  return patterns;
}

bool is_lora_parameter(const std::string& name) {
  for (const auto& pattern : lora_parameter_patterns())
    if (glob_match(pattern, name)) return true;
  return false;
}

}  // namespace pathvlm::models
