// tile_features shards read back through a manifest, its folder or one shard: ids and their index, T/D, float32
// features from float16 and float32 shards, the encoder / token_layer attributes, and the errors (duplicate ids,
// disagreeing shards, record counts, wrong or corrupt files).
#include "data/tile_features.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::data::TileFeatureDataset;
using pathvlm::testing::error_of;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_test_tile_features_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct ShardSpec {
  std::vector<std::string> ids;
  torch::Tensor features;  // [N,T,D], stored in its dtype
  std::optional<std::string> encoder = "clip/";
  std::optional<int> token_layer = -2;
};

void write_shard(const fs::path& path, const ShardSpec& spec) {
  {
    auto f = h5::File::create(path.string());
    shards::write_schema(f, shards::ShardKind::TileFeatures);
    f.write("features", spec.features);
    f.write_strings("ids", spec.ids);
    if (spec.encoder) f.set_attr("encoder", *spec.encoder);
    if (spec.token_layer) f.set_attr("token_layer", *spec.token_layer);
  }
  shards::seal_shard(path.string(), path.string());
}

void write_manifest(const fs::path& dir, const std::vector<std::pair<std::string, int64_t>>& shards, int64_t records) {
  nlohmann::json m = {
      {"pathvlm_manifest", "tile_features/1"}, {"records", records}, {"shards", nlohmann::json::array()}};
  for (const auto& [file, n] : shards) m["shards"].push_back({{"file", file}, {"records", n}});
  std::ofstream(dir / "manifest.json") << m.dump(2);
}

std::vector<std::string> ids_from(int first, int n) {
  std::vector<std::string> ids;
  for (int i = first; i < first + n; ++i) ids.push_back("images/train/tile_" + std::to_string(i) + ".png");
  return ids;
}

// Two shards (3 float32 records, 2 float16 records) of [T=5, D=4] tokens, listed by a manifest.
struct TwoShards {
  fs::path dir;
  torch::Tensor a, b;
};

TwoShards make_two_shards(const std::string& name) {
  TwoShards s;
  s.dir = temp_dir(name);
  torch::manual_seed(3);
  s.a = torch::randn({3, 5, 4});
  s.b = torch::randn({2, 5, 4}).to(torch::kHalf);
  write_shard(s.dir / "tiles-00000.h5", {ids_from(0, 3), s.a});
  write_shard(s.dir / "tiles-00001.h5", {ids_from(3, 2), s.b});
  write_manifest(s.dir, {{"tiles-00000.h5", 3}, {"tiles-00001.h5", 2}}, 5);
  return s;
}

}  // namespace

TEST(TileFeatures, ReadsShardsThroughTheManifest) {
  auto s = make_two_shards("read");
  for (const auto& path : {s.dir.string(), (s.dir / "manifest.json").string()}) {
    auto ds = TileFeatureDataset::open(path);
    ASSERT_EQ(ds.size(), 5);
    EXPECT_EQ(ds.tokens(), 5);
    EXPECT_EQ(ds.width(), 4);
    EXPECT_EQ(ds.encoder(), std::optional<std::string>("clip/"));
    EXPECT_EQ(ds.token_layer(), std::optional<int>(-2));
    EXPECT_EQ(ds.shard_paths().size(), 2u);
    EXPECT_EQ(ds.id(4), "images/train/tile_4.png");
    EXPECT_EQ(ds.index_of("images/train/tile_3.png"), std::optional<int64_t>(3));
    EXPECT_EQ(ds.index_of("images/train/tile_9.png"), std::nullopt);
    auto x1 = ds.features(1), x4 = ds.features(4);
    EXPECT_EQ(x1.scalar_type(), torch::kFloat32);
    EXPECT_EQ(x4.scalar_type(), torch::kFloat32);
    EXPECT_TRUE(torch::equal(x1, s.a[1]));
    EXPECT_TRUE(torch::equal(x4, s.b[1].to(torch::kFloat32)));
    EXPECT_NE(ds.where(4).find("tiles-00001.h5' record 1 (id 'images/train/tile_4.png')"), std::string::npos)
        << ds.where(4);
    EXPECT_NE(error_of([&] { ds.features(5); }).find("out of range"), std::string::npos);
  }
  fs::remove_all(s.dir);
}

TEST(TileFeatures, ConcurrentReadsGiveTheStoredRows) {
  auto s = make_two_shards("threads");
  auto ds = TileFeatureDataset::open(s.dir.string());
  const auto all = torch::cat({s.a, s.b.to(torch::kFloat32)});
  std::vector<int> wrong(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round)
        for (int64_t i = 0; i < ds.size(); ++i) wrong[t] += !torch::equal(ds.features(i), all[i]);
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(wrong[t], 0) << "thread " << t;
  fs::remove_all(s.dir);
}

TEST(TileFeatures, OpensOneShardWithoutAttributes) {
  auto dir = temp_dir("single");
  ShardSpec spec{ids_from(0, 2), torch::zeros({2, 3, 6}, torch::kHalf), std::nullopt, std::nullopt};
  write_shard(dir / "old.h5", spec);
  auto ds = TileFeatureDataset::open((dir / "old.h5").string());
  EXPECT_EQ(ds.size(), 2);
  EXPECT_EQ(ds.tokens(), 3);
  EXPECT_EQ(ds.width(), 6);
  EXPECT_FALSE(ds.encoder().has_value());
  EXPECT_FALSE(ds.token_layer().has_value());
  EXPECT_EQ(ds.features(1).sizes(), (std::vector<int64_t>{3, 6}));
  fs::remove_all(dir);
}

TEST(TileFeatures, DuplicateIdsNameBothShards) {
  auto dir = temp_dir("dup");
  write_shard(dir / "a.h5", {ids_from(0, 3), torch::zeros({3, 2, 2})});
  write_shard(dir / "b.h5", {ids_from(2, 2), torch::zeros({2, 2, 2})});
  write_manifest(dir, {{"a.h5", 3}, {"b.h5", 2}}, 5);
  const auto e = error_of([&] { TileFeatureDataset::open(dir.string()); });
  EXPECT_NE(e.find("id 'images/train/tile_2.png' appears twice"), std::string::npos) << e;
  EXPECT_NE(e.find("a.h5' record 2"), std::string::npos) << e;
  EXPECT_NE(e.find("b.h5' record 0"), std::string::npos) << e;
  fs::remove_all(dir);
}

TEST(TileFeatures, ShardsMustAgreeOnShapeAndTokenLayer) {
  auto dir = temp_dir("agree");
  write_shard(dir / "a.h5", {ids_from(0, 1), torch::zeros({1, 5, 4})});
  write_shard(dir / "wide.h5", {ids_from(1, 1), torch::zeros({1, 5, 8})});
  write_shard(dir / "last.h5", {ids_from(2, 1), torch::zeros({1, 5, 4}), "clip/", -1});
  write_shard(dir / "none.h5", {ids_from(3, 1), torch::zeros({1, 5, 4}), "clip/", std::nullopt});
  write_shard(dir / "other.h5", {ids_from(4, 1), torch::zeros({1, 5, 4}), "other-clip/", -2});
  for (const char* second : {"wide.h5", "last.h5", "none.h5", "other.h5"}) {
    write_manifest(dir, {{"a.h5", 1}, {second, 1}}, 2);
    const auto e = error_of([&] { TileFeatureDataset::open(dir.string()); });
    EXPECT_NE(e.find(second), std::string::npos) << e;
    EXPECT_NE(e.find("a.h5"), std::string::npos) << e;
    EXPECT_NE(e.find("manifest '"), std::string::npos) << e;
  }
  write_manifest(dir, {{"a.h5", 1}, {"wide.h5", 1}}, 2);
  EXPECT_NE(error_of([&] { TileFeatureDataset::open(dir.string()); }).find("holds tokens [5,8]"), std::string::npos);
  write_manifest(dir, {{"a.h5", 1}, {"last.h5", 1}}, 2);
  EXPECT_NE(error_of([&] { TileFeatureDataset::open(dir.string()); }).find("token_layer -1"), std::string::npos);
  fs::remove_all(dir);
}

TEST(TileFeatures, ErrorsNameTheFileAndTheProblem) {
  auto s = make_two_shards("errors");
  const std::string manifest = (s.dir / "manifest.json").string();
  // Record counts: a shard's and the total.
  write_manifest(s.dir, {{"tiles-00000.h5", 4}, {"tiles-00001.h5", 2}}, 6);
  auto e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find("tiles-00000.h5' holds 3 records, the manifest says 4"), std::string::npos) << e;
  write_manifest(s.dir, {{"tiles-00000.h5", 3}, {"tiles-00001.h5", 2}}, 7);
  e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find("manifest '" + manifest + "': lists 7 records, its shards hold 5"), std::string::npos) << e;
  // A listed shard that is gone.
  write_manifest(s.dir, {{"tiles-00000.h5", 3}, {"tiles-00009.h5", 2}}, 5);
  e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find("tiles-00009.h5' is missing"), std::string::npos) << e;
  // A manifest of another kind.
  std::ofstream(manifest)
      << R"({"pathvlm_manifest": "tiles/1", "records": 3, "shards": [{"file": "tiles-00000.h5", "records": 3}]})";
  e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find("expected \"pathvlm_manifest\": \"tile_features/1\", found \"tiles/1\""), std::string::npos) << e;
  // No manifest at all.
  fs::remove(manifest);
  e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find(manifest + "' not found"), std::string::npos) << e;
  // A shard of another kind.
  {
    auto f = h5::File::create((s.dir / "tiles.h5").string());
    shards::write_schema(f, shards::ShardKind::Tiles);
    f.write_blobs("images", {h5::Blob{0xFF, 0xD8, 0xFF}});
    f.write_strings("captions", {"c"});
    f.write_strings("ids", {"a"});
  }
  shards::seal_shard((s.dir / "tiles.h5").string(), (s.dir / "tiles.h5").string());
  e = error_of([&] { TileFeatureDataset::open((s.dir / "tiles.h5").string()); });
  EXPECT_NE(e.find("tiles.h5' holds tiles, not tile_features"), std::string::npos) << e;
  // A truncated shard.
  const auto shard = s.dir / "tiles-00001.h5";
  fs::resize_file(shard, fs::file_size(shard) / 2);
  write_manifest(s.dir, {{"tiles-00000.h5", 3}, {"tiles-00001.h5", 2}}, 5);
  e = error_of([&] { TileFeatureDataset::open(s.dir.string()); });
  EXPECT_NE(e.find(shard.string()), std::string::npos) << e;
  fs::remove_all(s.dir);
}
