// Bad tiles records end to end: `pathvlm shards validate` decodes what training decodes and reports each bad
// record with its reason; `pathvlm train` skips them (the count in the log, the run's bad_records.csv), the same
// way on 1 and 2 ranks, and stops once they exceed clip.data.max_bad_fraction. Also `shards inspect`'s exit
// status and coordinates.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "bad_tiles_util.h"
#include "cli_test_util.h"
#include "data/csv.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::read_text;
using pathvlm::testing::run_cli;
using pathvlm::testing::TempDir;
namespace bt = pathvlm::testing;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const std::string kVocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";

// A tiny CLIP run on `tiles` (32 records: 4 steps of 8 are one epoch).
std::string train_args(const TempDir& dir, const std::string& tiles, const std::string& name, int micro) {
  return std::string("train ") + PATHVLM_SOURCE_DIR + "/configs/clip/demo_tiny.yaml run.runs_dir=" + (dir / "runs") +
         " run.name=" + name + " train.steps=6 train.micro_batch_size=" + std::to_string(micro) +
         " optim.warmup_steps=1 eval.every=0 checkpoint.every_steps=0 log.tensorboard=false log.every=1" +
         " clip.model.image_size=32 clip.data.image_size=32 clip.model.vision_layers=1 clip.model.text_layers=1" +
         " clip.data.workers=1 clip.vocab=" + kVocab + " clip.data.train=" + tiles +
         " clip.data.val= clip.data.zeroshot= clip.eval.classes=";
}

std::vector<double> logged_losses(const fs::path& metrics) {
  std::vector<double> out;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    auto j = nlohmann::json::parse(line);
    if (j.contains("train/loss")) out.push_back(j["train/loss"].get<double>());
  }
  return out;
}

}  // namespace

TEST(ShardsValidate, DecodesImagesAndChecksCaptionsAsTrainingDoes) {
  TempDir dir("validate_decode");
  const std::vector<int> bad = {1, 4, 6, 9, 11, 12, 15};
  bt::write_raw_tiles(dir / "bad.h5", bt::tiles_with_bad(20, bad));
  bt::write_raw_tiles(dir / "good.h5", bt::tiles_with_bad(5, {}));
  auto r = run_cli("shards validate " + (dir / "good.h5") + " " + (dir / "bad.h5"), dir.path);
  EXPECT_EQ(r.status, 1) << r.out << r.err;
  EXPECT_TRUE(has(r.out, (dir / "good.h5") + ": ok (tiles, 5 records)")) << r.out;
  EXPECT_TRUE(has(r.out, (dir / "bad.h5") + ": 7 bad of 20 records (tiles)")) << r.out;
  EXPECT_TRUE(has(r.out, "record 1 id \"tile_1\" : corrupt JPEG data (Premature end of JPEG file)")) << r.out;
  EXPECT_TRUE(has(r.out, "record 4 id \"tile_4\" : corrupt PNG data (IDAT")) << r.out;
  EXPECT_TRUE(has(r.out, "record 6 id \"tile_6\" : PNG image of 100000x100000 = 10000000000 pixels is too large"))
      << r.out;
  EXPECT_TRUE(has(r.out, "record 9 id \"tile_9\" : JPEG image of 60000x60000")) << r.out;
  EXPECT_TRUE(has(r.out, "record 11 id \"tile_11\" : image of 7 bytes has neither a JPEG nor a PNG signature\n")) << r.out;
  EXPECT_TRUE(has(r.out, "record 12 id \"tile_12\" : caption is not valid UTF-8 (byte 6)")) << r.out;
  EXPECT_TRUE(has(r.out, "record 15 id \"tile_15\" : empty caption\n")) << "one reason, not two: " << r.out;
  EXPECT_TRUE(has(r.out, "1 of 2 shards ok")) << r.out;

  // The pixel limit is an option: at 1000 pixels the 32x32 tiles are too large.
  r = run_cli("shards validate --max-pixels 1000 --max-report 2 " + (dir / "good.h5"), dir.path);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.out, "5 bad of 5 records")) << r.out;
  EXPECT_TRUE(has(r.out, "32x32 = 1024 pixels is too large (the limit is 1000 pixels")) << r.out;
  EXPECT_TRUE(has(r.out, "... 3 more (see --max-report)")) << r.out;
}

TEST(ShardsInspect, FailsWithoutAKnownSchemaAndPrintsCoordinatesAsNumbers) {
  TempDir dir("inspect_exit");
  {
    auto f = h5::File::create(dir / "plain.h5");
    f.write("x", torch::zeros({2}));
    auto s = h5::File::create(dir / "slides.h5");
    shards::write_schema(s, shards::ShardKind::Slides);
    auto g = s.create_group("slides/S1");
    g.write("features", torch::randn({3, 4}));
    g.write("coords", torch::tensor({512, 1024, 768, 1024, 1024, 1024}, torch::kInt64).reshape({3, 2}));
    g.set_attr("patch_size", 256);
    g.set_attr("patch_size_level0", 256);
    g.set_attr("mpp", 0.5);
    g.set_attr("magnification", 20.0);
    g.set_attr("encoder", "test");
    auto u = h5::File::create(dir / "future.h5");
    u.set_attr(shards::kSchemaAttr, "holograms/1");
  }
  auto r = run_cli("shards inspect " + (dir / "slides.h5"), dir.path);
  EXPECT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out, "first coords x 512, y 1024\n")) << r.out;
  r = run_cli("shards inspect " + (dir / "plain.h5"), dir.path);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.out, "schema        none")) << r.out;
  EXPECT_TRUE(has(r.out, "/x")) << "the plain file is still listed: " << r.out;
  r = run_cli("shards inspect " + (dir / "future.h5"), dir.path);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_TRUE(has(r.out, "holograms")) << r.out;
  r = run_cli("shards inspect " + (dir / "slides.h5") + " " + (dir / "missing.h5"), dir.path);
  EXPECT_EQ(r.status, 1) << r.out;
}

// Training skips bad records (2 of 32): the run finishes, its log counts them, bad_records.csv lists them with
// their reasons; 2 ranks list the same rows and compute the same losses as 1 rank; a resumed run continues the
// list. Past the allowed share the run stops with an error naming the key.
TEST(TrainBadRecords, SkippedCountedListedAndTheSameOnTwoRanks) {
  if (!fs::exists(kVocab)) GTEST_SKIP() << "shared data not found: " << kVocab;
  TempDir dir("train_bad");
  const std::string tiles = dir / "tiles.h5";
  bt::write_raw_tiles(tiles, bt::tiles_with_bad(32, {5, 20}));  // a truncated JPEG and a flipped PNG byte

  auto r = run_cli(train_args(dir, tiles, "one", 8) + " clip.data.max_bad_fraction=0.1", dir.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  const std::string log = r.out + r.err;
  EXPECT_TRUE(has(log, "skipping bad training record shard '" + tiles + "' record 5 (id 'tile_5'): corrupt JPEG"))
      << log;
  EXPECT_TRUE(has(log, "record 20 (id 'tile_20'): corrupt PNG data")) << log;
  EXPECT_TRUE(has(log, "(2 so far)")) << log;
  const fs::path csv = dir.path / "runs" / "one" / "bad_records.csv";
  auto rows = data::parse_csv(read_text(csv), ',', csv.string(), "test");
  ASSERT_EQ(rows.size(), 3u) << read_text(csv);
  std::set<std::string> listed = {rows[1].fields[3], rows[2].fields[3]};
  EXPECT_EQ(listed, (std::set<std::string>{"tile_5", "tile_20"}));
  EXPECT_EQ(rows[1].fields[1], tiles);
  const auto losses = logged_losses(dir.path / "runs" / "one" / "metrics.jsonl");
  ASSERT_EQ(losses.size(), 6u);

  if (!std::string(PATHVLM_MPIRUN).empty()) {
    const std::string two = std::string(PATHVLM_MPIRUN) + " -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 " +
                            PATHVLM_BINARY + " " + train_args(dir, tiles, "two", 4) +
                            " clip.data.max_bad_fraction=0.1 > " + (dir / "two.log") + " 2>&1";
    ASSERT_EQ(std::system(two.c_str()), 0) << read_text(dir / "two.log");
    EXPECT_EQ(read_text(dir.path / "runs" / "two" / "bad_records.csv"), read_text(csv));
    const auto losses2 = logged_losses(dir.path / "runs" / "two" / "metrics.jsonl");
    ASSERT_EQ(losses2.size(), losses.size());
    for (size_t i = 0; i < losses.size(); ++i) EXPECT_NEAR(losses2[i], losses[i], 1e-4 * losses[i]) << "step " << i + 1;
  }

  // Killed after a checkpoint at step 3 and resumed: the checkpoint carries the records met, the list is not
  // repeated, and the run ends where the uninterrupted one did.
  const std::string resumable = train_args(dir, tiles, "resumed", 8) + " clip.data.max_bad_fraction=0.1 checkpoint.every_steps=3";
  EXPECT_NE(run_cli(resumable + " train.fault.step=3", dir.path).status, 0);
  r = run_cli(resumable, dir.path);
  ASSERT_EQ(r.status, 0) << r.out << r.err;
  EXPECT_TRUE(has(r.out + r.err, "resumed from")) << r.out << r.err;
  EXPECT_EQ(read_text(dir.path / "runs" / "resumed" / "bad_records.csv"), read_text(csv));
  const auto resumed_losses = logged_losses(dir.path / "runs" / "resumed" / "metrics.jsonl");
  ASSERT_FALSE(resumed_losses.empty());
  EXPECT_DOUBLE_EQ(resumed_losses.back(), losses.back());

  // 2 of 32 bad is more than 4%: the run stops at the second one with an error that says what to do.
  r = run_cli(train_args(dir, tiles, "strict", 8) + " clip.data.max_bad_fraction=0.04", dir.path);
  EXPECT_NE(r.status, 0);
  EXPECT_TRUE(has(r.out + r.err, "2 of the 32 training records are bad (6.25%), more than clip.data.max_bad_fraction = "
                                 "0.04 allows"))
      << r.out << r.err;
  EXPECT_EQ(data::parse_csv(read_text(dir.path / "runs" / "strict" / "bad_records.csv"), ',', "csv", "test").size(), 3u);
}
