#include "data/shard_manifest.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace fs = std::filesystem;

namespace pathvlm::data {

std::string ShardManifest::context() const { return single_shard ? "" : str("manifest '", source, "': "); }

void ShardManifest::check_total(int64_t held) const {
  if (single_shard || records < 0) return;
  PATHVLM_CHECK(records == held, "manifest '", source, "': lists ", records, " records, its shards hold ", held);
}

ShardManifest read_shard_manifest(const std::string& path, const std::string& tag, const std::string& what) {
  ShardManifest m;
  std::error_code ec;
  fs::path p(path);
  if (fs::is_directory(p, ec)) p /= "manifest.json";
  m.source = p.string();
  PATHVLM_CHECK(fs::is_regular_file(p, ec), what, " '", p.string(), "' not found",
                fs::path(path).extension() == ".h5" ? "" : " (expected a manifest.json, its folder, or a .h5 shard)");
  if (p.extension() == ".h5" || p.extension() == ".hdf5") {
    m.single_shard = true;
    m.shards.push_back({p.string(), -1});
    return m;
  }
  std::ifstream in(p, std::ios::binary);
  PATHVLM_CHECK(in, "manifest '", p.string(), "' cannot be opened: ", std::strerror(errno));
  std::stringstream text;
  text << in.rdbuf();
  nlohmann::json manifest;
  try {
    manifest = nlohmann::json::parse(text.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error(str("manifest '", p.string(), "': invalid JSON (", e.what(), ")"));
  }
  PATHVLM_CHECK(manifest.is_object(), "manifest '", p.string(), "': not a JSON object");
  const auto tag_it = manifest.find("pathvlm_manifest");
  const std::string found = tag_it != manifest.end() && tag_it->is_string() ? tag_it->get<std::string>() : "";
  PATHVLM_CHECK(found == tag, "manifest '", p.string(), "': expected \"pathvlm_manifest\": \"", tag, "\", found ",
                found.empty() ? std::string("none") : "\"" + found + "\"");
  PATHVLM_CHECK(manifest.contains("shards") && manifest["shards"].is_array() && !manifest["shards"].empty(),
                "manifest '", p.string(), "': no shards listed");
  for (const auto& entry : manifest["shards"]) {
    PATHVLM_CHECK(entry.is_object() && entry.contains("file") && entry["file"].is_string() &&
                      entry.contains("records") && entry["records"].is_number_integer(),
                  "manifest '", p.string(), "': shard entry ", entry.dump(), " needs \"file\" and \"records\"");
    fs::path file = entry["file"].get<std::string>();
    if (file.is_relative()) file = p.parent_path() / file;
    m.shards.push_back({file.string(), entry["records"].get<int64_t>()});
  }
  if (manifest.contains("records")) {
    PATHVLM_CHECK(manifest["records"].is_number_integer(), "manifest '", p.string(),
                  "': \"records\" is not an integer");
    m.records = manifest["records"].get<int64_t>();
  }
  return m;
}

}  // namespace pathvlm::data
