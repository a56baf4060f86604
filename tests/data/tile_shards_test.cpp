// Tiles shards: build from a folder + CSV / JSONL (bad records listed and skipped), manifest, reading back,
// `pathvlm shards build` end to end, and the TileLoader over the result.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include <pathvlm/build_info.h>

#include "core/error.h"
#include "io/hdf5.h"
#include "data/image.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "data/tile_loader.h"
#include "data/tile_shards.h"
#include "synth/tissue_texture.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm::data;
using pathvlm::testing::error_of;
using namespace pathvlm::synth;

namespace {

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// A folder of images: tile_<i>.png (i = 0..n-1, class i % 8) plus a JPEG, a corrupt file and a truncated JPEG.
struct Folder {
  fs::path dir;
  std::vector<torch::Tensor> pngs;
  torch::Tensor jpeg_pixels;  // as decoded from the stored JPEG
};

Folder make_folder(const std::string& name, int n) {
  Folder f;
  f.dir = temp_dir(name);
  fs::create_directories(f.dir / "img");
  for (int i = 0; i < n; ++i) {
    auto tile = draw_tissue(static_cast<TissueClass>(i % kNumTissueClasses), 24, 20 + i % 3, 1000 + i);
    write_image((f.dir / "img" / ("tile_" + std::to_string(i) + ".png")).string(), tile);
    f.pngs.push_back(tile);
  }
  auto jpeg = encode_jpeg(draw_tissue(TissueClass::Tumor, 24, 24, 77), 90);
  write_file_bytes((f.dir / "img" / "photo.jpg").string(), jpeg);
  f.jpeg_pixels = decode_image(jpeg, "jpeg");
  write_text(f.dir / "img" / "corrupt.png", "\x89PNG\r\n\x1a\nthis is not a png body");
  write_file_bytes((f.dir / "img" / "cut.jpg").string(), Bytes(jpeg.begin(), jpeg.begin() + jpeg.size() / 3));
  return f;
}

}  // namespace

TEST(TileShards, BuildFromCsvListsBadRecordsAndReadsBack) {
  auto f = make_folder("shards_csv", 5);
  write_text(f.dir / "records.csv",
             "filepath,caption,label\n"
             "img/tile_0.png,tumor tile,0\n"
             "img/tile_1.png,\"lymphocytes, dense \"\"small\"\" cells\",1\n"
             "img/missing.png,a caption,2\n"
             "img/photo.jpg,\"a caption that\nspans two lines\",3\n"
             "img/corrupt.png,corrupt,4\n"
             "img/tile_2.png,   ,5\n"
             "img/cut.jpg,truncated,6\n"
             "img/tile_3.png,bad label,x\n"
             "img/tile_0.png,same file twice,0\n"
             "img/tile_4.png,fat,3\n");
  TileShardBuildOptions o;
  o.records = (f.dir / "records.csv").string();
  o.out_dir = (f.dir / "out").string();
  o.shard_size = 2;
  o.progress = false;
  auto r = build_tile_shards(o);
  EXPECT_EQ(r.records, 10);
  EXPECT_EQ(r.written, 4);
  ASSERT_EQ(r.bad.size(), 6u);
  std::map<int64_t, std::string> problems;
  for (const auto& b : r.bad) problems[b.line] = b.problem;
  EXPECT_NE(problems[4].find("not found"), std::string::npos) << problems[4];
  EXPECT_NE(problems[7].find("corrupt PNG"), std::string::npos) << problems[7];
  EXPECT_NE(problems[7].find("corrupt.png"), std::string::npos) << problems[7];
  EXPECT_NE(problems[8].find("empty caption"), std::string::npos) << problems[8];
  EXPECT_NE(problems[9].find("corrupt JPEG"), std::string::npos) << problems[9];
  EXPECT_NE(problems[10].find("label 'x'"), std::string::npos) << problems[10];
  EXPECT_NE(problems[11].find("duplicate id 'img/tile_0.png'"), std::string::npos) << problems[11];
  EXPECT_EQ(r.shards.size(), 2u);

  std::ifstream bad_file(r.bad_records_file);
  std::string header;
  std::getline(bad_file, header);
  EXPECT_EQ(header, "line\tfile\tproblem");
  int bad_lines = 0;
  for (std::string line; std::getline(bad_file, line);) ++bad_lines;
  EXPECT_EQ(bad_lines, 6);

  auto manifest = nlohmann::json::parse(std::ifstream(r.manifest));
  EXPECT_EQ(manifest["pathvlm_manifest"], "tiles/1");
  EXPECT_EQ(manifest["records"], 4);
  EXPECT_EQ(manifest["shards"].size(), 2u);
  EXPECT_EQ(manifest["shards"][0]["file"], "tiles-00000.h5");
  EXPECT_EQ(manifest["shards"][1]["records"], 2);
  EXPECT_EQ(manifest["images"], "encoded");
  EXPECT_EQ(manifest["labels"], true);
  EXPECT_EQ(manifest["bad_records"], 6);

  auto shard = pathvlm::h5::File::open(r.shards[0]);
  EXPECT_EQ(pathvlm::shards::check_schema(shard), pathvlm::shards::ShardKind::Tiles);
  EXPECT_EQ(pathvlm::shards::validate(shard).bad_records, 0);

  auto ds = TileDataset::open(o.out_dir);
  ASSERT_EQ(ds.size(), 4);
  EXPECT_TRUE(ds.has_labels());
  EXPECT_EQ(ds.caption(1), "lymphocytes, dense \"small\" cells");
  EXPECT_EQ(ds.caption(2), "a caption that\nspans two lines");
  EXPECT_EQ(ds.id(2), "img/photo.jpg");
  EXPECT_EQ(ds.label(3), 3);
  EXPECT_TRUE(torch::equal(ds.image(0), f.pngs[0]));
  EXPECT_TRUE(torch::equal(ds.image(2), f.jpeg_pixels));  // original JPEG bytes kept
  auto rec = ds.read(3);
  EXPECT_TRUE(torch::equal(rec.image, f.pngs[4]));
  EXPECT_EQ(rec.caption, "fat");
  EXPECT_NE(ds.where(3).find("tiles-00001.h5' record 1 (id 'img/tile_4.png')"), std::string::npos) << ds.where(3);
  EXPECT_NE(error_of([&] { ds.image(4); }).find("out of range"), std::string::npos);
  fs::remove_all(f.dir);
}

TEST(TileShards, BuildFromJsonlRawPixelsResized) {
  auto f = make_folder("shards_jsonl", 3);
  write_text(f.dir / "records.jsonl",
             "{\"image\": \"img/tile_0.png\", \"text\": \"first\", \"id\": \"a\"}\n"
             "\n"
             "{\"filepath\": \"img/tile_1.png\", \"caption\": \"second\", \"id\": \"b\"}\n"
             "not json\n"
             "{\"filepath\": \"img/photo.jpg\", \"caption\": \"\", \"id\": \"c\"}\n"
             "{\"filepath\": \"" + (f.dir / "img" / "tile_2.png").string() + "\", \"caption\": \"absolute\"}\n");
  TileShardBuildOptions o;
  o.records = (f.dir / "records.jsonl").string();
  o.out_dir = (f.dir / "out").string();
  o.storage = "raw";
  o.size = 16;
  o.progress = false;
  auto r = build_tile_shards(o);
  EXPECT_EQ(r.written, 3);
  ASSERT_EQ(r.bad.size(), 2u);
  EXPECT_EQ(r.bad[0].line, 4);
  EXPECT_NE(r.bad[0].problem.find("invalid JSON"), std::string::npos);
  EXPECT_EQ(r.bad[1].line, 5);
  EXPECT_NE(r.bad[1].problem.find("empty caption"), std::string::npos);

  auto manifest = nlohmann::json::parse(std::ifstream(r.manifest));
  EXPECT_EQ(manifest["images"], "raw");
  EXPECT_EQ(manifest["image_size"], nlohmann::json({16, 16}));
  EXPECT_EQ(manifest["labels"], false);
  auto ds = TileDataset::open(r.manifest);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_FALSE(ds.has_labels());
  EXPECT_EQ(ds.label(0), -1);
  EXPECT_EQ(ds.caption(0), "first");
  EXPECT_EQ(ds.id(1), "b");
  EXPECT_TRUE(torch::equal(ds.image(1), resize_shortest_and_center_crop(f.pngs[1], 16)));
  EXPECT_EQ(pathvlm::h5::File::open(r.shards[0]).dataset("images").shape(), (std::vector<int64_t>{3, 16, 16, 3}));
  fs::remove_all(f.dir);
}

// TIFF sources (NCT-CRC-HE-100K's tiles are TIFFs) are kept losslessly as PNG: the stored record decodes to the
// TIFF's pixels.
TEST(TileShards, TiffSourcesAreStoredAsPng) {
  if (!pathvlm::build::kHaveLibTiff) GTEST_SKIP() << "built without libtiff";
  const auto dir = temp_dir("shards_tiff");
  const auto tiff = fs::path(PATHVLM_SOURCE_DIR) / "tests/data/decode/rgb_lzw.tif";
  write_text(dir / "records.csv", "filepath,caption\n" + tiff.string() + ",an H&E tile\n");
  TileShardBuildOptions o;
  o.records = (dir / "records.csv").string();
  o.out_dir = (dir / "out").string();
  o.progress = false;
  const auto r = build_tile_shards(o);
  ASSERT_EQ(r.written, 1) << (r.bad.empty() ? "" : r.bad[0].problem);
  const auto ds = TileDataset::open(r.manifest);
  const auto stored = pathvlm::h5::File::open(r.shards[0]).dataset("images").read().contiguous();  // one record's bytes
  EXPECT_EQ(sniff_image_format(stored.data_ptr<uint8_t>(), stored.numel()), ImageFormat::Png);
  EXPECT_TRUE(torch::equal(ds.image(0), read_image(tiff.string())));
  fs::remove_all(dir);
}

// Sets joined by "::" (open_clip's --train-data syntax) read as one, in order; sets that disagree on labels do not.
TEST(TileShards, SetsJoinedWithDoubleColonReadAsOneInOrder) {
  auto f = make_folder("shards_joined", 3);
  write_text(f.dir / "a.csv", "filepath,caption,label\nimg/tile_0.png,first,0\nimg/tile_1.png,second,1\n");
  write_text(f.dir / "b.csv", "filepath,caption,label\nimg/tile_2.png,third,2\n");
  write_text(f.dir / "c.csv", "filepath,caption\nimg/tile_2.png,unlabelled\n");
  for (const std::string set : {"a", "b", "c"}) {
    TileShardBuildOptions o;
    o.records = (f.dir / (set + ".csv")).string();
    o.out_dir = (f.dir / set).string();
    o.progress = false;
    build_tile_shards(o);
  }
  const auto ds = TileDataset::open((f.dir / "a").string() + "::" + (f.dir / "b/manifest.json").string());
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.caption(0), "first");
  EXPECT_EQ(ds.caption(2), "third");
  EXPECT_EQ(ds.label(2), 2);
  EXPECT_TRUE(torch::equal(ds.image(2), f.pngs[2]));
  EXPECT_NE(error_of([&] { TileDataset::open((f.dir / "a").string() + "::" + (f.dir / "c").string()); })
                .find("has no /labels but shard"),
            std::string::npos);
  EXPECT_NE(error_of([&] { TileDataset::open((f.dir / "a").string() + "::"); }).find("an empty source"),
            std::string::npos);
  fs::remove_all(f.dir);
}

TEST(TileShards, ClearErrorsForBadInputs) {
  auto f = make_folder("shards_errors", 2);
  TileShardBuildOptions o;
  o.out_dir = (f.dir / "out").string();
  o.progress = false;
  o.records = (f.dir / "nope.csv").string();
  EXPECT_NE(error_of([&] { build_tile_shards(o); }).find("records file '" + o.records + "' not found"),
            std::string::npos);
  write_text(f.dir / "nohead.csv", "path_to_file,words\nimg/tile_0.png,x\n");
  o.records = (f.dir / "nohead.csv").string();
  EXPECT_NE(error_of([&] { build_tile_shards(o); }).find("needs columns 'filepath' and 'caption'"), std::string::npos);
  write_text(f.dir / "allbad.csv", "filepath,caption\nimg/missing.png,x\n");
  o.records = (f.dir / "allbad.csv").string();
  EXPECT_NE(error_of([&] { build_tile_shards(o); }).find("none of its 1 records is usable"), std::string::npos);

  // Raw shards need one size: the second image (another width) is a bad record without --size.
  write_text(f.dir / "sizes.csv", "filepath,caption\nimg/tile_0.png,a\nimg/tile_1.png,b\n");
  o.records = (f.dir / "sizes.csv").string();
  o.storage = "raw";
  auto r = build_tile_shards(o);
  ASSERT_EQ(r.bad.size(), 1u);
  EXPECT_NE(r.bad[0].problem.find("raw shards hold 20x24"), std::string::npos) << r.bad[0].problem;

  // Reading: a missing shard and a count mismatch name the manifest and the shard.
  o.storage = "encoded";
  o.shard_size = 1;
  r = build_tile_shards(o);
  ASSERT_EQ(r.shards.size(), 2u);
  fs::remove(r.shards[1]);
  auto err = error_of([&] { TileDataset::open(o.out_dir); });
  EXPECT_NE(err.find("manifest '"), std::string::npos) << err;
  EXPECT_NE(err.find("tiles-00001.h5' is missing"), std::string::npos) << err;
  auto manifest = nlohmann::json::parse(std::ifstream(r.manifest));
  manifest["shards"].erase(1);
  manifest["shards"][0]["records"] = 7;
  write_text(r.manifest, manifest.dump());
  err = error_of([&] { TileDataset::open(r.manifest); });
  EXPECT_NE(err.find("holds 1 records, the manifest says 7"), std::string::npos) << err;
  EXPECT_NE(error_of([&] { TileDataset::open((f.dir / "nothing").string()); }).find("not found"), std::string::npos);
  fs::remove_all(f.dir);
}

TEST(TileShards, CommandLineBuildEndToEnd) {
  auto f = make_folder("shards_cli", 3);
  write_text(f.dir / "records.tsv",
             "filepath\tcaption\n/elsewhere/x.png\tmissing\ntile_0.png\tone\ntile_1.png\ttwo\ntile_2.png\tthree\n");
  const std::string out = (f.dir / "out").string(), log = (f.dir / "log.txt").string();
  const std::string cmd = std::string(PATHVLM_BINARY) + " shards build " + (f.dir / "records.tsv").string() +
                          " --images " + (f.dir / "img").string() + " --out " + out +
                          " --storage jpeg --shard-size 2 --quiet > " + log + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << std::ifstream(log).rdbuf();
  std::stringstream printed;
  printed << std::ifstream(log).rdbuf();
  EXPECT_NE(printed.str().find("wrote 3 of 4 records into 2 shards"), std::string::npos) << printed.str();
  EXPECT_NE(printed.str().find("1 bad record skipped"), std::string::npos) << printed.str();
  EXPECT_NE(printed.str().find("line 2 '/elsewhere/x.png'"), std::string::npos) << printed.str();
  auto ds = TileDataset::open(out);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.caption(2), "three");
  auto blob = pathvlm::shards::CheckedBytes(pathvlm::shards::open_shard(out + "/tiles-00000.h5"), "images").read(0);
  EXPECT_EQ(sniff_image_format(blob.data(), blob.size()), ImageFormat::Jpeg);  // re-encoded from PNG
  const double err = (ds.image(0).to(torch::kFloat) - f.pngs[0].to(torch::kFloat)).abs().mean().item<double>();
  EXPECT_LT(err, 6.0);

  // Other column names, as open_clip's --csv-img-key / --csv-caption-key name them; a missing one is named.
  write_text(f.dir / "named.tsv", "img_path\tcaption\tcaption_en\ntile_1.png\tzwei\ttwo\n");
  const std::string named = std::string(PATHVLM_BINARY) + " shards build " + (f.dir / "named.tsv").string() +
                            " --images " + (f.dir / "img").string() + " --out " + (f.dir / "named").string() +
                            " --csv-img-key img_path --csv-caption-key caption_en --quiet > " + log + " 2>&1";
  ASSERT_EQ(std::system(named.c_str()), 0) << std::ifstream(log).rdbuf();
  EXPECT_EQ(TileDataset::open((f.dir / "named").string()).caption(0), "two");
  TileShardBuildOptions o;
  o.records = (f.dir / "named.tsv").string();
  o.out_dir = (f.dir / "named2").string();
  o.caption_key = "caption_de";
  EXPECT_NE(error_of([&] { build_tile_shards(o); }).find("needs columns 'filepath' and 'caption_de'"),
            std::string::npos);

  // A bad option is a clear error and a non-zero exit.
  const std::string bad = std::string(PATHVLM_BINARY) + " shards build " + (f.dir / "records.tsv").string() +
                          " --out " + out + " --storage webp > " + log + " 2>&1";
  EXPECT_NE(std::system(bad.c_str()), 0);
  std::stringstream msg;
  msg << std::ifstream(log).rdbuf();
  EXPECT_NE(msg.str().find("storage must be encoded, jpeg, png or raw"), std::string::npos) << msg.str();
  fs::remove_all(f.dir);
}

// ---- TileLoader ------------------------------------------------------------------------------------

namespace {

std::shared_ptr<const TileDataset> loader_dataset(const fs::path& dir, int n) {
  std::string csv = "filepath,caption,label\n";
  fs::create_directories(dir / "img");
  for (int i = 0; i < n; ++i) {
    auto tile = draw_tissue(static_cast<TissueClass>(i % kNumTissueClasses), 40, 48, 500 + i);
    write_image((dir / "img" / ("t" + std::to_string(i) + ".png")).string(), tile);
    csv += "img/t" + std::to_string(i) + ".png,caption " + std::to_string(i) + "," + std::to_string(i % 8) + "\n";
  }
  write_text(dir / "records.csv", csv);
  TileShardBuildOptions o;
  o.records = (dir / "records.csv").string();
  o.out_dir = (dir / "shards").string();
  o.shard_size = 7;
  o.progress = false;
  build_tile_shards(o);
  return std::make_shared<TileDataset>(TileDataset::open(o.out_dir));
}

TileLoaderOptions loader_options(int rank, int world) {
  TileLoaderOptions o;
  o.batch_size = 3;
  o.rank = rank;
  o.world_size = world;
  o.seed = 17;
  o.image_size = 32;
  o.workers = 2;
  o.prefetch = 3;
  return o;
}

}  // namespace

TEST(TileLoader, TrainBatchesFollowTheSamplerAndResumeBitExactly) {
  auto dir = temp_dir("loader_train");
  auto ds = loader_dataset(dir, 20);
  for (int rank = 0; rank < 2; ++rank) {
    TileLoader loader(ds, loader_options(rank, 2));
    DistributedSampler sampler(20, 3, rank, 2, 17);
    EXPECT_EQ(loader.batches_per_epoch(), 3);
    std::vector<Batch> seen;
    for (int b = 0; b < 7; ++b) {  // crosses two epoch boundaries
      auto batch = loader.next();
      ASSERT_TRUE(batch);
      auto expected = sampler.next_batch();
      const auto& indices = batch->at("indices");
      ASSERT_EQ(std::vector<int64_t>(indices.data_ptr<int64_t>(), indices.data_ptr<int64_t>() + 3), expected);
      EXPECT_EQ(batch->samples, 3);
      EXPECT_EQ(batch->at("pixels").sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
      EXPECT_EQ(batch->epoch, sampler.cursor().epoch);
      for (int k = 0; k < 3; ++k) {
        EXPECT_EQ(batch->text("captions")[k], "caption " + std::to_string(expected[k]));
        EXPECT_EQ(batch->at("labels")[k].item<int64_t>(), expected[k] % 8);
        EXPECT_TRUE(torch::equal(batch->at("pixels")[k],
                                 loader.transform(ds->image(expected[k]), batch->epoch, expected[k])));
      }
      seen.push_back(*batch);
    }
    // The same sample in another epoch gets another crop.
    auto first = loader.transform(ds->image(0), 0, 0), later = loader.transform(ds->image(0), 1, 0);
    EXPECT_FALSE(torch::equal(first, later));

    // Resume after batch 4 from the cursor saved then: batches 5.. are identical.
    TileLoader again(ds, loader_options(rank, 2));
    for (int b = 0; b < 4; ++b) again.next();
    auto cursor = again.cursor();
    EXPECT_EQ(cursor.epoch, 1);
    EXPECT_EQ(cursor.batch, 1);
    TileLoader resumed(ds, loader_options(rank, 2));
    resumed.restore(cursor);
    for (int b = 4; b < 7; ++b) {
      auto batch = resumed.next();
      ASSERT_TRUE(batch);
      EXPECT_TRUE(torch::equal(batch->at("indices"), seen[b].at("indices"))) << "rank " << rank << " batch " << b;
      EXPECT_TRUE(torch::equal(batch->at("pixels"), seen[b].at("pixels"))) << "rank " << rank << " batch " << b;
    }
    EXPECT_GE(loader.total_wait_seconds(), 0.0);
  }
  fs::remove_all(dir);
}

// Flips, open_clip's colour jitter and gray scale run after the crop in training, from the record's generator:
// batches equal transform() (hence resume bit for bit), a gray tile's three channels carry one value, both flips turn
// the crop around, evaluation is untouched.
TEST(TileLoader, FlipsAndColourAugmentationsFollowTheCropInTrainingOnly) {
  auto dir = temp_dir("loader_colour");
  auto ds = loader_dataset(dir, 12);
  auto options = loader_options(0, 1);
  TileLoader plain(ds, options);
  options.color = ColorAugment{{0.4, 0.4, 0.4, 0.1}, 1.0, 0.0};
  TileLoader jittered(ds, options);
  options.color = ColorAugment{{0, 0, 0, 0}, 0.0, 1.0};
  TileLoader gray(ds, options);
  const auto a = plain.next(), b = jittered.next(), c = gray.next();
  ASSERT_TRUE(a && b && c);
  EXPECT_TRUE(torch::equal(a->at("indices"), b->at("indices")));
  for (int k = 0; k < 3; ++k) {
    const int64_t i = b->at("indices")[k].item<int64_t>();
    EXPECT_FALSE(torch::equal(b->at("pixels")[k], a->at("pixels")[k]));
    EXPECT_TRUE(torch::equal(b->at("pixels")[k], jittered.transform(ds->image(i), b->epoch, i)));
    // Gray: undo the normalisation, and the channels agree (the crop is the plain loader's, made gray).
    const auto& mean = kOpenAiMean;
    const auto& sd = kOpenAiStd;
    auto values = c->at("pixels")[k].clone();
    for (int ch = 0; ch < 3; ++ch) values[ch] = values[ch] * sd[ch] + mean[ch];
    EXPECT_LT((values[0] - values[2]).abs().max().item<double>(), 1e-5);
    auto plain_crop = a->at("pixels")[k].clone();
    for (int ch = 0; ch < 3; ++ch) plain_crop[ch] = plain_crop[ch] * sd[ch] + mean[ch];
    const auto expected_gray = (plain_crop * 255).round().to(torch::kByte).permute({1, 2, 0}).contiguous();
    EXPECT_TRUE(torch::equal((values[0] * 255).round().to(torch::kByte), to_grayscale(expected_gray).select(2, 0)));
  }
  // Flips: with probability 1 each, the plain crop turned 180 degrees, whatever the crop was.
  options.color = ColorAugment{};
  options.hflip_prob = options.vflip_prob = 1;
  TileLoader flipped(ds, options);
  const auto f = flipped.next();
  EXPECT_TRUE(torch::equal(f->at("pixels"), a->at("pixels").flip({2, 3})));
  options.hflip_prob = options.vflip_prob = 0;

  options.train = false;
  auto options_plain = loader_options(0, 1);
  options_plain.train = false;
  TileLoader eval_gray(ds, options), eval_plain(ds, options_plain);
  EXPECT_TRUE(torch::equal(eval_gray.next()->at("pixels"), eval_plain.next()->at("pixels")));
  fs::remove_all(dir);
}

// The workers crop to uint8 [B,3,S,S] (a quarter of float32's bytes to copy to a GPU); the loader normalises the
// batch where it arrives, bit for bit what the workers' per-crop normalisation gave before (its formula kept here
// as the reference), in training (RandomResizedCrop seeded per record) and evaluation (resize + center crop).
TEST(TileLoader, WorkersBuildUint8PixelsNormalisedBitwiseWhereTheyArrive) {
  auto per_crop = [](const torch::Tensor& rgb, const std::array<double, 3>& m, const std::array<double, 3>& s) {
    auto mt = torch::tensor({m[0], m[1], m[2]}, torch::kFloat).view({3, 1, 1});
    auto st = torch::tensor({s[0], s[1], s[2]}, torch::kFloat).view({3, 1, 1});
    return rgb.permute({2, 0, 1}).to(torch::kFloat).div_(255.0f).sub_(mt).div_(st).contiguous();
  };
  auto dir = temp_dir("loader_uint8");
  auto ds = loader_dataset(dir, 10);
  for (bool train : {true, false}) {
    auto o = loader_options(0, 1);
    o.train = train;
    o.mean = {0.5, 0.4, 0.3};
    o.std = {0.2, 0.25, 0.3};
    BatchRequest request;
    request.records = {4, 0, 7};
    request.epoch = 2;
    request.seed = o.seed;
    auto crops = tile_batch_builder(ds, o)(request).at("pixels");
    ASSERT_EQ(crops.scalar_type(), torch::kByte);
    ASSERT_EQ(crops.sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
    for (int64_t k = 0; k < 3; ++k) {
      const auto image = ds->image(request.records[k]);
      auto gen = request.generator(k);
      auto crop = train ? random_resized_crop(image, 32, gen, o.crop_scale, o.crop_ratio)
                        : resize_shortest_and_center_crop(image, 32);
      EXPECT_TRUE(torch::equal(crops[k], crop.permute({2, 0, 1}))) << "train " << train << " row " << k;
    }

    TileLoader loader(ds, o);
    for (int b = 0; b < 3; ++b) {
      auto batch = loader.next();
      ASSERT_TRUE(batch);
      const auto& pixels = batch->at("pixels");
      ASSERT_EQ(pixels.scalar_type(), torch::kFloat);
      std::vector<torch::Tensor> old_style;  // the per-tile normalisation the workers did before
      for (int64_t k = 0; k < batch->samples; ++k) {
        const int64_t i = batch->at("indices")[k].item<int64_t>();
        BatchRequest one;
        one.records = {i};
        one.epoch = batch->epoch;
        one.seed = o.seed;
        auto gen = one.generator(0);
        auto crop = train ? random_resized_crop(ds->image(i), 32, gen, o.crop_scale, o.crop_ratio)
                          : resize_shortest_and_center_crop(ds->image(i), 32);
        old_style.push_back(per_crop(crop, o.mean, o.std));
      }
      EXPECT_TRUE(torch::equal(pixels, torch::stack(old_style))) << "train " << train << " batch " << b;
    }
  }

  // Off the CPU the normalisation runs after the copy (the meta device stands in for a GPU: shapes, no data).
  auto o = loader_options(0, 1);
  o.device = torch::kMeta;
  TileLoader meta(ds, o);
  auto batch = meta.next();
  EXPECT_TRUE(batch->at("pixels").is_meta());
  EXPECT_EQ(batch->at("pixels").scalar_type(), torch::kFloat);
  EXPECT_EQ(batch->at("pixels").sizes(), (std::vector<int64_t>{3, 3, 32, 32}));
  fs::remove_all(dir);
}

// On CUDA the workers' uint8 batches are uploaded (the following one on a side stream while the current step
// runs) and normalised on the GPU: the CPU's batches in the same order (CUDA divides by a scalar through its
// reciprocal, so a last bit may differ), the cursor counting only the batches handed out, and a resume identical.
TEST(TileLoaderCuda, SideStreamUploadDeliversTheCpuBatches) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  auto dir = temp_dir("loader_cuda");
  auto ds = loader_dataset(dir, 20);
  auto o = loader_options(0, 1);
  TileLoader cpu(ds, o);
  o.device = torch::Device(torch::kCUDA, 0);
  TileLoader gpu(ds, o);
  auto step = torch::randn({1024, 1024}, o.device);
  std::vector<torch::Tensor> seen;
  for (int b = 0; b < 8; ++b) {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // the following batch is built: uploaded ahead
    auto expected = cpu.next();
    auto batch = gpu.next();
    step = step.matmul(step).tanh();  // work on the current stream while the next batch uploads
    const auto& pixels = batch->at("pixels");
    ASSERT_TRUE(pixels.is_cuda());
    EXPECT_EQ(pixels.scalar_type(), torch::kFloat);
    EXPECT_TRUE(torch::equal(batch->at("indices").cpu(), expected->at("indices"))) << "batch " << b;
    EXPECT_TRUE(torch::allclose(pixels.cpu(), expected->at("pixels"), 1e-5, 1e-5)) << "batch " << b;
    EXPECT_EQ(gpu.cursor().epoch, cpu.cursor().epoch);
    EXPECT_EQ(gpu.cursor().batch, cpu.cursor().batch);
    seen.push_back(pixels);
  }
  TileLoader resumed(ds, o);
  TileLoader first(ds, o);
  for (int b = 0; b < 5; ++b) first.next();
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  first.next();  // batch 5 handed out; batch 6 is being uploaded ahead and does not count
  resumed.restore(first.cursor());
  for (int b = 6; b < 8; ++b) EXPECT_TRUE(torch::equal(resumed.next()->at("pixels"), seen[b])) << "batch " << b;
  fs::remove_all(dir);
}

TEST(TileLoader, EvalPassCoversEveryRecordOnceAcrossRanks) {
  auto dir = temp_dir("loader_eval");
  auto ds = loader_dataset(dir, 11);
  std::vector<int64_t> all;
  for (int rank = 0; rank < 3; ++rank) {
    auto o = loader_options(rank, 3);
    o.train = false;
    TileLoader loader(ds, o);
    auto [begin, end] = eval_share(11, o.batch_size, rank, 3);
    EXPECT_EQ(loader.batches_per_epoch(), (end - begin + 2) / 3);
    int batches = 0;
    while (auto batch = loader.next()) {
      ++batches;
      for (int64_t k = 0; k < batch->samples; ++k) {
        const int64_t i = batch->at("indices")[k].item<int64_t>();
        all.push_back(i);
        auto expected = normalize_openai(resize_shortest_and_center_crop(ds->image(i), 32));
        EXPECT_TRUE(torch::equal(batch->at("pixels")[k], expected));
      }
    }
    EXPECT_EQ(batches, loader.batches_per_epoch());
    EXPECT_FALSE(loader.next());  // stays exhausted
    loader.restore({});           // rewinds
    EXPECT_TRUE(loader.next());
  }
  std::sort(all.begin(), all.end());
  std::vector<int64_t> expected(11);
  std::iota(expected.begin(), expected.end(), 0);
  EXPECT_EQ(all, expected);
  fs::remove_all(dir);
}

TEST(TileLoader, WorkersTokenizeTheCaptions) {
  const std::string vocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";
  if (!fs::exists(vocab)) GTEST_SKIP() << "shared test data missing: " << vocab;
  auto dir = temp_dir("loader_tokens");
  auto ds = loader_dataset(dir, 8);
  auto tokenizer = std::make_shared<const pathvlm::text::ClipTokenizer>(vocab, 16);
  for (bool train : {true, false}) {
    auto o = loader_options(0, 1);
    o.train = train;
    o.tokenizer = tokenizer;
    TileLoader loader(ds, o);
    for (int b = 0; b < 2; ++b) {
      auto batch = loader.next();
      ASSERT_TRUE(batch);
      const auto& ids = batch->at("input_ids");
      EXPECT_EQ(ids.sizes(), (std::vector<int64_t>{3, 16}));
      EXPECT_TRUE(torch::equal(ids, tokenizer->batch(batch->text("captions"))));
      EXPECT_EQ(ids[0][0].item<int64_t>(), pathvlm::text::ClipTokenizer::kStartOfText);
    }
  }
  auto untokenized = loader_options(0, 1);
  TileLoader plain(ds, untokenized);
  EXPECT_EQ(plain.next()->tensors.count("input_ids"), 0u);
  fs::remove_all(dir);
}

TEST(TileLoader, CorruptStoredImageIsAClearError) {
  auto dir = temp_dir("loader_corrupt");
  const std::string path = (dir / "bad.h5").string();
  {
    auto file = pathvlm::h5::File::create(path);
    pathvlm::shards::write_schema(file, pathvlm::shards::ShardKind::Tiles);
    auto good = encode_png(draw_tissue(TissueClass::Stroma, 16, 16, 1));
    Bytes broken(good.begin(), good.begin() + 40);
    file.write_blobs("images", {good, broken, good});
    file.write_strings("captions", {"a", "b", "c"});
    file.write_strings("ids", {"x", "y", "z"});
  }
  pathvlm::shards::seal_shard(path, path);
  auto ds = std::make_shared<TileDataset>(TileDataset::open(path));
  auto o = loader_options(0, 1);
  o.train = false;
  TileLoader loader(ds, o);
  auto err = error_of([&] { loader.next(); });
  EXPECT_NE(err.find("shard '" + path + "' record 1 (id 'y')"), std::string::npos) << err;
  EXPECT_NE(err.find("corrupt PNG"), std::string::npos) << err;
  fs::remove_all(dir);
}
