#include "train/parameters.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "core/config.h"
#include "core/error.h"
#include "core/log.h"

namespace pathvlm::train {

bool matches_parameter(const std::string& pattern, const std::string& name) {
  if (glob_match(pattern, name)) return true;
  for (size_t dot = name.find('.'); dot != std::string::npos; dot = name.find('.', dot + 1))
    if (glob_match(pattern, name.substr(0, dot))) return true;
  return false;
}

namespace {

// The real names nearest to a pattern that matched nothing (its `*` and `?` dropped), for the error.
std::string nearest_names(const std::string& pattern, const std::vector<ParameterInfo>& params, size_t count) {
  std::string literal;
  for (char ch : pattern)
    if (ch != '*' && ch != '?') literal += ch;
  std::vector<std::pair<size_t, std::string>> ranked;
  for (const auto& p : params) {
    // Compare with the name cut to the pattern's length too, so a module prefix is not penalised for its tail.
    const size_t whole = cfg::edit_distance(literal, p.name);
    const size_t head = cfg::edit_distance(literal, p.name.substr(0, literal.size()));
    ranked.emplace_back(std::min(whole, head), p.name);
  }
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  std::string out;
  for (size_t i = 0; i < std::min(count, ranked.size()); ++i) out += (i ? ", " : "") + ranked[i].second;
  return out;
}

void match_patterns(const std::string& key, const std::vector<std::string>& patterns,
                    const std::vector<ParameterInfo>& params, std::vector<bool>& matched,
                    std::vector<PatternUse>& uses) {
  for (const auto& pattern : patterns) {
    PatternUse use{key, pattern, 0, 0};
    for (size_t i = 0; i < params.size(); ++i) {
      if (!matches_parameter(pattern, params[i].name)) continue;
      matched[i] = true;
      ++use.tensors;
      use.elements += params[i].numel;
    }
    PATHVLM_CHECK(use.tensors > 0, key, ": '", pattern, "' matches no parameter name (", params.size(),
                  " parameters; the nearest: ", nearest_names(pattern, params, 5),
                  "). Patterns match a whole name or a dotted module prefix; * matches any characters");
    uses.push_back(std::move(use));
  }
}

// "blocks.3.attn.qkv.weight" -> "blocks.*.attn.qkv.weight".
std::string layers_as_star(const std::string& name) {
  std::string out;
  size_t begin = 0;
  while (true) {
    const size_t dot = name.find('.', begin);
    const std::string part = name.substr(begin, dot == std::string::npos ? std::string::npos : dot - begin);
    const bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); });
    out += (begin ? "." : "") + (numeric ? std::string("*") : part);
    if (dot == std::string::npos) return out;
    begin = dot + 1;
  }
}

}  // namespace

TrainableSelection select_trainable(const std::vector<ParameterInfo>& params, const std::vector<std::string>& freeze,
                                    const std::vector<std::string>& trainable) {
  TrainableSelection out;
  std::vector<bool> frozen(params.size(), false), kept(params.size(), false);
  match_patterns("train.freeze", freeze, params, frozen, out.uses);
  match_patterns("train.trainable", trainable, params, kept, out.uses);
  out.trained.resize(params.size());
  for (size_t i = 0; i < params.size(); ++i) out.trained[i] = params[i].task_trainable && (!frozen[i] || kept[i]);
  return out;
}

std::string trained_summary(const std::vector<ParameterInfo>& params, const std::vector<bool>& trained,
                            size_t max_entries) {
  struct Group {
    int64_t tensors = 0, trained_tensors = 0, trained_elements = 0;
    bool has_children = false;
  };
  std::map<std::string, Group> groups;
  std::vector<std::string> order;  // prefixes in first-seen order
  for (size_t i = 0; i < params.size(); ++i) {
    const std::string name = layers_as_star(params[i].name);
    for (size_t end = 0; end != std::string::npos;) {
      end = name.find('.', end + 1);
      const std::string prefix = name.substr(0, end);
      if (!groups.count(prefix)) order.push_back(prefix);
      Group& g = groups[prefix];
      ++g.tensors;
      g.trained_tensors += trained[i] ? 1 : 0;
      g.trained_elements += trained[i] ? params[i].numel : 0;
      g.has_children = g.has_children || end != std::string::npos;
    }
  }
  auto complete = [&](const std::string& prefix) {
    const Group& g = groups.at(prefix);
    return g.trained_tensors > 0 && g.trained_tensors == g.tensors;
  };
  std::vector<std::string> entries;
  bool all = !order.empty();
  for (const auto& prefix : order) {
    const auto dot = prefix.rfind('.');
    if (dot == std::string::npos) all = all && complete(prefix);
    if (!complete(prefix) || (dot != std::string::npos && complete(prefix.substr(0, dot)))) continue;
    const Group& g = groups.at(prefix);
    const std::string elements = g.trained_elements < 1000 ? std::to_string(g.trained_elements)
                                                           : format_count(static_cast<double>(g.trained_elements));
    entries.push_back(str(prefix, g.has_children ? ".*" : "", " (", g.tensors, g.tensors == 1 ? " tensor, " : " tensors, ",
                          elements, " params)"));
  }
  if (all) return str("everything (", params.size(), " tensors)");
  if (entries.empty()) return "nothing";
  std::string out;
  for (size_t i = 0; i < std::min(max_entries, entries.size()); ++i) out += (i ? ", " : "") + entries[i];
  if (entries.size() > max_entries) out += str(", and ", entries.size() - max_entries, " more");
  return out;
}

}  // namespace pathvlm::train
