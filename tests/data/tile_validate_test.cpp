// Decode-level checks of tiles records, shared by `shards validate` and training: corrupt, truncated and
// decompression-bomb images, empty and non-UTF-8 captions; the training loader replacing bad records the same
// way on any number of ranks; the run's bad-record log and its stop past a share of the dataset.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "bad_tiles_util.h"
#include "core/error.h"
#include "data/bad_records.h"
#include "data/csv.h"
#include "data/image.h"
#include "data/tile_loader.h"
#include "data/tile_validate.h"
#include "test_util.h"

using namespace pathvlm;
using namespace pathvlm::data;
using pathvlm::testing::error_of;
using pathvlm::testing::TempDir;
namespace bt = pathvlm::testing;

namespace {

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// Restores the process-wide pixel limit a test changes.
struct PixelLimit {
  explicit PixelLimit(int64_t pixels) { set_max_image_pixels(pixels); }
  ~PixelLimit() { set_max_image_pixels(kDefaultMaxImagePixels); }
};

std::shared_ptr<const TileDataset> dataset_with_bad(const TempDir& dir, int n, const std::vector<int>& bad) {
  const std::string path = dir / "tiles.h5";
  bt::write_raw_tiles(path, bt::tiles_with_bad(n, bad));
  return std::make_shared<const TileDataset>(TileDataset::open(path));
}

}  // namespace

TEST(ImageLimits, BombHeadersAreRefusedBeforeAllocatingAndNameTheImage) {
  // 100000 x 100000 RGB would be 30 GB: the header alone decides, so this returns at once.
  auto png = error_of([] { decode_image(bt::png_claiming(100000, 100000), "image 'bomb.png'"); });
  EXPECT_TRUE(has(png, "image 'bomb.png': PNG image of 100000x100000 = 10000000000 pixels is too large")) << png;
  EXPECT_TRUE(has(png, "limit is 178956970 pixels")) << png;
  auto jpeg = error_of([] { decode_image(bt::jpeg_claiming(60000, 60000), "image 'bomb.jpg'"); });
  EXPECT_TRUE(has(jpeg, "image 'bomb.jpg': JPEG image of 60000x60000 = 3600000000 pixels is too large")) << jpeg;

  // The limit is configurable: a 32x32 tile (1024 pixels) passes at 1024 and not at 1023.
  {
    PixelLimit limit(1024);
    EXPECT_EQ(decode_image(bt::good_png(1), "t").sizes(), (std::vector<int64_t>{32, 32, 3}));
    EXPECT_EQ(decode_image(bt::good_jpeg(1), "t").sizes(), (std::vector<int64_t>{32, 32, 3}));
  }
  {
    PixelLimit limit(1023);
    EXPECT_TRUE(has(error_of([] { decode_image(bt::good_png(1), "t"); }), "32x32 = 1024 pixels is too large"));
    EXPECT_TRUE(has(error_of([] { decode_image(bt::good_jpeg(1), "t"); }), "32x32 = 1024 pixels is too large"));
  }
  EXPECT_TRUE(has(error_of([] { set_max_image_pixels(0); }), "must be >= 1"));

  // read_image (image folders, generate --image, shards build) names the file.
  TempDir dir("image_limits");
  write_file_bytes(dir / "bomb.png", bt::png_claiming(100000, 100000));
  EXPECT_TRUE(has(error_of([&] { read_image(dir / "bomb.png"); }), "'" + (dir / "bomb.png") + "': PNG image of"));
}

TEST(CaptionProblem, EmptyAndInvalidUtf8) {
  EXPECT_EQ(caption_problem("H&E tile of tumor"), "");
  EXPECT_EQ(caption_problem("Ünïcode 5 \xC2\xB5m \xF0\x9F\x99\x82"), "");  // 2-, 3- (none) and 4-byte forms
  EXPECT_EQ(caption_problem("\xE2\x82\xAC 100"), "");
  EXPECT_EQ(caption_problem(""), "empty caption");
  EXPECT_EQ(caption_problem(" \t\n"), "empty caption");
  EXPECT_EQ(caption_problem("tumor \xff tissue"), "caption is not valid UTF-8 (byte 6)");
  EXPECT_EQ(caption_problem("ab\xC0\xAF"), "caption is not valid UTF-8 (byte 2)");      // overlong '/'
  EXPECT_EQ(caption_problem("\xED\xA0\x80"), "caption is not valid UTF-8 (byte 0)");    // a surrogate
  EXPECT_EQ(caption_problem("x\xF4\x90\x80\x80"), "caption is not valid UTF-8 (byte 1)");  // past U+10FFFF
  EXPECT_EQ(caption_problem("cut \xE2\x82"), "caption is not valid UTF-8 (byte 4)");    // truncated sequence
}

TEST(ValidateTiles, ReportsEveryBadRecordWithItsReason) {
  TempDir dir("validate_tiles");
  const std::vector<int> bad = {1, 4, 6, 9, 11, 12, 15};
  auto ds = dataset_with_bad(dir, 16, bad);
  const auto report = validate_tiles(*ds, 3);
  EXPECT_EQ(report.records, 16);
  ASSERT_EQ(report.bad.size(), bad.size());
  const std::vector<std::string> expected = {"corrupt JPEG data", "corrupt PNG data (IDAT",
                                             "PNG image of 100000x100000", "JPEG image of 60000x60000",
                                             "not a JPEG, PNG, TIFF or WebP image", "caption is not valid UTF-8 (byte 6)",
                                             "empty caption"};
  for (size_t k = 0; k < bad.size(); ++k) {
    EXPECT_EQ(report.bad[k].first, bad[k]);
    EXPECT_TRUE(has(report.bad[k].second, expected[k])) << report.bad[k].second;
    EXPECT_FALSE(has(report.bad[k].second, "tiles.h5")) << "the reason repeats the place: " << report.bad[k].second;
  }
  EXPECT_EQ(check_tile_record(*ds, 0).problem, "");
  EXPECT_EQ(check_tile_record(*ds, 0).image.sizes(), (std::vector<int64_t>{32, 32, 3}));
}

// Training replaces a bad record by the next good one, keeps the sampled record's augmentation seed and marks
// the row: 2 ranks x 4 see exactly the rows of 1 rank x 8, epoch after epoch.
TEST(TileLoader, ReplacesBadRecordsTheSameWayOnAnyNumberOfRanks) {
  TempDir dir("loader_bad");
  auto ds = dataset_with_bad(dir, 16, {3, 4, 10});
  auto options = [](int rank, int world, int64_t batch) {
    TileLoaderOptions o;
    o.batch_size = batch;
    o.rank = rank;
    o.world_size = world;
    o.seed = 7;
    o.image_size = 16;
    o.workers = 2;
    o.skip_bad_records = true;
    return o;
  };
  TileLoader one(ds, options(0, 1, 8));
  TileLoader r0(ds, options(0, 2, 4)), r1(ds, options(1, 2, 4));
  std::set<int64_t> replaced;
  for (int step = 0; step < 6; ++step) {  // 3 epochs
    auto a = *one.next(), b0 = *r0.next(), b1 = *r1.next();
    for (const char* key : {"pixels", "indices"})
      EXPECT_TRUE(torch::equal(a.at(key), torch::cat({b0.at(key), b1.at(key)}))) << key << " step " << step;
    EXPECT_TRUE(torch::equal(a.host_at("bad_records"), torch::cat({b0.host_at("bad_records"), b1.host_at("bad_records")})))
        << "step " << step;
    for (int64_t k = 0; k < 8; ++k) {
      const int64_t shown = a.at("indices")[k].item<int64_t>(), bad = a.host_at("bad_records")[k].item<int64_t>();
      EXPECT_TRUE(shown != 3 && shown != 4 && shown != 10) << "a bad record reached a batch";
      if (bad < 0) continue;
      replaced.insert(bad);
      EXPECT_EQ(shown, bad == 10 ? 11 : 5) << "the next good record replaces " << bad;
      EXPECT_EQ(a.text("captions")[k], ds->caption(shown));
    }
  }
  EXPECT_EQ(replaced, (std::set<int64_t>{3, 4, 10}));

  // Without skipping (evaluation), a bad record is an error naming its shard and record.
  auto strict = options(0, 1, 16);
  strict.skip_bad_records = false;
  strict.train = false;
  TileLoader eval(ds, strict);
  auto msg = error_of([&] { eval.next(); });
  EXPECT_TRUE(has(msg, "shard '" + (dir / "tiles.h5") + "' record 3 (id 'tile_3'): corrupt JPEG data")) << msg;
}

TEST(TileLoader, TokenizerErrorsNameTheShardAndRecord) {
  const std::string vocab = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/clip_bpe_simple_vocab_16e6.txt.gz";
  if (!std::filesystem::exists(vocab)) GTEST_SKIP() << "shared data not found: " << vocab;
  TempDir dir("loader_tokens");
  auto tiles = bt::tiles_with_bad(4, {});
  tiles[2].caption = "tumor \xff tissue";
  bt::write_raw_tiles(dir / "tiles.h5", tiles);
  auto ds = std::make_shared<const TileDataset>(TileDataset::open(dir / "tiles.h5"));
  TileLoaderOptions o;
  o.batch_size = 4;
  o.train = false;
  o.image_size = 16;
  o.tokenizer = std::make_shared<const text::ClipTokenizer>(vocab, 16);
  TileLoader loader(ds, o);
  auto msg = error_of([&] { loader.next(); });
  EXPECT_TRUE(has(msg, "record 2 (id 'tile_2'): caption is not valid UTF-8")) << msg;
  // A caption the tokenizer itself refuses is reported the same way (the check passes it on with its place).
  auto checked = check_tile_record(*ds, 1, o.tokenizer.get());
  EXPECT_EQ(checked.problem, "");
  EXPECT_EQ(checked.tokens.size(), 16u);
  EXPECT_EQ(checked.tokens[0], text::ClipTokenizer::kStartOfText);
}

TEST(BadRecordLog, ListsReasonsOnceAndStopsPastTheFraction) {
  TempDir dir("bad_log");
  auto ds = dataset_with_bad(dir, 10, {2, 5, 7});
  const std::string csv = dir / "bad_records.csv";
  {
    BadRecordLog log(ds, nullptr, csv, /*writer=*/true, 0.25, "clip.data.max_bad_fraction");
    log.add({5, 2});
    log.add({2});  // met again: no new row
    EXPECT_EQ(log.count(), 2);
    EXPECT_EQ(log.records(), (std::vector<int64_t>{2, 5}));
    auto msg = error_of([&] { log.add({7}); });  // 3 of 10 > 0.25
    EXPECT_TRUE(has(msg, "3 of the 10 training records are bad (30%), more than clip.data.max_bad_fraction = 0.25"))
        << msg;
    EXPECT_TRUE(has(msg, csv)) << msg;
  }
  auto rows = parse_csv(read_text_file(csv, "test"), ',', csv, "test");
  ASSERT_EQ(rows.size(), 4u);
  EXPECT_EQ(rows[0].fields, (std::vector<std::string>{"index", "shard", "record", "id", "reason"}));
  EXPECT_EQ(rows[1].fields[0], "5");
  EXPECT_EQ(rows[1].fields[1], dir / "tiles.h5");
  EXPECT_EQ(rows[1].fields[2], "5");
  EXPECT_EQ(rows[1].fields[3], "tile_5");
  EXPECT_TRUE(has(rows[1].fields[4], "corrupt PNG data (IDAT")) << rows[1].fields[4];
  EXPECT_EQ(rows[2].fields[0], "2");
  EXPECT_TRUE(has(rows[2].fields[4], "corrupt JPEG data")) << rows[2].fields[4];
  EXPECT_EQ(rows[3].fields[0], "7");
  EXPECT_TRUE(has(rows[3].fields[4], "PNG image of 100000x100000 = 10000000000 pixels is too large"))
      << rows[3].fields[4];

  // A resumed run: the checkpoint's records are known, rows already in the file are not written again.
  BadRecordLog resumed(ds, nullptr, csv, true, 0.5, "clip.data.max_bad_fraction");
  resumed.restore({2, 5});
  resumed.add({2, 5, 7});
  EXPECT_EQ(resumed.count(), 3);
  EXPECT_EQ(parse_csv(read_text_file(csv, "test"), ',', csv, "test").size(), 4u);
  EXPECT_TRUE(has(error_of([&] { BadRecordLog(ds, nullptr, csv, true, 1.5, "k"); }), "k must be in [0, 1]"));
}
