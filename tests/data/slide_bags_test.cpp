// Slide bags: per-slide .h5 files in TRIDENT layout (float16 features in (1, D) chunks, int64 coords with
// TRIDENT's attributes) and CLAM layout (float32 features, int32 coords, no attributes) listed by a CSV manifest,
// and `slides` shards packed by the code `pathvlm embed` runs; deterministic tile sampling, padded batches whose
// rows are the file's rows, evaluation over all or evenly spaced tiles, bad slides counted per source and problem
// with the threshold error, CSV quoting, report files, duplicate ids, and a bounded number of open files.
#include "data/slide_bags.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "data/loader.h"
#include "io/hdf5.h"
#include "io/shard_schema.h"
#include "io/shard_seal.h"
#include "test_util.h"
#include "wsi/embed.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using data::SlideBagDataset;
using data::SlideBagOptions;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;

namespace {

struct Bag {
  torch::Tensor features;  // [N,D], stored in its dtype
  torch::Tensor coords;    // [N,2], stored in its dtype
};

Bag make_bag(int64_t n, int64_t d, torch::ScalarType features_dtype, torch::ScalarType coords_dtype, int seed) {
  torch::manual_seed(seed);
  Bag b;
  b.features = torch::randn({n, d}).to(features_dtype);
  b.coords = (torch::arange(0, 2 * n, torch::kInt64).reshape({n, 2}) * 256 + seed).to(coords_dtype);
  return b;
}

// TRIDENT's IO.save_h5 layout: features chunked (1, D) with name/savetodir/encoder, coords with the patcher's attrs.
void write_trident(const std::string& path, const Bag& b, const std::string& name) {
  fs::create_directories(fs::path(path).parent_path());
  auto f = h5::File::create(path);
  h5::DatasetOptions one_row;
  one_row.chunk = {1, b.features.size(1)};
  auto features = f.write("features", b.features, one_row);
  features.set_attr("name", name);
  features.set_attr("savetodir", "job/20x_256px_0px_overlap/features_conch_v15");
  features.set_attr("encoder", "conch_v15");
  auto coords = f.write("coords", b.coords);
  coords.set_attr("patch_size", int64_t{256});
  coords.set_attr("patch_size_level0", int64_t{512});
  coords.set_attr("level0_magnification", int64_t{40});
  coords.set_attr("target_magnification", int64_t{20});
  coords.set_attr("overlap", int64_t{0});
  coords.set_attr("name", name);
  coords.set_attr("savetodir", "job/20x_256px_0px_overlap/patches");
  coords.set_attr("level0_width", int64_t{100000});
  coords.set_attr("level0_height", int64_t{80000});
}

// CLAM's extract_features_fp output: float32 features and int32 coords in 32-row chunks, no attributes.
void write_clam(const std::string& path, const Bag& b) {
  fs::create_directories(fs::path(path).parent_path());
  auto f = h5::File::create(path);
  h5::DatasetOptions rows;
  rows.chunk = {std::min<int64_t>(32, b.features.size(0)), b.features.size(1)};
  f.write("features", b.features, rows);
  rows.chunk = {std::min<int64_t>(32, b.features.size(0)), 2};
  f.write("coords", b.coords, rows);
}

std::vector<int64_t> range(int64_t n) {
  std::vector<int64_t> r(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) r[static_cast<size_t>(i)] = i;
  return r;
}

torch::Tensor rows_of(const torch::Tensor& t, const std::vector<int64_t>& rows) {
  return t.index_select(0, torch::tensor(rows));
}

data::BatchRequest request_of(std::vector<int64_t> records, uint64_t seed = 0, int64_t epoch = 0) {
  data::BatchRequest r;
  r.records = std::move(records);
  r.seed = seed;
  r.epoch = epoch;
  return r;
}

// Three slides: a TRIDENT one (40 tiles), a CLAM one (5 tiles) and a TRIDENT one with its report in a file.
struct CsvFixture {
  TempDir dir{"slide_bags_csv"};
  Bag a = make_bag(40, 8, torch::kHalf, torch::kInt64, 1);
  Bag b = make_bag(5, 8, torch::kFloat32, torch::kInt32, 2);
  Bag c = make_bag(12, 8, torch::kHalf, torch::kInt64, 3);
  std::string csv;
  const std::string report_a = "Invasive ductal carcinoma, grade 2.\nMargins \"clear\", 3 of 12 nodes positive.";
  CsvFixture() {
    write_trident(dir / "features/TCGA-A.h5", a, "TCGA-A");
    write_clam(dir / "clam/TCGA-B.h5", b);
    write_trident(dir / "features/TCGA-C.h5", c, "TCGA-C");
    dir.write("reports/TCGA-C.txt", "Lung adenocarcinoma, acinar.\n");
    csv = dir.write("train.csv",
                    "slide_id,features,report,report_file,label\n"
                    "TCGA-A,features/TCGA-A.h5,\"Invasive ductal carcinoma, grade 2.\n"
                    "Margins \"\"clear\"\", 3 of 12 nodes positive.\",,BRCA\n"
                    "TCGA-B," + (dir / "clam/TCGA-B.h5") + ",Clear cell renal cell carcinoma.,,KIRC\r\n"
                    "\n"
                    "TCGA-C,features/TCGA-C.h5,,reports/TCGA-C.txt,LUAD\n");
  }
};

}  // namespace

TEST(SlideBags, ATileSizeThatIsNoPositiveWholeNumberIsBadCoords) {
  TempDir dir("slide_bags_patch_size");
  const Bag bag = make_bag(6, 4, torch::kFloat32, torch::kInt64, 4);
  for (const char* id : {"S1", "S2"}) write_trident(dir / (std::string("f/") + id + ".h5"), bag, id);
  h5::File::open_rw(dir / "f/S2.h5").dataset("coords").set_attr("patch_size_level0", 2.5);
  SlideBagOptions o;
  o.max_bad_fraction = 0.5;
  const auto ds = SlideBagDataset::open({dir.write("s.csv", "slide_id,features,report\nS1,f/S1.h5,a\nS2,f/S2.h5,b\n")},
                                        o);
  ASSERT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.slide(0).patch_size_level0, 512);
  const auto& r = ds.report().sources.at(0);
  EXPECT_EQ(r.problems.at("bad coords"), 1);
  EXPECT_NE(r.first_problems.at(0).find("attribute 'patch_size_level0' is 2.5, not a positive whole number"),
            std::string::npos)
      << r.first_problems.at(0);
}

TEST(SlideBags, CsvManifestWithTridentAndClamFiles) {
  CsvFixture fx;
  SlideBagOptions o;
  const auto ds = SlideBagDataset::open({fx.csv}, o);
  ASSERT_EQ(ds.size(), 3);
  EXPECT_EQ(ds.feature_dim(), 8);
  EXPECT_EQ(ds.slide(0).id, "TCGA-A");
  EXPECT_EQ(ds.slide(0).report, fx.report_a);
  EXPECT_EQ(ds.slide(0).label, "BRCA");
  EXPECT_EQ(ds.slide(0).tiles, 40);
  EXPECT_EQ(ds.slide(0).patch_size_level0, 512);  // TRIDENT's coords attribute
  EXPECT_EQ(ds.slide(0).source, "file '" + (fx.dir / "features/TCGA-A.h5") + "'");
  EXPECT_EQ(ds.slide(1).report, "Clear cell renal cell carcinoma.");
  EXPECT_EQ(ds.slide(1).tiles, 5);
  EXPECT_EQ(ds.slide(1).patch_size_level0, 0);  // CLAM's files do not say
  EXPECT_EQ(ds.slide(2).report, "Lung adenocarcinoma, acinar.");
  EXPECT_EQ(ds.slide(2).label, "LUAD");
  EXPECT_EQ(ds.index_of("TCGA-C"), 2);
  EXPECT_FALSE(ds.index_of("TCGA-Z").has_value());
  EXPECT_EQ(ds.report().listed(), 3);
  EXPECT_EQ(ds.report().usable(), 3);
  EXPECT_EQ(ds.report().bad(), 0);
  EXPECT_EQ(ds.report().summary(), "slides: 1 source, 3 listed, 3 usable, 0 bad");
  EXPECT_NE(error_of([&] { ds.slide(3); }).find("record 3 is out of range [0, 3)"), std::string::npos);

  // Evaluation: every tile, padded to the longest slide.
  const auto batch = ds.builder(/*train=*/false)(request_of({1, 0, 2}));
  EXPECT_EQ(batch.samples, 3);
  EXPECT_EQ(batch.tokens, 5 + 40 + 12);
  const auto& features = batch.at("features");
  ASSERT_EQ(features.sizes(), (c10::IntArrayRef{3, 40, 8}));
  EXPECT_EQ(features.scalar_type(), torch::kFloat32);
  EXPECT_EQ(batch.at("coords").scalar_type(), torch::kInt64);
  EXPECT_EQ(batch.at("mask").scalar_type(), torch::kBool);
  EXPECT_TRUE(torch::equal(batch.at("slide_index"), torch::tensor(std::vector<int64_t>{1, 0, 2})));
  EXPECT_TRUE(torch::equal(features[0].slice(0, 0, 5), fx.b.features));
  EXPECT_TRUE(torch::equal(features[1], fx.a.features.to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(features[2].slice(0, 0, 12), fx.c.features.to(torch::kFloat32)));
  EXPECT_EQ(features[0].slice(0, 5).abs().sum().item<float>(), 0.0f);
  EXPECT_TRUE(torch::equal(batch.at("coords")[0].slice(0, 0, 5), fx.b.coords.to(torch::kInt64)));
  EXPECT_TRUE(torch::equal(batch.at("coords")[1], fx.a.coords));
  EXPECT_EQ(batch.at("coords")[2].slice(0, 12).abs().sum().item<int64_t>(), 0);
  EXPECT_TRUE(torch::equal(batch.at("mask").sum(1), torch::tensor(std::vector<int64_t>{5, 40, 12})));
  EXPECT_TRUE(batch.at("mask")[2].slice(0, 0, 12).all().item<bool>());
  EXPECT_EQ(batch.text("slide_id"), (std::vector<std::string>{"TCGA-B", "TCGA-A", "TCGA-C"}));
  EXPECT_EQ(batch.text("label"), (std::vector<std::string>{"KIRC", "BRCA", "LUAD"}));
  EXPECT_EQ(batch.text("report")[1], fx.report_a);
}

TEST(SlideBags, TrainingSamplesAreAPureFunctionOfSeedEpochAndRecord) {
  CsvFixture fx;
  SlideBagOptions o;
  o.max_tiles = 16;
  const auto ds = SlideBagDataset::open({fx.csv}, o);
  const auto rows = ds.tile_rows(0, /*train=*/true, 7, 0);
  ASSERT_EQ(rows.size(), 16u);
  EXPECT_TRUE(std::is_sorted(rows.begin(), rows.end()));
  EXPECT_EQ(std::set<int64_t>(rows.begin(), rows.end()).size(), 16u);
  EXPECT_GE(rows.front(), 0);
  EXPECT_LT(rows.back(), 40);
  EXPECT_EQ(ds.tile_rows(0, true, 7, 0), rows);
  EXPECT_NE(ds.tile_rows(0, true, 7, 1), rows);
  EXPECT_NE(ds.tile_rows(0, true, 8, 0), rows);
  // A reopened dataset (a resumed run) samples the same rows.
  EXPECT_EQ(SlideBagDataset::open({fx.csv}, o).tile_rows(0, true, 7, 0), rows);
  // Fewer tiles than max_tiles, or max_tiles 0: all of them.
  EXPECT_EQ(ds.tile_rows(1, true, 7, 0), range(5));
  EXPECT_EQ(ds.tile_rows(2, true, 7, 3), range(12));
  o.max_tiles = 0;
  EXPECT_EQ(SlideBagDataset::open({fx.csv}, o).tile_rows(0, true, 7, 0), range(40));
  // Over epochs every tile gets its turn.
  std::set<int64_t> seen;
  for (int64_t epoch = 0; epoch < 40; ++epoch)
    for (int64_t r : ds.tile_rows(0, true, 7, epoch)) seen.insert(r);
  EXPECT_EQ(seen.size(), 40u);

  // The training batch holds exactly the sampled rows of the file, in order, then padding.
  const auto batch = ds.builder(/*train=*/true)(request_of({0, 1}, 7, 2));
  const auto sampled = ds.tile_rows(0, true, 7, 2);
  ASSERT_EQ(batch.at("features").sizes(), (c10::IntArrayRef{2, 16, 8}));
  EXPECT_EQ(batch.tokens, 16 + 5);
  EXPECT_TRUE(torch::equal(batch.at("features")[0], rows_of(fx.a.features, sampled).to(torch::kFloat32)));
  EXPECT_TRUE(torch::equal(batch.at("coords")[0], rows_of(fx.a.coords, sampled)));
  EXPECT_TRUE(torch::equal(batch.at("features")[1].slice(0, 0, 5), fx.b.features));
  EXPECT_TRUE(torch::equal(batch.at("mask").sum(1), torch::tensor(std::vector<int64_t>{16, 5})));
  EXPECT_EQ(batch.epoch, 2);
}

TEST(SlideBags, EvaluationTakesAllOrEvenlySpacedTiles) {
  CsvFixture fx;
  SlideBagOptions o;
  o.max_tiles = 4;
  EXPECT_EQ(SlideBagDataset::open({fx.csv}, o).tile_rows(0, /*train=*/false, 1, 0), range(40));
  o.eval_max_tiles = 8;
  const auto ds = SlideBagDataset::open({fx.csv}, o);
  EXPECT_EQ(ds.tile_rows(0, false, 1, 0), (std::vector<int64_t>{0, 5, 10, 15, 20, 25, 30, 35}));
  EXPECT_EQ(ds.tile_rows(0, false, 2, 9), ds.tile_rows(0, false, 1, 0));
  EXPECT_EQ(ds.tile_rows(1, false, 1, 0), range(5));
  const auto batch = ds.builder(false)(request_of({0}));
  EXPECT_TRUE(torch::equal(batch.at("features")[0], rows_of(fx.a.features, {0, 5, 10, 15, 20, 25, 30, 35}).to(torch::kFloat32)));
}

TEST(SlideBags, SlidesShardsPackedByEmbed) {
  TempDir dir("slide_bags_shards");
  std::vector<Bag> bags;
  const std::vector<std::string> ids = {"S1", "S2", "S3"};
  for (size_t i = 0; i < ids.size(); ++i) {
    bags.push_back(make_bag(6 + 3 * static_cast<int64_t>(i), 4, torch::kHalf, torch::kInt64, 10 + static_cast<int>(i)));
    write_trident(dir / ("out/features/" + ids[i] + ".h5"), bags.back(), ids[i]);
  }
  const std::string reports =
      dir.write("reports.csv", "slide_id,report\nS1,\"Benign, no atypia.\"\nS2,Tubular adenoma.\nS3,\"Adenocarcinoma.\nLVI present.\"\n");
  wsi::pack_slide_shards(dir / "out", /*slides_per_shard=*/2, reports);
  for (const char* shard : {"out/shards/slides-00000.h5", "out/shards/slides-00001.h5"}) {
    const auto v = shards::validate(h5::File::open(dir / shard));
    EXPECT_EQ(v.kind, shards::ShardKind::Slides);
    EXPECT_EQ(v.bad_records, 0) << shard;
  }

  for (const std::string& source : {dir / "out/shards", dir / "out/shards/manifest.json"}) {
    const auto ds = SlideBagDataset::open({source}, {});
    ASSERT_EQ(ds.size(), 3);
    EXPECT_EQ(ds.feature_dim(), 4);
    EXPECT_EQ(ds.slide(0).report, "Benign, no atypia.");
    EXPECT_EQ(ds.slide(2).report, "Adenocarcinoma.\nLVI present.");
    EXPECT_EQ(ds.slide(2).tiles, 12);
    EXPECT_EQ(ds.slide(2).patch_size_level0, 512);
    EXPECT_EQ(ds.slide(2).source, "shard '" + (dir / "out/shards/slides-00001.h5") + "' slide 'S3'");
    const auto batch = ds.builder(false)(request_of({2, 0}));
    EXPECT_TRUE(torch::equal(batch.at("features")[0], bags[2].features.to(torch::kFloat32)));
    EXPECT_TRUE(torch::equal(batch.at("coords")[1].slice(0, 0, 6), bags[0].coords));
  }
  const auto one = SlideBagDataset::open({dir / "out/shards/slides-00000.h5"}, {});
  EXPECT_EQ(one.size(), 2);

  // Shards and a CSV of other slides together; a slide listed by both is an error naming both places.
  dir.write("more.csv", "slide_id,features,report\nX1,out/features/S1.h5,Another report.\n");
  const auto mixed = SlideBagDataset::open({dir / "out/shards", dir / "more.csv"}, {});
  EXPECT_EQ(mixed.size(), 4);
  EXPECT_EQ(mixed.slide(3).id, "X1");
  EXPECT_EQ(mixed.report().sources.size(), 2u);
  dir.write("dup.csv", "slide_id,features,report\nS2,out/features/S2.h5,Again.\n");
  const auto dup = error_of([&] { SlideBagDataset::open({dir / "out/shards", dir / "dup.csv"}, {}); });
  EXPECT_NE(dup.find("slide id 'S2' is listed twice"), std::string::npos) << dup;
  EXPECT_NE(dup.find("slides-00000.h5"), std::string::npos) << dup;
  EXPECT_NE(dup.find("dup.csv line 2"), std::string::npos) << dup;
}

TEST(SlideBags, TruncatedShardCountsTheSlidesItsManifestLists) {
  TempDir dir("slide_bags_truncated_shard");
  for (const std::string id : {"S1", "S2", "S3"})
    write_trident(dir / ("out/features/" + id + ".h5"), make_bag(50, 4, torch::kHalf, torch::kInt64, 1), id);
  const std::string reports = dir.write("reports.csv", "slide_id,report\nS1,One.\nS2,Two.\nS3,Three.\n");
  wsi::pack_slide_shards(dir / "out", /*slides_per_shard=*/1, reports);
  const std::string shard = dir / "out/shards/slides-00001.h5";
  fs::resize_file(shard, fs::file_size(shard) / 2);  // a partial write

  SlideBagOptions o;
  o.max_bad_fraction = 0.5;
  const auto ds = SlideBagDataset::open({dir / "out/shards"}, o);
  EXPECT_EQ(ds.size(), 2);
  EXPECT_FALSE(ds.index_of("S2").has_value());
  const auto& r = ds.report().sources.at(0);
  EXPECT_EQ(r.source, dir / "out/shards/manifest.json");
  EXPECT_EQ(r.listed, 3);
  EXPECT_EQ(r.bad, 1);
  EXPECT_EQ(r.problems, (std::map<std::string, int64_t>{{"unreadable shard", 1}}));
  EXPECT_NE(r.first_problems.at(0).find("shard '" + shard + "': unreadable shard: "), std::string::npos)
      << r.first_problems.at(0);
  o.max_bad_fraction = 0.0;
  const auto e = error_of([&] { SlideBagDataset::open({dir / "out/shards"}, o); });
  EXPECT_NE(e.find("manifest.json': 1 of 3 slides are bad"), std::string::npos) << e;
  // Given alone, the shard has no count to report: an error naming it.
  const auto alone = error_of([&] { SlideBagDataset::open({shard}, {}); });
  EXPECT_NE(alone.find("slides shard '" + shard + "'"), std::string::npos) << alone;
}

TEST(SlideBags, BadSlidesAreCountedPerProblemAndThresholded) {
  TempDir dir("slide_bags_bad");
  std::string csv = "slide_id,features,report,report_file\n";
  for (int i = 0; i < 6; ++i) {
    const std::string id = "good" + std::to_string(i);
    write_clam(dir / (id + ".h5"), make_bag(3 + i, 8, torch::kFloat32, torch::kInt32, i));
    csv += id + "," + id + ".h5,Report " + id + ".,\n";
  }
  // A partial write: the first half of a good file.
  write_trident(dir / "full.h5", make_bag(300, 8, torch::kHalf, torch::kInt64, 20), "full");
  {
    std::ifstream in(dir / "full.h5", std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::ofstream(dir / "truncated.h5", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  }
  {
    auto f = h5::File::create(dir / "no_features.h5");
    f.write("coords", torch::zeros({3, 2}, torch::kInt64));
    auto g = h5::File::create(dir / "rows_differ.h5");
    g.write("features", torch::zeros({4, 8}));
    g.write("coords", torch::zeros({3, 2}, torch::kInt64));
    auto h = h5::File::create(dir / "empty.h5");
    h.write("features", torch::zeros({0, 8}));
    h.write("coords", torch::zeros({0, 2}, torch::kInt64));
  }
  write_clam(dir / "narrow.h5", make_bag(3, 4, torch::kFloat32, torch::kInt32, 30));
  csv += "missing,missing.h5,A report.,\n"
         "truncated,truncated.h5,A report.,\n"
         "no_features,no_features.h5,A report.,\n"
         "rows_differ,rows_differ.h5,A report.,\n"
         "empty,empty.h5,A report.,\n"
         "narrow,narrow.h5,A report.,\n"
         "no_report,good0.h5,  ,\n"
         "lost_report,good1.h5,,reports/lost.txt\n"
         "short,good2.h5\n";
  const std::string path = dir.write("slides.csv", csv);

  SlideBagOptions o;
  o.max_bad_fraction = 0.6;  // 9 of 15
  const auto ds = SlideBagDataset::open({path}, o);
  EXPECT_EQ(ds.size(), 6);
  const auto& r = ds.report().sources.at(0);
  EXPECT_EQ(r.source, path);
  EXPECT_EQ(r.listed, 15);
  EXPECT_EQ(r.usable, 6);
  EXPECT_EQ(r.bad, 9);
  const std::map<std::string, int64_t> expected = {
      {"missing file", 1}, {"unreadable", 1},       {"no features dataset", 1},
      {"features/coords rows differ", 1}, {"0 tiles", 1}, {"feature width", 1},
      {"empty report", 1},  {"missing report file", 1}, {"bad row", 1}};
  EXPECT_EQ(r.problems, expected);
  ASSERT_EQ(r.first_problems.size(), SlideBagDataset::SourceReport::kReportedProblems);
  EXPECT_NE(r.first_problems[0].find("slide 'missing' (" + path + " line 8): missing file"), std::string::npos)
      << r.first_problems[0];
  EXPECT_NE(r.first_problems[1].find("slide 'truncated'"), std::string::npos);
  EXPECT_NE(r.first_problems[1].find("unreadable: "), std::string::npos) << r.first_problems[1];
  EXPECT_NE(r.first_problems[1].find("truncated.h5"), std::string::npos) << r.first_problems[1];
  EXPECT_NE(r.first_problems[3].find("features/coords rows differ (4 features, 3 coords)"), std::string::npos);
  EXPECT_NE(ds.report().summary().find("15 listed, 6 usable, 9 bad ("), std::string::npos) << ds.report().summary();
  EXPECT_NE(r.summary().find("feature width: 1"), std::string::npos) << r.summary();

  o.max_bad_fraction = 0.5;
  const auto e = error_of([&] { SlideBagDataset::open({path}, o); });
  EXPECT_NE(e.find("slides data '" + path + "': 9 of 15 slides are bad"), std::string::npos) << e;
  EXPECT_NE(e.find("allowed fraction 0.5"), std::string::npos) << e;
  EXPECT_NE(e.find("slide 'missing'"), std::string::npos) << e;
}

TEST(SlideBags, BrokenShardSlideGroupsAreCounted) {
  TempDir dir("slide_bags_broken_shard");
  const std::string path = dir / "slides-00000.h5";
  {
    auto f = h5::File::create(path);
    shards::write_schema(f, shards::ShardKind::Slides);
    f.write("slides/ok/features", torch::ones({3, 4}).to(torch::kHalf));
    f.write("slides/ok/coords", torch::zeros({3, 2}, torch::kInt64));
    f.write("slides/no_coords/features", torch::ones({3, 4}));
    f.write("slides/silent/features", torch::ones({2, 4}));
    f.write("slides/silent/coords", torch::zeros({2, 2}, torch::kInt64));
    f.write("slides/blank/features", torch::ones({2, 4}));
    f.write("slides/blank/coords", torch::zeros({2, 2}, torch::kInt64));
    f.write_strings("reports/slide_id", {"ok", "no_coords", "blank"});
    f.write_strings("reports/text", {"Fine.", "Has text.", " \n"});
  }
  shards::seal_shard(path, path);
  SlideBagOptions o;
  o.max_bad_fraction = 0.75;
  const auto ds = SlideBagDataset::open({path}, o);
  ASSERT_EQ(ds.size(), 1);
  EXPECT_EQ(ds.slide(0).id, "ok");
  const auto& r = ds.report().sources.at(0);
  const std::map<std::string, int64_t> expected = {{"no coords dataset", 1}, {"no report", 1}, {"empty report", 1}};
  EXPECT_EQ(r.problems, expected);
  EXPECT_EQ(r.listed, 4);
  o.max_bad_fraction = 0.5;
  const auto e = error_of([&] { SlideBagDataset::open({path}, o); });
  EXPECT_NE(e.find("3 of 4 slides are bad"), std::string::npos) << e;
}

TEST(SlideBags, CsvManifestErrors) {
  TempDir dir("slide_bags_csv_errors");
  const auto no_report = dir.write("a.csv", "slide_id,features\nx,x.h5\n");
  auto e = error_of([&] { SlideBagDataset::open({no_report}, {}); });
  EXPECT_NE(e.find("slide manifest '" + no_report + "'"), std::string::npos) << e;
  EXPECT_NE(e.find("'report' or 'report_file'"), std::string::npos) << e;
  // Zero-shot evaluation of labelled slides needs no reports: the columns may be absent, a report empty.
  write_clam(dir / "x.h5", make_bag(3, 4, torch::kFloat32, torch::kInt32, 1));
  const auto labelled = dir.write("labelled.csv", "slide_id,features,label\nx,x.h5,LUAD\n");
  const auto empty_report = dir.write("empty.csv", "slide_id,features,report,label\nx,x.h5,,LUAD\n");
  SlideBagOptions zeroshot;
  zeroshot.reports_required = false;
  for (const auto& csv : {labelled, empty_report}) {
    const auto ds = SlideBagDataset::open({csv}, zeroshot);
    ASSERT_EQ(ds.size(), 1) << csv;
    EXPECT_EQ(ds.slide(0).label, "LUAD");
    EXPECT_EQ(ds.slide(0).report, "");
  }
  EXPECT_NE(error_of([&] { SlideBagDataset::open({empty_report}, {}); }).find("empty report"), std::string::npos);
  const auto open_quote = dir.write("b.csv", "slide_id,features,report\nx,x.h5,ok\ny,y.h5,\"never closed\n");
  e = error_of([&] { SlideBagDataset::open({open_quote}, {}); });
  EXPECT_NE(e.find("quoted field opened on line 3 never closes"), std::string::npos) << e;
  const auto twice = dir.write("c.csv", "slide_id,features,report\nx,x.h5,one\n\"x\",x.h5,\"two, again\"\n");
  e = error_of([&] { SlideBagDataset::open({twice}, {}); });
  EXPECT_NE(e.find("slide id 'x' is listed twice: slide 'x' (" + twice + " line 2) and slide 'x' (" + twice +
                   " line 3)"),
            std::string::npos)
      << e;
  const auto none = dir.write("d.csv", "slide_id,features,report\nz,z.h5,text\n");
  SlideBagOptions lenient;
  lenient.max_bad_fraction = 1.0;
  e = error_of([&] { SlideBagDataset::open({none}, lenient); });
  EXPECT_NE(e.find("no usable slides"), std::string::npos) << e;
}

TEST(SlideBags, LoaderWorkersReadThroughAFewOpenFiles) {
  TempDir dir("slide_bags_loader");
  std::string csv = "slide_id,features,report\n";
  std::vector<Bag> bags;
  for (int i = 0; i < 24; ++i) {
    const std::string id = "s" + std::to_string(i);
    bags.push_back(make_bag(2 + i % 7, 6, torch::kHalf, torch::kInt64, 40 + i));
    write_trident(dir / (id + ".h5"), bags.back(), id);
    csv += id + "," + id + ".h5,Report " + id + "\n";
  }
  const auto ds = SlideBagDataset::open({dir.write("all.csv", csv)}, {});
  const int64_t before = h5::open_object_count();
  data::LoaderOptions lo;
  lo.batch_size = 3;
  lo.train = false;
  lo.workers = 3;
  data::Loader loader("slides", ds.size(), ds.builder(false), lo);
  int64_t seen = 0;
  while (auto batch = loader.next()) {
    for (int64_t row = 0; row < batch->samples; ++row) {
      const int64_t record = batch->at("slide_index")[row].item<int64_t>();
      const auto& bag = bags[static_cast<size_t>(record)];
      const int64_t n = bag.features.size(0);
      EXPECT_TRUE(torch::equal(batch->at("features")[row].slice(0, 0, n), bag.features.to(torch::kFloat32)));
      EXPECT_TRUE(torch::equal(batch->at("coords")[row].slice(0, 0, n), bag.coords));
      ++seen;
    }
  }
  EXPECT_EQ(seen, 24);
  EXPECT_LE(h5::open_object_count() - before, 16);
}
