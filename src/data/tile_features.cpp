#include "data/tile_features.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "data/shard_manifest.h"
#include "io/shard_schema.h"

namespace fs = std::filesystem;

namespace pathvlm::data {
namespace {

constexpr const char* kManifestTag = "tile_features/1";

template <class T>
std::string describe(const std::optional<T>& value) {
  if (!value) return "none";
  if constexpr (std::is_same_v<T, std::string>)
    return "'" + *value + "'";
  else
    return std::to_string(*value);
}

}  // namespace

TileFeatureDataset TileFeatureDataset::open(const std::string& path) {
  const ShardManifest manifest = read_shard_manifest(path, kManifestTag, "tile features");
  TileFeatureDataset ds;
  ds.source_ = manifest.source;
  for (const auto& shard : manifest.shards) ds.add_shard(shard.path, shard.records, manifest.context());
  manifest.check_total(ds.size());
  return ds;
}

void TileFeatureDataset::add_shard(const std::string& path, int64_t expected, const std::string& context) {
  std::error_code ec;
  PATHVLM_CHECK(fs::is_regular_file(path, ec), context, "shard '", path, "' is missing");
  auto file = shards::open_shard(path);
  const auto kind = shards::check_schema(file);
  PATHVLM_CHECK(kind == shards::ShardKind::TileFeatures, context, "shard '", path, "' holds ", shards::kind_name(kind),
                ", not tile_features");
  const int64_t n = shards::record_count(file, kind);
  PATHVLM_CHECK(expected < 0 || n == expected, context, "shard '", path, "' holds ", n, " records, the manifest says ",
                expected, " (rewrite the shards or fix the manifest)");

  auto features = std::make_shared<const shards::CheckedRows>(file, "features");
  const auto shape = features->dataset().shape();
  std::optional<std::string> encoder;
  if (file.has_attr("encoder")) encoder = file.attr_string("encoder");
  std::optional<int> token_layer;
  if (file.has_attr("token_layer")) token_layer = static_cast<int>(file.attr_int("token_layer"));
  std::optional<std::string> normalisation;
  if (file.has_attr("pixel_normalisation")) normalisation = file.attr_string("pixel_normalisation");
  if (shards_.empty()) {
    tokens_ = shape[1], width_ = shape[2];
    encoder_ = encoder, token_layer_ = token_layer, pixel_normalisation_ = normalisation;
  } else {
    const std::string& first = shards_.front().path;
    PATHVLM_CHECK(shape[1] == tokens_ && shape[2] == width_, context, "shard '", path, "' holds tokens [", shape[1],
                  ",", shape[2], "] but shard '", first, "' holds [", tokens_, ",", width_, "]");
    PATHVLM_CHECK(token_layer == token_layer_, context, "shard '", path, "' has token_layer ", describe(token_layer),
                  " but shard '", first, "' has ", describe(token_layer_));
    PATHVLM_CHECK(encoder == encoder_, context, "shard '", path, "' has encoder ", describe(encoder), " but shard '",
                  first, "' has ", describe(encoder_));
    PATHVLM_CHECK(normalisation == pixel_normalisation_, context, "shard '", path, "' has pixel_normalisation ",
                  describe(normalisation), " but shard '", first, "' has ", describe(pixel_normalisation_));
  }

  Shard s;
  s.path = path;
  s.features = std::move(features);
  s.first = size();
  s.count = n;
  shards_.push_back(std::move(s));
  shard_paths_.push_back(path);
  for (auto& id : file.read_strings("ids")) {
    const int64_t index = size();
    const auto [it, inserted] = index_.emplace(id, index);
    ids_.push_back(std::move(id));
    PATHVLM_CHECK(inserted, context, "id '", ids_.back(), "' appears twice: ", where(it->second), " and ",
                  where(index));
  }
}

void TileFeatureDataset::check_index(int64_t i) const {
  PATHVLM_CHECK(i >= 0 && i < size(), "tile features '", source_, "': record ", i, " is out of range [0, ", size(),
                ")");
}

const TileFeatureDataset::Shard& TileFeatureDataset::shard_of(int64_t i, int64_t& local) const {
  check_index(i);
  auto it = std::upper_bound(shards_.begin(), shards_.end(), i, [](int64_t v, const Shard& s) { return v < s.first; });
  const Shard& s = *(it - 1);
  local = i - s.first;
  return s;
}

const std::string& TileFeatureDataset::id(int64_t i) const {
  check_index(i);
  return ids_[static_cast<size_t>(i)];
}

std::optional<int64_t> TileFeatureDataset::index_of(const std::string& id) const {
  auto it = index_.find(id);
  if (it == index_.end()) return std::nullopt;
  return it->second;
}

std::string TileFeatureDataset::where(int64_t i) const {
  int64_t local = 0;
  const Shard& s = shard_of(i, local);
  return str("shard '", s.path, "' record ", local, " (id '", ids_[static_cast<size_t>(i)], "')");
}

torch::Tensor TileFeatureDataset::features(int64_t i) const {
  int64_t local = 0;
  const Shard& s = shard_of(i, local);
  torch::Tensor rows;
  try {
    rows = s.features->read_rows(local, 1);
  } catch (const Error& e) {
    throw Error(str(where(i), ": ", e.what()));
  }
  return rows.squeeze(0).to(torch::kFloat32);
}

}  // namespace pathvlm::data
