#include "train/init_from.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/join.h"
#include "core/log.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace fs = std::filesystem;

namespace pathvlm::train {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t");
  if (begin == std::string::npos) return "";
  return s.substr(begin, s.find_last_not_of(" \t") - begin + 1);
}

// "a, b, c" of the first `count` names, with "..." when there are more.
std::string some(const std::vector<std::string>& names, size_t count = 3) {
  std::string out;
  for (size_t i = 0; i < std::min(count, names.size()); ++i) out += (i ? ", " : "") + names[i];
  return names.size() > count ? out + ", ..." : out;
}

std::string shape_text(const torch::IntArrayRef& sizes) { return str(sizes); }

}  // namespace

std::vector<Rename> parse_renames(const std::vector<std::string>& map, const std::string& key) {
  std::vector<Rename> out;
  for (const auto& entry : map) {
    const auto arrow = entry.find("->");
    PATHVLM_CHECK(arrow != std::string::npos, key, ": '", entry,
                  "' is not a rename of the form \"from_prefix -> to_prefix\" (e.g. \"model. -> llm.model.\")");
    out.push_back({trim(entry.substr(0, arrow)), trim(entry.substr(arrow + 2))});
  }
  return out;
}

std::string apply_renames(const std::vector<Rename>& renames, const std::string& name) {
  for (const auto& r : renames)
    if (name.rfind(r.from, 0) == 0) return r.to + name.substr(r.from.size());
  return name;
}

std::string resolve_weights(const std::string& path) {
  PATHVLM_CHECK(fs::exists(path), "train.init_from: '", path, "' does not exist");
  if (fs::is_directory(path + "/checkpoints")) {
    auto found = ckpt::find_latest_complete(path + "/checkpoints", [](const std::string& w) { log_warn(w); });
    PATHVLM_CHECK(found.has_value(), "train.init_from: run directory '", path,
                  "' has no complete checkpoint under checkpoints/");
    return found->dir;
  }
  if (fs::exists(path + "/trainer_state.json")) {
    ckpt::verify(path);  // a damaged checkpoint must not seed a run silently
    return path;
  }
  return path;  // safetensors::Checkpoint::open handles files, HF directories and sharded indexes
}

std::vector<KeyedInitSource> keyed_init_from(const std::vector<InitSource>& init_from) {
  std::vector<KeyedInitSource> out;
  for (size_t i = 0; i < init_from.size(); ++i) out.push_back({str("train.init_from[", i, "]"), init_from[i]});
  return out;
}

ckpt::External load_init_from(const std::vector<KeyedInitSource>& sources,
                              const std::vector<std::pair<std::string, torch::Tensor>>& targets) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> model;
  std::vector<std::string> model_order;
  for (const auto& [name, tensor] : targets) model.emplace(name, tensor), model_order.push_back(name);

  std::set<std::string> loaded_by_any;
  bool any_strict = false;
  ckpt::External provenance;
  for (size_t s = 0; s < sources.size(); ++s) {
    const auto& source = sources[s].source;
    const std::string& key = sources[s].key;
    const auto renames = parse_renames(source.map, key + ".map");
    const std::string weights = resolve_weights(source.path);
    auto checkpoint = ckpt::ModelTensors::open(weights);

    std::vector<std::string> unexpected;
    std::set<std::string> loaded;
    size_t skipped = 0;
    for (const auto& source_name : checkpoint.names()) {
      if (std::any_of(source.skip.begin(), source.skip.end(),
                      [&](const std::string& prefix) { return source_name.rfind(prefix, 0) == 0; })) {
        ++skipped;
        continue;
      }
      const std::string name = apply_renames(renames, source_name);
      auto it = model.find(name);
      if (it == model.end()) {
        unexpected.push_back(source_name == name ? name : str(source_name, " (as ", name, ")"));
        continue;
      }
      torch::Tensor& target = it->second;
      const auto& info = checkpoint.info(source_name);
      const auto where = checkpoint.source_of(source_name);
      PATHVLM_CHECK(torch::IntArrayRef(info.shape) == target.sizes(), key, ": tensor '", source_name, "' in '",
                    where.file, "' has shape ", shape_text(info.shape),
                    name == source_name ? std::string(", the model's has ") : str(", the model's '", name, "' has "),
                    shape_text(target.sizes()));
      PATHVLM_CHECK(loaded.insert(name).second, key, ": two tensors of '", weights, "' map to '", name,
                    "' (check ", key, ".map)");
      safetensors::check_convertible(info.dtype, target.scalar_type(), str(key, " ('", where.file, "')"), source_name);
      target.copy_(checkpoint.get(source_name));  // converts to the model's dtype and device
      if (!provenance.files.count(where.file)) {
        auto checked = checkpoint.checked_files().find(where.file);
        provenance.files[where.file] =
            checked != checkpoint.checked_files().end() ? checked->second : ckpt::describe_file(where.file);
      }
      provenance.tensors[name] = where;
    }
    std::vector<std::string> missing;
    for (const auto& name : model_order)
      if (!loaded.count(name)) missing.push_back(name);
    loaded_by_any.insert(loaded.begin(), loaded.end());
    any_strict = any_strict || source.strict;

    log_info("init_from ", source.path, weights == source.path ? "" : str(" (", weights, ")"), ": loaded ",
             loaded.size(), " of ", checkpoint.names().size(), " tensors",
             skipped == 0 ? "" : str(" (", skipped, " skipped)"), "; model tensors missing ", missing.size(),
             missing.empty() ? "" : str(" (", some(missing), ")"), "; unexpected ", unexpected.size(),
             unexpected.empty() ? "" : str(" (", some(unexpected), ")"));
    PATHVLM_CHECK(!source.strict || unexpected.empty(), key, " ('", source.path, "'): ", unexpected.size(),
                  " tensors match no model tensor: ", some(unexpected, 5),
                  " (add a rename to map, their prefix to skip, or set strict: false to load what matches)");
  }
  for (const auto& source : sources) {
    std::vector<std::string> absent;
    for (const auto& name : model_order)
      for (const auto& prefix : source.complete)
        if (name.rfind(prefix, 0) == 0 && !loaded_by_any.count(name)) absent.push_back(name);
    PATHVLM_CHECK(absent.empty(), source.key, " ('", source.source.path, "'): ", absent.size(), " tensors of ",
                  join(source.complete), " are in no source: ", some(absent, 5),
                  " (is it the model its config.json describes, in names its map covers?)");
  }
  if (!any_strict) return provenance;
  std::vector<std::string> never_loaded;
  for (const auto& name : model_order)
    if (!loaded_by_any.count(name)) never_loaded.push_back(name);
  PATHVLM_CHECK(never_loaded.empty(), "train.init_from: ", never_loaded.size(), " of ", model_order.size(),
                " model tensors are in no source: ", some(never_loaded, 5),
                " (strict sources must load every model tensor together; set strict: false to keep the rest as "
                "initialised)");
  return provenance;
}

}  // namespace pathvlm::train
