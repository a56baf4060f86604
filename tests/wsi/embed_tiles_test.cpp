// `embed --tiles`: token features of tiles shards with a tiny CLIP. The contract the instruction trainer relies on:
// the cached float32 tokens are exactly LlavaVisionTower's output (CLS kept, feature_layer = token_layer) on the
// tiles after TileLoader's evaluation transform (on the same batches); float16 ones are that output rounded to half.
// Also: the CLI's --tiles / --coords choice, and a run that fails midway leaving no manifest and no temp shard.
#include "test_util.h"
#include "wsi/embed_tiles.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "data/image.h"
#include "data/tile_features.h"
#include "data/tile_shards.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "models/clip/weights.h"
#include "models/llava/vision_tower.h"
#include "synth/tissue_texture.h"

namespace fs = std::filesystem;
using namespace pathvlm;

namespace {

std::string temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_embed_tiles_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Seven tiles of different sizes in two tiles shards (4 + 3) and a tiny random CLIP exported as an HF directory.
struct Inputs {
  std::string dir, shards, clip;
};

Inputs make_inputs(const std::string& name) {
  Inputs in;
  in.dir = temp_dir(name);
  fs::create_directories(in.dir + "/img");
  std::ofstream csv(in.dir + "/records.csv");
  csv << "filepath,caption\n";
  for (int i = 0; i < 7; ++i) {
    const std::string file = "img/tile_" + std::to_string(i) + ".png";
    auto tile = synth::draw_tissue(static_cast<synth::TissueClass>(i % synth::kNumTissueClasses), 70 + 3 * i,
                                   90 - 2 * i, 500 + i);
    data::write_image(in.dir + "/" + file, tile);
    csv << file << ",tile " << i << "\n";
  }
  csv.close();
  data::TileShardBuildOptions o;
  o.records = in.dir + "/records.csv";
  o.out_dir = in.shards = in.dir + "/shards";
  o.shard_size = 4;
  o.progress = false;
  data::build_tile_shards(o);

  torch::manual_seed(0);
  models::ClipModelConfig mc;
  mc.preset = "tiny";
  models::ClipModel model(models::resolve_clip_config(mc));
  models::init_clip_weights(*model);
  in.clip = in.dir + "/clip";
  models::export_hf_clip(model, model->config(), in.clip);
  return in;
}

EmbedConfig cpu_config(const std::string& tokens_dtype, int token_layer, int batch_size, int tiles_per_shard) {
  EmbedConfig c;
  c.device = "cpu";
  c.readers = 2;
  c.tokens_dtype = tokens_dtype;
  c.token_layer = token_layer;
  c.batch_size = batch_size;
  c.tiles_per_shard = tiles_per_shard;
  return c;
}

// The tower's output for every tile, computed in batches of `batch_size` records as embed_tiles forms them.
torch::Tensor tower_tokens(const Inputs& in, int feature_layer, int batch_size) {
  auto clip = models::load_clip(in.clip);
  models::LlavaVisionTower tower(clip, feature_layer, /*keep_cls=*/true);
  auto tiles = data::TileDataset::open(in.shards);
  const int size = clip->config().image_size;
  std::vector<torch::Tensor> pixels, out;
  for (int64_t i = 0; i < tiles.size(); ++i)
    pixels.push_back(data::normalize_openai(data::resize_shortest_and_center_crop(tiles.image(i), size)));
  auto all = torch::stack(pixels);
  for (int64_t b = 0; b < all.size(0); b += batch_size)
    out.push_back(tower(all.narrow(0, b, std::min<int64_t>(batch_size, all.size(0) - b))));
  return torch::cat(out);
}

std::vector<std::string> h5_files(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// Runs the pathvlm program; returns its exit status and (in `output`) stdout + stderr.
int run(const std::string& args, std::string* output) {
  const std::string log = fs::temp_directory_path() / ("pathvlm_embed_tiles_out_" + std::to_string(::getpid()));
  const int status = std::system((std::string(PATHVLM_BINARY) + " " + args + " > " + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  *output = text.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(EmbedTiles, Float32TokensAreTheTowerOutput) {
  const auto in = make_inputs("f32");
  const auto config = cpu_config("float32", -2, 3, 3);
  const auto report =
      wsi::embed_tiles({in.shards, in.dir + "/feats"}, config, wsi::load_tile_encoder(in.clip, config));
  EXPECT_EQ(report.records, 7);
  ASSERT_EQ(report.shards.size(), 3u);
  EXPECT_EQ(h5_files(in.dir + "/feats/tokens"),
            (std::vector<std::string>{"manifest.json", "tiles-00000.h5", "tiles-00001.h5", "tiles-00002.h5"}));

  auto tiles = data::TileDataset::open(in.shards);
  auto feats = data::TileFeatureDataset::open(in.dir + "/feats/tokens");
  ASSERT_EQ(feats.size(), 7);
  EXPECT_EQ(feats.tokens(), 17);  // (64 / 16)^2 patches + CLS
  EXPECT_EQ(feats.width(), 128);
  EXPECT_EQ(feats.encoder(), std::optional<std::string>(in.clip));
  EXPECT_EQ(feats.token_layer(), std::optional<int>(-2));
  EXPECT_EQ(h5::File::open(report.shards[0]).dataset("features").dtype(), torch::kFloat32);
  const auto expected = tower_tokens(in, -2, config.batch_size);
  for (int64_t i = 0; i < 7; ++i) {
    EXPECT_EQ(feats.id(i), tiles.id(i));
    EXPECT_EQ(feats.index_of(tiles.id(i)), std::optional<int64_t>(i));
    EXPECT_TRUE(torch::equal(feats.features(i), expected[i]))
        << "record " << i << ": max difference " << (feats.features(i) - expected[i]).abs().max();
  }
  fs::remove_all(in.dir);
}

TEST(EmbedTiles, Float16TokensAreTheTowerOutputRoundedAndARerunReplacesTheShards) {
  const auto in = make_inputs("f16");
  const std::string out = in.dir + "/feats";
  auto config = cpu_config("float32", -2, 4, 2);
  wsi::embed_tiles({in.shards, out}, config, wsi::load_tile_encoder(in.clip, config));
  EXPECT_EQ(h5_files(out + "/tokens").size(), 5u);  // 4 shards + manifest

  // Into the same folder: hidden state 1 (after the first block), float16, one shard; the four old shards go.
  config = cpu_config("float16", 1, 4, 100);
  const auto report = wsi::embed_tiles({in.shards, out}, config, wsi::load_tile_encoder(in.clip, config));
  EXPECT_EQ(h5_files(out + "/tokens"), (std::vector<std::string>{"manifest.json", "tiles-00000.h5"}));
  auto manifest = nlohmann::json::parse(std::ifstream(report.manifest));
  EXPECT_EQ(manifest["pathvlm_manifest"], "tile_features/1");
  EXPECT_EQ(manifest["records"], 7);
  EXPECT_EQ(manifest["dtype"], "float16");

  auto feats = data::TileFeatureDataset::open(report.manifest);
  EXPECT_EQ(feats.token_layer(), std::optional<int>(1));
  EXPECT_EQ(h5::File::open(report.shards[0]).dataset("features").dtype(), torch::kFloat16);
  const auto expected = tower_tokens(in, 1, config.batch_size);
  for (int64_t i = 0; i < 7; ++i)
    EXPECT_TRUE(torch::equal(feats.features(i), expected[i].to(torch::kHalf).to(torch::kFloat32))) << "record " << i;
  fs::remove_all(in.dir);
}

TEST(EmbedTiles, CliWritesTokensAndTakesExactlyOneSource) {
  const auto in = make_inputs("cli");
  const std::string common = " --encoder " + in.clip + " --out " + in.dir + "/feats --device cpu";
  std::string output;
  EXPECT_NE(run("embed --tiles " + in.shards + " --coords " + in.dir + common, &output), 0);
  EXPECT_NE(output.find("give exactly one of --coords (tiles of slides) and --tiles (tiles shards); both were given"),
            std::string::npos)
      << output;
  EXPECT_NE(run("embed" + common, &output), 0);
  EXPECT_NE(output.find("neither was given"), std::string::npos) << output;
  EXPECT_FALSE(fs::exists(in.dir + "/feats"));

  ASSERT_EQ(run("embed --tiles " + in.shards + common + " tokens_dtype=float32 tiles_per_shard=5", &output), 0)
      << output;
  EXPECT_NE(output.find("7 tiles -> 2 tile_features shard(s)"), std::string::npos) << output;
  auto feats = data::TileFeatureDataset::open(in.dir + "/feats/tokens/manifest.json");
  EXPECT_EQ(feats.size(), 7);
  EXPECT_EQ(feats.token_layer(), std::optional<int>(-2));
  const auto expected = tower_tokens(in, -2, EmbedConfig().batch_size);
  EXPECT_TRUE(torch::equal(feats.features(6), expected[6]));
  fs::remove_all(in.dir);
}

TEST(EmbedTiles, AFailureMidwayLeavesNoManifestAndNoHalfShard) {
  const auto in = make_inputs("fail");
  // One tiles shard whose fourth image has a JPEG signature but does not decode.
  const std::string bad = in.dir + "/bad.h5";
  {
    auto tiles = data::TileDataset::open(in.shards);
    std::vector<h5::Blob> images;
    std::vector<std::string> captions, ids;
    for (int64_t i = 0; i < tiles.size(); ++i) {
      images.push_back(i == 3 ? h5::Blob{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3} : data::encode_png(tiles.image(i)));
      captions.push_back(tiles.caption(i));
      ids.push_back(tiles.id(i));
    }
    auto f = h5::File::create(bad);
    shards::write_schema(f, shards::ShardKind::Tiles);
    f.write_blobs("images", images);
    f.write_strings("captions", captions);
    f.write_strings("ids", ids);
  }
  shards::seal_shard(bad, bad);
  const std::string out = in.dir + "/feats";
  auto config = cpu_config("float32", -2, 1, 2);
  const auto encoder = wsi::load_tile_encoder(in.clip, config);
  wsi::embed_tiles({in.shards, out}, config, encoder);
  ASSERT_TRUE(fs::exists(out + "/tokens/manifest.json"));

  config.readers = 1;  // the records before the bad one are encoded and written first
  const auto e = pathvlm::testing::error_of([&] { wsi::embed_tiles({bad, out}, config, encoder); });
  EXPECT_NE(e.find("record 3"), std::string::npos) << e;
  EXPECT_NE(e.find(bad), std::string::npos) << e;
  // The old manifest is gone, the new run's first shard (records 0-1) is complete, and the half-written second
  // shard (record 2) left no temp file behind.
  EXPECT_FALSE(fs::exists(out + "/tokens/manifest.json"));
  for (const auto& name : h5_files(out + "/tokens")) EXPECT_EQ(name.find(".tmp"), std::string::npos) << name;
  auto first = h5::File::open(out + "/tokens/tiles-00000.h5");
  EXPECT_EQ(first.dataset("ids").rows(), 2);
  fs::remove_all(in.dir);
}

// A full disk, as RLIMIT_FSIZE gives it (with SIGXFSZ ignored, writes past the limit fail with EFBIG): embed stops
// with an error naming the shard and the reason, leaves no file under a final name (nor temp files), and exits
// with status 2, not a signal (HDF5's exit handler used to close the failed file again and crash).
TEST(EmbedTiles, FullDiskLeavesNoShardAndExitsCleanly) {
  const auto in = make_inputs("full_disk");
  const std::string out = in.dir + "/feats", log = in.dir + "/log.txt";
  const std::string command = "bash -c \"trap '' XFSZ; ulimit -f 40; exec " + std::string(PATHVLM_BINARY) +
                              " embed --tiles " + in.shards + " --encoder " + in.clip + " --out " + out +
                              " --device cpu tokens_dtype=float32\" > " + log + " 2>&1";
  const int status = std::system(command.c_str());
  std::ifstream text(log);
  const std::string output((std::istreambuf_iterator<char>(text)), std::istreambuf_iterator<char>());
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status) << ":\n" << output;
  EXPECT_EQ(WEXITSTATUS(status), 2) << output;
  EXPECT_NE(output.find("tiles-00000.h5"), std::string::npos) << output;
  EXPECT_NE(output.find("File too large"), std::string::npos) << output;
  EXPECT_EQ(h5_files(out + "/tokens"), std::vector<std::string>{}) << output;
  fs::remove_all(in.dir);
}
