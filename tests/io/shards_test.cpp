// Shard schemas (the streaming schema 1 and the sealed schema 2) and validation, and
// `pathvlm shards inspect|validate|upgrade` / `pathvlm weights inspect` end to end.
#include <gtest/gtest.h>
#include <hdf5.h>

#include <nlohmann/json.hpp>

#include "io/hdf5.h"
#include "io/shard_envelope.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "io_test_util.h"
#include "io/safetensors.h"

using pathvlm::testing::ScratchDir;
namespace h5 = pathvlm::h5;
namespace shards = pathvlm::shards;
using shards::ShardKind;

namespace {

const h5::Blob kJpeg = {0xFF, 0xD8, 0xFF, 0xE0, 0, 16, 'J', 'F', 'I', 'F'};
const h5::Blob kPng = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13};
// A whole 1x1 RGB PNG: `shards validate` decodes tiles images as training does, so its "ok" needs real ones.
const h5::Blob kDecodablePng = {
    0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00,
    0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x02, 0x00, 0x00, 0x00, 0x90, 0x77, 0x53, 0xDE, 0x00, 0x00, 0x00,
    0x0C, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x58, 0x10, 0xD0, 0x00, 0x00, 0x03, 0x04, 0x01, 0x71, 0xB4,
    0x70, 0x6B, 0x3C, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82};

void write_tiles(const std::string& path, int n, bool encoded, bool decodable = false) {
  auto f = h5::File::create(path);
  shards::write_schema(f, ShardKind::Tiles);
  std::vector<std::string> ids, captions;
  std::vector<h5::Blob> images;
  for (int i = 0; i < n; ++i) {
    ids.push_back("tile_" + std::to_string(i));
    captions.push_back("H&E tile number " + std::to_string(i));
    images.push_back(decodable ? kDecodablePng : i % 2 ? kPng : kJpeg);
  }
  f.create_strings("ids").append_strings(ids);  // extendable, as streaming shard writers make them
  f.create_strings("captions").append_strings(captions);
  if (encoded) {
    f.create_blobs("images").append_blobs(images);
  } else {
    h5::DatasetOptions opt;
    opt.chunk = {1, 8, 8, 3};
    f.write("images", torch::randint(0, 255, {n, 8, 8, 3}, torch::kUInt8), opt);
  }
  f.write("labels", torch::arange(n, torch::kInt32));
}

void write_features(const std::string& path, int n) {
  auto f = h5::File::create(path);
  shards::write_schema(f, ShardKind::TileFeatures);
  std::vector<std::string> ids;
  for (int i = 0; i < n; ++i) ids.push_back("tile_" + std::to_string(i));
  f.write_strings("ids", ids);
  f.write("features", torch::randn({n, 4, 8}).to(torch::kFloat16));
}

void write_slide(h5::File& f, const std::string& id, int tiles) {
  auto g = f.create_group("slides/" + id);
  g.write("features", torch::randn({tiles, 16}));
  g.write("coords", torch::arange(tiles * 2, torch::kInt64).reshape({tiles, 2}) * 256);
  g.set_attr("patch_size", 256);
  g.set_attr("patch_size_level0", 512);
  g.set_attr("mpp", 0.5);
  g.set_attr("magnification", 20.0);
  g.set_attr("encoder", "uni_v1");
}

void write_slides(const std::string& path) {
  auto f = h5::File::create(path);
  shards::write_schema(f, ShardKind::Slides);
  write_slide(f, "TCGA-01", 5);
  write_slide(f, "TCGA-02", 3);
  f.write_strings("reports/slide_id", {"TCGA-01", "TCGA-02"});
  f.write_strings("reports/text", {"Invasive ductal carcinoma.", "Benign breast tissue."});
}

}  // namespace

TEST(ShardSchema, ValidShardsOfEveryKind) {
  ScratchDir dir;
  write_tiles(dir / "enc.h5", 6, true);
  write_tiles(dir / "raw.h5", 4, false);
  write_features(dir / "feat.h5", 5);
  write_slides(dir / "slides.h5");
  struct Case {
    const char* file;
    ShardKind kind;
    int64_t records;
  };
  for (const Case& c : {Case{"enc.h5", ShardKind::Tiles, 6}, Case{"raw.h5", ShardKind::Tiles, 4},
                        Case{"feat.h5", ShardKind::TileFeatures, 5}, Case{"slides.h5", ShardKind::Slides, 2}}) {
    SCOPED_TRACE(c.file);
    {
      auto staged = h5::File::open(dir / c.file);
      EXPECT_EQ(staged.attr_string("pathvlm_schema"), shards::kind_name(c.kind) + "/1");
      EXPECT_EQ(shards::check_schema(staged), c.kind);
      EXPECT_ERROR_HAS(shards::open_shard(dir / c.file), c.file, "no integrity header",
                       "run `pathvlm shards upgrade");
    }
    shards::seal_shard(dir / c.file, dir / c.file);
    auto f = shards::open_shard(dir / c.file);
    EXPECT_EQ(f.attr_string("pathvlm_schema"), shards::kind_name(c.kind) + "/2");
    EXPECT_EQ(shards::read_schema(f), c.kind);
    EXPECT_EQ(shards::read_schema_version(f), 2);
    EXPECT_EQ(shards::check_schema(f), c.kind);
    EXPECT_EQ(shards::record_count(f, c.kind), c.records);
    auto report = shards::validate(f);
    EXPECT_EQ(report.kind, c.kind);
    EXPECT_EQ(report.records, c.records);
    EXPECT_EQ(report.bad_records, 0);
    EXPECT_TRUE(report.bad.empty());
  }
  EXPECT_EQ(shards::kind_from_name("tile_features"), ShardKind::TileFeatures);
  EXPECT_ERROR_HAS(shards::kind_from_name("tile"), "unknown shard kind 'tile'");
}

TEST(ShardSchema, SchemaAttributeErrors) {
  ScratchDir dir;
  const std::string path = dir / "s.h5";
  auto with_schema = [&](const char* value) {
    auto f = h5::File::create(path);
    if (value) f.set_attr("pathvlm_schema", value);
  };
  auto read = [&] { shards::read_schema(h5::File::open(path)); };
  with_schema(nullptr);
  EXPECT_ERROR_HAS(read(), "s.h5", "not a pathvlm shard", "pathvlm_schema");
  with_schema("tiles");
  EXPECT_ERROR_HAS(read(), "s.h5", "not of the form");
  with_schema("patches/1");
  EXPECT_ERROR_HAS(read(), "s.h5", "unknown shard kind 'patches'");
  with_schema("tiles/3");
  EXPECT_ERROR_HAS(read(), "s.h5", "version 3", "newer pathvlm");
  with_schema("tiles/x");
  EXPECT_ERROR_HAS(read(), "version 'x' is not a number");
  with_schema("tiles/0");
  EXPECT_ERROR_HAS(read(), "version 0 is not valid");
}

TEST(ShardSchema, StructureErrorsNameFileAndDataset) {
  ScratchDir dir;
  const std::string path = dir / "t.h5";
  auto check = [&] { shards::check_schema(h5::File::open(path)); };
  write_tiles(path, 3, true);
  {
    auto f = h5::File::open_rw(path);
    H5Ldelete(f.id(), "captions", H5P_DEFAULT);
  }
  EXPECT_ERROR_HAS(check(), "t.h5", "no dataset '/captions'");

  write_tiles(path, 3, true);
  {
    auto f = h5::File::open_rw(path);
    H5Ldelete(f.id(), "labels", H5P_DEFAULT);
    f.write("labels", torch::zeros({3}, torch::kInt64));
  }
  EXPECT_ERROR_HAS(check(), "t.h5", "'/labels'", "dtype int64, expected int32");

  write_tiles(path, 3, true);
  h5::File::open_rw(path).dataset("ids").append_strings({"extra"});
  EXPECT_ERROR_HAS(check(), "t.h5", "'/images' holds 3 images but /ids has 4 rows");

  {
    auto f = h5::File::create(path);
    shards::write_schema(f, ShardKind::Tiles);
    f.write("images", torch::zeros({2, 4, 4, 4}, torch::kUInt8));
  }
  EXPECT_ERROR_HAS(check(), "'/images'", "expected [N,H,W,3]");

  {
    auto f = h5::File::create(path);
    shards::write_schema(f, ShardKind::TileFeatures);
    f.write_strings("ids", {"a"});
    f.write("features", torch::zeros({1, 2, 3}, torch::kInt32));
  }
  EXPECT_ERROR_HAS(check(), "t.h5", "'/features'", "dtype int32, expected float16 or float32");

  {
    auto f = h5::File::create(path);
    shards::write_schema(f, ShardKind::Slides);
    write_slide(f, "s1", 2);
    f.group("slides/s1").set_attr("mpp", "half");
  }
  EXPECT_ERROR_HAS(check(), "t.h5", "group '/slides/s1'", "attribute 'mpp' is not a number");

  {
    auto f = h5::File::create(path);
    shards::write_schema(f, ShardKind::Slides);
  }
  EXPECT_ERROR_HAS(check(), "t.h5", "no group '/slides'");
}

TEST(ShardSchema, ValidateReportsBadRecords) {
  ScratchDir dir;
  {
    auto f = h5::File::create(dir / "tiles.h5");
    shards::write_schema(f, ShardKind::Tiles);
    f.write_strings("ids", {"a", "b", "a", "", "e"});
    f.write_strings("captions", {"ok", "  ", "ok", "ok", "ok"});
    f.create_blobs("images").append_blobs({kJpeg, kPng, kJpeg, kJpeg, {'G', 'I', 'F', '8', '9', 'a'}});
  }
  shards::seal_shard(dir / "tiles.h5", dir / "tiles.h5");
  auto report = shards::validate(shards::open_shard(dir / "tiles.h5"));
  EXPECT_EQ(report.records, 5);
  EXPECT_EQ(report.bad_records, 4);  // records 1, 2, 3, 4
  std::map<int64_t, std::string> problems;
  for (const auto& b : report.bad) problems[b.index] += b.problem + ";";
  EXPECT_NE(problems[1].find("empty caption"), std::string::npos);
  EXPECT_NE(problems[2].find("duplicate id (first at record 0)"), std::string::npos);
  EXPECT_NE(problems[3].find("empty id"), std::string::npos);
  EXPECT_NE(problems[4].find("neither a JPEG nor a PNG"), std::string::npos);

  shards::ValidateOptions options;
  options.max_reported = 1;
  options.check_image = [](const h5::Blob& b) { return b.size() > 10 ? "too large" : ""; };
  report = shards::validate(shards::open_shard(dir / "tiles.h5"), options);
  EXPECT_EQ(report.bad.size(), 1u);
  EXPECT_EQ(report.bad_records, 4);  // the extra check also flags the 12-byte PNG of record 1, already bad
}

TEST(ShardSchema, ValidateFeaturesAndSlides) {
  ScratchDir dir;
  {
    auto f = h5::File::create(dir / "feat.h5");
    shards::write_schema(f, ShardKind::TileFeatures);
    f.write_strings("ids", {"t0", "t1", "t2"});
    torch::Tensor x = torch::zeros({3, 2, 2}, torch::kFloat16);
    x[1][0][1] = std::numeric_limits<float>::quiet_NaN();
    f.write("features", x);
  }
  shards::seal_shard(dir / "feat.h5", dir / "feat.h5");
  auto report = shards::validate(shards::open_shard(dir / "feat.h5"));
  ASSERT_EQ(report.bad_records, 1);
  EXPECT_EQ(report.bad[0].index, 1);
  EXPECT_EQ(report.bad[0].id, "t1");
  EXPECT_NE(report.bad[0].problem.find("NaN"), std::string::npos);

  {
    auto f = h5::File::create(dir / "slides.h5");
    shards::write_schema(f, ShardKind::Slides);
    write_slide(f, "A", 4);
    write_slide(f, "B", 4);
    write_slide(f, "C", 2);
    H5Ldelete(f.group("slides/B").id(), "coords", H5P_DEFAULT);
    f.group("slides/B").write("coords", torch::zeros({3, 2}, torch::kInt64));
    H5Adelete(f.group("slides/C").id(), "encoder");
    f.write_strings("reports/slide_id", {"A", "Z"});
    f.write_strings("reports/text", {"fine", "orphan"});
  }
  shards::seal_shard(dir / "slides.h5", dir / "slides.h5");
  report = shards::validate(shards::open_shard(dir / "slides.h5"));
  EXPECT_EQ(report.records, 3);
  std::map<std::string, std::string> problems;
  for (const auto& b : report.bad) problems[b.id] += b.problem + ";";
  EXPECT_EQ(problems.count("A"), 0u);
  EXPECT_NE(problems["B"].find("has 4 rows but /slides/B/coords has 3"), std::string::npos) << problems["B"];
  EXPECT_NE(problems["C"].find("no attribute 'encoder'"), std::string::npos) << problems["C"];
  EXPECT_NE(problems["Z"].find("names slide 'Z', which is not in /slides"), std::string::npos);
  EXPECT_ERROR_HAS(shards::check_schema(shards::open_shard(dir / "slides.h5")), "slides.h5", "/slides/B");
}

// ---- the pathvlm program ---------------------------------------------------------------------------------------

namespace {
bool have_binary() { return std::filesystem::exists(PATHVLM_BINARY); }
int run_pathvlm(const std::string& arguments, std::string& output) {
  return pathvlm::testing::run_command(std::string(PATHVLM_BINARY) + " " + arguments, output);
}
bool has(const std::string& output, const std::string& part) { return output.find(part) != std::string::npos; }
}  // namespace

TEST(ShardsCli, InspectPrintsKindCountsShapesAndSample) {
  if (!have_binary()) GTEST_SKIP() << "the pathvlm program is not built (" << PATHVLM_BINARY << ")";
  ScratchDir dir;
  write_tiles(dir / "tiles.h5", 3, true);
  write_features(dir / "feat.h5", 2);
  write_slides(dir / "slides.h5");
  std::string out;
  ASSERT_EQ(run_pathvlm("shards inspect " + (dir / "tiles.h5") + " " + (dir / "feat.h5") + " " + (dir / "slides.h5"), out),
            0)
      << out;
  EXPECT_TRUE(has(out, "schema        tiles version 1")) << out;
  EXPECT_TRUE(has(out, "/images  vlen uint8 blob [3]")) << out;
  EXPECT_TRUE(has(out, "/captions  vlen utf-8 string [3]")) << out;
  EXPECT_TRUE(has(out, "records       3")) << out;
  EXPECT_TRUE(has(out, "caption     \"H&E tile number 0\"")) << out;
  EXPECT_TRUE(has(out, "image       JPEG, 10 bytes")) << out;
  EXPECT_TRUE(has(out, "label       0")) << out;
  EXPECT_TRUE(has(out, "schema        tile_features version 1")) << out;
  EXPECT_TRUE(has(out, "/features  float16 [2, 4, 8]")) << out;
  EXPECT_TRUE(has(out, "schema        slides version 1")) << out;
  EXPECT_TRUE(has(out, "slides        2 (8 tiles in all)")) << out;
  EXPECT_TRUE(has(out, "sample report TCGA-01: \"Invasive ductal carcinoma.\"")) << out;
  EXPECT_TRUE(has(out, "@encoder = \"uni_v1\"")) << out;

  ASSERT_EQ(run_pathvlm("shards inspect " + (dir / "missing.h5"), out), 1);
  EXPECT_TRUE(has(out, "missing.h5': no such file")) << out;
  ASSERT_EQ(run_pathvlm("shards", out), 1);
  EXPECT_TRUE(has(out, "inspect") && has(out, "validate")) << out;
  ASSERT_EQ(run_pathvlm("shards frobnicate", out), 1);
  EXPECT_TRUE(has(out, "unknown verb 'frobnicate'")) << out;
}

TEST(ShardsCli, ValidateExitsNonZeroOnBadRecords) {
  if (!have_binary()) GTEST_SKIP() << "the pathvlm program is not built (" << PATHVLM_BINARY << ")";
  ScratchDir dir;
  write_tiles(dir / "good.h5", 4, true, /*decodable=*/true);
  shards::seal_shard(dir / "good.h5", dir / "good.h5");
  std::string out;
  ASSERT_EQ(run_pathvlm("shards validate " + (dir / "good.h5"), out), 0) << out;
  EXPECT_TRUE(has(out, "good.h5: ok (tiles, 4 records)")) << out;
  {
    auto f = h5::File::create(dir / "bad.h5");
    shards::write_schema(f, ShardKind::Tiles);
    f.write_strings("ids", {"tile_0", "tile_9"});
    f.write_strings("captions", {"fine", ""});
    f.create_blobs("images").append_blobs({kDecodablePng, {'B', 'M'}});
  }
  shards::seal_shard(dir / "bad.h5", dir / "bad.h5");
  ASSERT_EQ(run_pathvlm("shards validate " + (dir / "bad.h5"), out), 1) << out;
  EXPECT_TRUE(has(out, "1 bad of 2 records")) << out;
  EXPECT_TRUE(has(out, "record 1 id \"tile_9\" : empty caption")) << out;
  EXPECT_TRUE(has(out, "neither a JPEG nor a PNG")) << out;
  write_features(dir / "feat.h5", 2);
  shards::seal_shard(dir / "feat.h5", dir / "feat.h5");
  write_features(dir / "old.h5", 2);
  pathvlm::testing::write_bytes(dir / "junk.h5", "junk");
  ASSERT_EQ(run_pathvlm("shards validate " + (dir / "feat.h5") + " " + (dir / "junk.h5") + " " + (dir / "old.h5"),
                        out),
            1)
      << out;
  EXPECT_TRUE(has(out, "feat.h5: ok (tile_features, 2 records)")) << out;
  EXPECT_TRUE(has(out, "junk.h5: invalid: shard '" + (dir / "junk.h5") + "' has no integrity header")) << out;
  EXPECT_TRUE(has(out, "old.h5: invalid: shard '" + (dir / "old.h5") + "' has no integrity header")) << out;
  EXPECT_TRUE(has(out, "run `pathvlm shards upgrade " + (dir / "old.h5") + "`")) << out;
  EXPECT_TRUE(has(out, "1 of 3 shards ok")) << out;

  // A damaged record is reported by number; a damaged header or truncated file names the file.
  std::string bytes = pathvlm::testing::read_bytes(dir / "good.h5");
  const auto images = shards::open_shard(dir / "good.h5").dataset("images").storage();
  bytes[images.offset + 1] ^= 0x10;  // in record 0's image bytes
  pathvlm::testing::write_bytes(dir / "flipped.h5", bytes);
  pathvlm::testing::write_bytes(dir / "cut.h5", bytes.substr(0, bytes.size() - 100));
  bytes[images.offset + 1] ^= 0x10;
  bytes[shards::envelope_bytes(1) + 20] ^= 0x01;  // HDF5's superblock, right after the user block
  pathvlm::testing::write_bytes(dir / "meta.h5", bytes);
  ASSERT_EQ(run_pathvlm("shards validate " + (dir / "flipped.h5") + " " + (dir / "cut.h5") + " " + (dir / "meta.h5"),
                        out),
            1)
      << out;
  EXPECT_TRUE(has(out, "1 bad of 4 records")) << out;
  EXPECT_TRUE(has(out, "record 0 id \"tile_0\" : shard '" + (dir / "flipped.h5") + "' record 0 (/images): checksum mismatch"))
      << out;
  EXPECT_TRUE(has(out, "shard '" + (dir / "cut.h5") + "' is truncated: ")) << out;
  EXPECT_TRUE(has(out, "shard '" + (dir / "meta.h5") + "' is corrupt: metadata checksum mismatch")) << out;
}

TEST(ShardsCli, UpgradeRewritesOldShardsInPlace) {
  if (!have_binary()) GTEST_SKIP() << "the pathvlm program is not built (" << PATHVLM_BINARY << ")";
  ScratchDir dir;
  write_tiles(dir / "tiles.h5", 5, true, /*decodable=*/true);
  write_slides(dir / "slides.h5");
  pathvlm::testing::write_bytes(dir / "junk.h5", "junk");
  std::string out;
  ASSERT_EQ(run_pathvlm("shards upgrade " + (dir / "tiles.h5") + " " + (dir / "slides.h5"), out), 0) << out;
  EXPECT_TRUE(has(out, "tiles.h5: upgraded to schema 2")) << out;
  ASSERT_EQ(run_pathvlm("shards validate " + (dir / "tiles.h5") + " " + (dir / "slides.h5"), out), 0) << out;
  auto tiles = shards::open_shard(dir / "tiles.h5");
  EXPECT_EQ(tiles.read_strings("captions")[4], "H&E tile number 4");
  EXPECT_TRUE(torch::equal(tiles.read("labels"), torch::arange(5, torch::kInt32)));
  auto slides = shards::open_shard(dir / "slides.h5");
  EXPECT_EQ(slides.group("slides/TCGA-01").attr_string("encoder"), "uni_v1");
  EXPECT_EQ(slides.group("slides/TCGA-02").dataset("coords").read().sum().item<int64_t>(), 15 * 256);

  ASSERT_EQ(run_pathvlm("shards upgrade " + (dir / "tiles.h5") + " " + (dir / "junk.h5"), out), 1) << out;
  EXPECT_TRUE(has(out, "tiles.h5: already schema 2")) << out;
  EXPECT_TRUE(has(out, "junk.h5: not upgraded: upgrading shard '" + (dir / "junk.h5") + "'")) << out;
  EXPECT_TRUE(has(out, "not an HDF5 file")) << out;
  EXPECT_EQ(pathvlm::testing::read_bytes(dir / "junk.h5"), "junk");  // a failed upgrade keeps the old file
  EXPECT_FALSE(std::filesystem::exists(dir / "junk.h5.upgraded"));
}

TEST(WeightsCli, InspectListsDtypeShapeChecksumAndReshards) {
  if (!have_binary()) GTEST_SKIP() << "the pathvlm program is not built (" << PATHVLM_BINARY << ")";
  ScratchDir dir;
  namespace st = pathvlm::safetensors;
  torch::Tensor w = torch::arange(12, torch::kFloat32).reshape({3, 4});
  torch::Tensor b = torch::ones({4}, torch::kBFloat16);
  st::save(dir / "m.safetensors", {{"proj.weight", w}, {"proj.bias", b}});
  std::string out;
  ASSERT_EQ(run_pathvlm("weights inspect " + (dir / "m.safetensors"), out), 0) << out;
  EXPECT_TRUE(has(out, "2 tensors, 56 bytes in 1 file(s)")) << out;
  char crc[16];
  std::snprintf(crc, sizeof crc, "%08x", st::checksum(w));
  EXPECT_TRUE(has(out, "proj.weight") && has(out, "F32") && has(out, "[3, 4]") && has(out, crc)) << out;
  EXPECT_TRUE(has(out, "BF16")) << out;

  ASSERT_EQ(run_pathvlm("weights reshard " + (dir / "m.safetensors") + " " + (dir / "sharded") + " --max-shard-size 40",
                    out),
            0)
      << out;
  EXPECT_TRUE(has(out, "model.safetensors.index.json")) << out;
  auto ckpt = st::Checkpoint::open(dir / "sharded");
  EXPECT_EQ(ckpt.files().size(), 2u);
  EXPECT_TRUE(torch::equal(ckpt.get("proj.weight"), w));
  ASSERT_EQ(run_pathvlm("weights inspect --format json " + (dir / "sharded"), out), 0) << out;
  auto json = nlohmann::json::parse(out);
  EXPECT_EQ(json["tensors"].size(), 2u);
  EXPECT_EQ(json["tensors"][1]["name"], "proj.weight");
  EXPECT_EQ(json["tensors"][1]["crc32"], crc);
  EXPECT_EQ(json["tensors"][1]["shape"], nlohmann::json::array({3, 4}));

  ASSERT_EQ(run_pathvlm("weights reshard " + (dir / "sharded") + " " + (dir / "half") + " --dtype F16", out), 0) << out;
  EXPECT_EQ(st::Checkpoint::open(dir / "half").get("proj.weight").scalar_type(), torch::kFloat16);
  EXPECT_EQ(st::Checkpoint::open(dir / "half").get("proj.bias").scalar_type(), torch::kFloat16);

  pathvlm::testing::write_bytes(dir / "bad.safetensors", std::string("\x07\0\0\0\0\0\0\0", 8) + "{\"a\": }");
  ASSERT_EQ(run_pathvlm("weights inspect " + (dir / "bad.safetensors"), out), 2) << out;
  EXPECT_TRUE(has(out, "bad.safetensors") && has(out, "invalid JSON")) << out;
}
