#include "eval/support_set.h"

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "eval/vqa.h"

namespace pathvlm::eval {
namespace {

using nlohmann::json;

const json& field(const json& object, const char* key, const std::string& where) {
  PATHVLM_CHECK(object.contains(key), where, " has no '", key, "'");
  return object[key];
}

std::string string_field(const json& object, const char* key, const std::string& where) {
  const json& v = field(object, key, where);
  PATHVLM_CHECK(v.is_string() && !v.get<std::string>().empty(), where, ": '", key, "' must be a non-empty string");
  return v.get<std::string>();
}

SupportClass read_class(const json& entry, const std::string& where) {
  PATHVLM_CHECK(entry.is_object(), where, " is not an object");
  SupportClass c;
  const json& label = field(entry, "label", where);
  PATHVLM_CHECK(label.is_number_integer(), where, ": 'label' must be an integer");
  c.label = label.get<int64_t>();
  c.key = string_field(entry, "class", where);
  c.name = string_field(entry, "name", where);
  const json& tiles = field(entry, "tiles", where);
  PATHVLM_CHECK(tiles.is_array(), where, ": 'tiles' must be a list of tile ids");
  for (const auto& tile : tiles) {
    PATHVLM_CHECK(tile.is_string() && !tile.get<std::string>().empty(), where,
                  ": 'tiles' holds something that is not a tile id: ", tile.dump());
    c.tiles.push_back(tile.get<std::string>());
  }
  PATHVLM_CHECK(!c.tiles.empty(), where, " has no tiles");
  return c;
}

}  // namespace

std::vector<std::string> SupportSet::class_names() const {
  std::vector<std::string> names;
  for (const auto& c : classes) names.push_back(c.name);
  return names;
}

int64_t SupportSet::class_of_label(int64_t label) const {
  for (size_t i = 0; i < classes.size(); ++i)
    if (classes[i].label == label) return static_cast<int64_t>(i);
  throw Error(str("support set '", source, "' has no class with label ", label));
}

int64_t SupportSet::size() const {
  int64_t n = 0;
  for (const auto& c : classes) n += static_cast<int64_t>(c.tiles.size());
  return n;
}

SupportSet read_support_set(const std::string& path) {
  const std::string where = str("support set '", path, "'");
  std::ifstream in(path);
  PATHVLM_CHECK(in, "cannot read ", where);
  json root;
  try {
    root = json::parse(in);
  } catch (const std::exception& e) {
    throw Error(str(where, " is not JSON: ", e.what()));
  }
  PATHVLM_CHECK(root.is_object(), where, " is not a JSON object");

  SupportSet s;
  s.source = path;
  const std::filesystem::path shards = string_field(root, "shards", where);
  s.shards = (shards.is_relative() ? std::filesystem::path(path).parent_path() / shards : shards)
                 .lexically_normal()
                 .string();
  const json& classes = field(root, "classes", where);
  PATHVLM_CHECK(classes.is_array() && !classes.empty(), where, ": 'classes' must be a non-empty list");

  std::map<int64_t, std::string> labels;
  std::map<std::string, std::string> tiles;  // -> the class that has it
  std::map<std::string, std::string> names;  // normalized -> the name and class that has it
  for (size_t i = 0; i < classes.size(); ++i) {
    SupportClass c = read_class(classes[i], str(where, " class ", i));
    const std::string which = str(where, " class ", i, " ('", c.key, "')");
    PATHVLM_CHECK(labels.emplace(c.label, c.key).second, which, " repeats label ", c.label, " of class '",
                  labels[c.label], "'");
    const std::string normalized = normalize_answer(c.name);
    PATHVLM_CHECK(!normalized.empty(), which, ": name '", c.name, "' is empty once normalized");
    const auto [same, unique] = names.emplace(normalized, str("'", c.name, "' (class '", c.key, "')"));
    PATHVLM_CHECK(unique, which, ": names '", c.name, "' and ", same->second, " are both '", normalized,
                  "' once normalized");
    for (const auto& tile : c.tiles)
      PATHVLM_CHECK(tiles.emplace(tile, c.key).second, which, " repeats tile '", tile, "' (already in class '",
                    tiles[tile], "')");
    s.classes.push_back(std::move(c));
  }
  return s;
}

}  // namespace pathvlm::eval
