// End-to-end: `pathvlm synth slides`, `pathvlm tile` (failures, resume after a kill) and `pathvlm embed`.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "wsi/embed.h"
#include "io/hdf5.h"
#include "data/image.h"
#include "data/tile_features.h"
#include "io/shard_schema.h"
#include "wsi/slide.h"
#include "wsi/slide_batch.h"
#include "synth/slide_synth.h"
#include "wsi/tiling.h"
#include "wsi/tissue.h"
#include "models/clip/weights.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"
#include "models/swin/swin_util.h"
#include "models/swin/weights.h"
#include "models/vit/hf_vit_util.h"
#include "models/vit/hf_weights.h"
#include "models/vit/timm_vit_util.h"
#include "models/vit/timm_weights.h"
#include "dicom_writer.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace pathvlm;
using pathvlm::testing::shared_slide;

namespace {

bool tools_built() {
  return wsi::openslide_built_in() && wsi::tissue_segmentation_built_in() && synth::slide_synth_built_in();
}

std::string temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_slide_cli_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir.string();
}

// Runs the pathvlm program; returns its exit status and (in `output`) stdout + stderr.
int run(const std::string& args, std::string* output = nullptr) {
  const std::string log = fs::temp_directory_path() / ("pathvlm_slide_cli_out_" + std::to_string(::getpid()));
  const int status = std::system((std::string(PATHVLM_BINARY) + " " + args + " > " + log + " 2>&1").c_str());
  std::ifstream in(log);
  std::stringstream text;
  text << in.rdbuf();
  if (output) *output = text.str();
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The files under `dir` (relative path -> bytes).
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) files[fs::relative(e.path(), dir).string()] = read_text(e.path().string());
  }
  return files;
}

// Three small synthetic slides shared by the tests of this file (made once, removed at exit).
struct SyntheticSlides {
  std::string dir = temp_dir("synth");
  std::string output;  // what `synth slides` printed
  SyntheticSlides() {
    const int rc =
        run("synth slides --out " + dir + " --count 3 --width 1536 --height 1024 --levels 3 --seed 3", &output);
    EXPECT_EQ(rc, 0) << output;
  }
  ~SyntheticSlides() { fs::remove_all(dir); }
};

const SyntheticSlides& synthetic_run() {
  static SyntheticSlides slides;
  return slides;
}

const std::string& synthetic_slides() { return synthetic_run().dir; }

const char* kTileArgs = " --patch-size 128 --workers 2 tissue.preset=synthetic";

// Everything a reader of a coords file sees.
std::string coords_content(const std::string& path) {
  auto t = wsi::read_coords_h5(path);
  std::ostringstream s;
  s << t.slide_id << "|" << t.slide_path << "|" << t.settings << "|" << t.grid.patch_size_level0 << "|" << t.grid.mpp
    << "|" << t.grid.read_level << "|" << t.grid.read_size << "|" << t.grid.level0_width << "|" << t.coords.sizes();
  auto c = t.coords.contiguous();
  s.write(reinterpret_cast<const char*>(c.data_ptr<int64_t>()), c.numel() * 8);
  return s.str();
}

}  // namespace

TEST(SlideCli, SynthSlidesWritesSlidesReportsMasks) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& dir = synthetic_slides();
  // Progress, as the other long commands show it (the final line of the bar).
  EXPECT_NE(synthetic_run().output.find("synth slides: 3 slides in"), std::string::npos) << synthetic_run().output;
  for (int i = 0; i < 3; ++i) {
    const std::string id = "slide_00" + std::to_string(i);
    ASSERT_TRUE(fs::exists(dir + "/" + id + ".tiff"));
    ASSERT_TRUE(fs::exists(dir + "/masks/" + id + ".png"));
    auto meta = nlohmann::json::parse(read_text(dir + "/regions/" + id + ".json"));
    EXPECT_FALSE(meta["regions"].empty());
    EXPECT_GT(meta["tissue_fraction"].get<double>(), 0.05);
    auto mask = data::read_image(dir + "/masks/" + id + ".png");
    EXPECT_EQ(mask.size(0), 1024 / 4);
    EXPECT_EQ(mask.size(1), 1536 / 4);
  }
  auto reports = wsi::read_csv(dir + "/reports.csv");
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[0][0], "slide_id");
  EXPECT_NE(reports[1][1], reports[2][1]);  // varied wording
  auto listed = wsi::list_slides(dir + "/slides.csv");
  ASSERT_EQ(listed.size(), 3u);
  EXPECT_EQ(listed[0].id, "slide_000");
  EXPECT_DOUBLE_EQ(listed[0].mpp, 0.25);
  // The same seed gives the same slide, byte for byte.
  auto again = temp_dir("synth_again");
  ASSERT_EQ(run("synth slides --out " + again + " --count 1 --width 1536 --height 1024 --levels 3 --seed 3"), 0);
  EXPECT_EQ(read_text(again + "/slide_000.tiff"), read_text(dir + "/slide_000.tiff"));
  fs::remove_all(again);
}

TEST(SlideCli, TileBatchRecordsFailuresAndFinishesTheRest) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  if (!fs::exists(shared_slide("boxes.tiff"))) GTEST_SKIP() << "shared test data missing: " << shared_slide("");
  auto dir = temp_dir("batch");
  fs::create_directories(dir + "/wsi");
  for (const char* name : {"boxes.tiff", "small.svs", "unreadable.svs", "unopenable.tiff"}) {
    fs::create_symlink(shared_slide(name), dir + "/wsi/" + name);
  }
  fs::copy_file(synthetic_slides() + "/slide_000.tiff", dir + "/wsi/synthetic.tiff");
  // boxes.tiff has no mpp of its own: without the override it fails too.
  std::string out;
  ASSERT_EQ(run("tile --slides " + dir + "/wsi --out " + dir + "/no_mpp" + kTileArgs, &out), 0) << out;
  EXPECT_NE(read_text(dir + "/no_mpp/failures.csv").find("no microns-per-pixel"), std::string::npos)
      << read_text(dir + "/no_mpp/failures.csv");

  std::ofstream(dir + "/mpp.csv") << "slide,mpp\nboxes.tiff,0.5\n";
  const int rc = run("tile --slides " + dir + "/wsi --out " + dir + "/out --mpp-csv " + dir + "/mpp.csv" + kTileArgs +
                         " tissue.seg_downsample=4",
                     &out);
  ASSERT_EQ(rc, 0) << out;
  auto failures = wsi::read_csv(dir + "/out/failures.csv");
  ASSERT_EQ(failures.size(), 3u) << read_text(dir + "/out/failures.csv");
  EXPECT_EQ(failures[0], (std::vector<std::string>{"slide", "stage", "reason"}));
  std::map<std::string, std::vector<std::string>> by_name;
  for (size_t i = 1; i < failures.size(); ++i) by_name[fs::path(failures[i][0]).filename().string()] = failures[i];
  ASSERT_TRUE(by_name.count("unreadable.svs")) << read_text(dir + "/out/failures.csv");
  ASSERT_TRUE(by_name.count("unopenable.tiff")) << read_text(dir + "/out/failures.csv");
  EXPECT_EQ(by_name["unopenable.tiff"][1], "open");
  EXPECT_NE(by_name["unopenable.tiff"][2].find("unopenable.tiff"), std::string::npos);
  EXPECT_NE(by_name["unopenable.tiff"][2].find("OpenSlide"), std::string::npos);
  EXPECT_NE(by_name["unreadable.svs"][2].find("unreadable.svs"), std::string::npos);
  EXPECT_FALSE(by_name["unreadable.svs"][2].empty());
  for (const char* done : {"boxes", "small", "synthetic"}) {
    EXPECT_TRUE(fs::exists(dir + "/out/patches/" + std::string(done) + ".h5")) << done << "\n" << out;
  }
  EXPECT_GT(wsi::read_coords_h5(dir + "/out/patches/synthetic.h5").coords.size(0), 5);
  EXPECT_DOUBLE_EQ(wsi::read_coords_h5(dir + "/out/patches/boxes.h5").grid.mpp, 0.5);
  EXPECT_TRUE(fs::exists(dir + "/out/qa/synthetic.png"));
  // The summary table names every slide.
  for (const char* id : {"boxes", "small", "unreadable", "unopenable", "synthetic"}) {
    EXPECT_NE(out.find(id), std::string::npos) << out;
  }
  EXPECT_NE(out.find("2 failed"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(SlideCli, TileKilledAndRestartedGivesIdenticalOutputs) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("resume");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/clean" + kTileArgs, &out), 0) << out;

  // Start a run, kill it as soon as its first slide is done, then run again.
  const std::string cmd = std::string(PATHVLM_BINARY) + " tile --slides " + slides + " --out " + dir + "/killed" +
                          kTileArgs + " --workers 1";
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!fs::exists(dir + "/killed/patches/slide_000.h5") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_FALSE(fs::exists(dir + "/killed/failures.csv")) << "the run finished before it was killed";
  // A stale temp file from the kill (or planted here) is redone, not trusted.
  std::ofstream(dir + "/killed/patches/slide_002.h5.tmp") << "partial";

  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/killed" + kTileArgs, &out), 0) << out;
  EXPECT_NE(out.find("skipped"), std::string::npos) << out;
  EXPECT_FALSE(fs::exists(dir + "/killed/patches/slide_002.h5.tmp"));
  auto clean = snapshot(dir + "/clean"), resumed = snapshot(dir + "/killed");
  ASSERT_EQ(clean.size(), resumed.size());
  for (const auto& [name, bytes] : clean) {
    ASSERT_TRUE(resumed.count(name)) << name;
    if (fs::path(name).extension() == ".h5") {
      EXPECT_EQ(coords_content(dir + "/killed/" + name), coords_content(dir + "/clean/" + name)) << name;
    }
    EXPECT_TRUE(resumed[name] == bytes) << name << " differs after kill and restart";
  }
  // Other settings: the finished slides are redone, not skipped.
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/killed" + kTileArgs + " --overlap 32", &out), 0);
  EXPECT_NE(out.find("other settings"), std::string::npos) << out;
  fs::remove_all(dir);
}

// The same pixels as a DICOM series (one file per level, a label beside them, uncompressed frames) tile to the same
// coords as the TIFF they came from, and embed to the same features.
TEST(SlideCli, DicomSeriesTilesAndEmbedsAsTheTiffItsPixelsCameFrom) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  auto dir = temp_dir("dicom");
  fs::create_directories(dir + "/tiff");
  fs::copy_file(synthetic_slides() + "/slide_000.tiff", dir + "/tiff/slide_000.tiff");
  wsi::Slide tiff = wsi::Slide::open(dir + "/tiff/slide_000.tiff");
  for (int i = 0; i < tiff.level_count(); ++i) {
    pathvlm::testing::DicomLevelSpec level;
    level.rgb = tiff.read_level(i);
    level.tile_width = 96 + 32 * i, level.tile_height = 80;
    level.spacing_mm = wsi::slide_mpp(tiff) / 1000;
    pathvlm::testing::write_dicom_level(dir + "/dcm/slide_000" + (i ? "_level" + std::to_string(i) : ""), level);
  }
  pathvlm::testing::DicomLevelSpec label;
  label.rgb = torch::zeros({40, 60, 3}, torch::kUInt8), label.flavor = "LABEL";
  pathvlm::testing::write_dicom_level(dir + "/dcm/slide_000_label", label);

  std::string out;
  for (const char* kind : {"tiff", "dcm"}) {
    ASSERT_EQ(run(str("tile --slides ", dir, "/", kind, " --out ", dir, "/tiles_", kind, kTileArgs), &out), 0) << out;
    EXPECT_NE(out.find("1 slides: 1 done"), std::string::npos) << out;  // the series is one slide
  }
  const auto from_tiff = wsi::read_coords_h5(dir + "/tiles_tiff/patches/slide_000.h5");
  const auto from_dicom = wsi::read_coords_h5(dir + "/tiles_dcm/patches/slide_000.h5");
  EXPECT_GT(from_tiff.coords.size(0), 5);
  EXPECT_TRUE(torch::equal(from_dicom.coords, from_tiff.coords));
  EXPECT_EQ(from_dicom.grid.read_level, from_tiff.grid.read_level);
  EXPECT_DOUBLE_EQ(from_dicom.grid.mpp, from_tiff.grid.mpp);

  for (const char* kind : {"tiff", "dcm"}) {
    ASSERT_EQ(run(str("embed --coords ", dir, "/tiles_", kind, " --encoder tiny --out ", dir, "/feats_", kind,
                      " --device cpu --batch-size 16"),
                  &out),
              0)
        << out;
  }
  auto features = [&](const char* kind) {
    return h5::File::open(dir + "/feats_" + std::string(kind) + "/features/slide_000.h5").read("features");
  };
  EXPECT_TRUE(torch::equal(features("dcm"), features("tiff")));
  fs::remove_all(dir);
}

TEST(SlideCli, EmbedWritesTridentFilesShardsAndTokens) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs, &out), 0) << out;
  // A coords file whose slide is gone fails alone.
  auto lost = wsi::read_coords_h5(dir + "/tiles/patches/slide_001.h5");
  lost.slide_id = "lost";
  lost.slide_path = dir + "/missing.tiff";
  wsi::write_coords_h5(dir + "/tiles/patches/lost.h5", lost);

  // A tiny random CLIP exported as an HF directory.
  torch::manual_seed(0);
  models::ClipModelConfig mc;
  mc.preset = "tiny";
  models::ClipModel model(models::resolve_clip_config(mc));
  models::init_clip_weights(*model);
  models::export_hf_clip(model, model->config(), dir + "/clip");
  const int image_size = model->config().image_size, dim = model->config().embed_dim;

  const std::string args = "embed --coords " + dir + "/tiles --encoder " + dir + "/clip --out " + dir +
                           "/feats --device cpu --batch-size 7 --readers 2 --tokens --reports " + slides +
                           "/reports.csv slides_per_shard=2";
  ASSERT_EQ(run(args, &out), 0) << out;
  auto failures = wsi::read_csv(dir + "/feats/failures.csv");
  ASSERT_EQ(failures.size(), 2u) << read_text(dir + "/feats/failures.csv");
  EXPECT_NE(failures[1][2].find("missing.tiff"), std::string::npos) << failures[1][2];
  EXPECT_EQ(failures[1][1], "read");

  for (int i = 0; i < 3; ++i) {
    const std::string id = "slide_00" + std::to_string(i);
    auto coords = wsi::read_coords_h5(dir + "/tiles/patches/" + id + ".h5");
    auto f = h5::File::open(dir + "/feats/features/" + id + ".h5");
    auto features = f.read("features");
    ASSERT_EQ(features.sizes(), (std::vector<int64_t>{coords.coords.size(0), dim}));
    EXPECT_TRUE(torch::equal(f.read("coords"), coords.coords));
    EXPECT_EQ(f.dataset("coords").attr_int("patch_size_level0"), coords.grid.patch_size_level0);
    EXPECT_EQ(f.dataset("features").attr_string("encoder"), dir + "/clip");
    if (i == 0) {
      // Tile 3 by hand: read, resize, normalise, encode_image; the block-by-block pass must agree.
      auto slide = wsi::Slide::open(slides + "/" + id + ".tiff");
      auto xy = coords.coords[3];
      auto rgb = slide.read_region(xy[0].item<int64_t>(), xy[1].item<int64_t>(), coords.grid.read_level,
                                   coords.grid.read_size, coords.grid.read_size);
      rgb = data::resize_bicubic(rgb, image_size, image_size);
      torch::NoGradGuard no_grad;
      model->eval();
      auto expected = model->encode_image(data::normalize_openai(rgb).unsqueeze(0));
      EXPECT_TRUE(torch::allclose(features[3], expected[0], 1e-4, 1e-5))
          << (features[3] - expected[0]).abs().max();
    }
    auto tokens = h5::File::open(dir + "/feats/tokens/" + id + ".h5");
    EXPECT_EQ(shards::check_schema(tokens), shards::ShardKind::TileFeatures);
    EXPECT_EQ(tokens.dataset("features").rows(), coords.coords.size(0));
    EXPECT_EQ(tokens.attr_int("token_layer"), -2);
  }
  auto manifest = nlohmann::json::parse(read_text(dir + "/feats/shards/manifest.json"));
  EXPECT_EQ(manifest["pathvlm_manifest"], "slides/1");
  EXPECT_EQ(manifest["records"], 3);
  ASSERT_EQ(manifest["shards"].size(), 2u);
  for (const auto& s : manifest["shards"]) {
    auto shard = h5::File::open(dir + "/feats/shards/" + s["file"].get<std::string>());
    auto report = shards::validate(shard);
    EXPECT_EQ(report.kind, shards::ShardKind::Slides);
    EXPECT_EQ(report.bad_records, 0) << (report.bad.empty() ? "" : report.bad[0].problem);
    EXPECT_TRUE(shard.has("reports/text"));
  }
  auto token_features = data::TileFeatureDataset::open(dir + "/feats/tokens");
  EXPECT_EQ(token_features.token_layer(), std::optional<int>(-2));
  EXPECT_EQ(token_features.encoder(), std::optional<std::string>(dir + "/clip"));
  const auto first = wsi::read_coords_h5(dir + "/tiles/patches/slide_000.h5").coords[0];
  EXPECT_TRUE(token_features.index_of(str("slide_000/", first[0].item<int64_t>(), "_", first[1].item<int64_t>())));

  // A second run skips every finished slide and leaves the files as they were.
  auto before = snapshot(dir + "/feats/features");
  ASSERT_EQ(run(args, &out), 0) << out;
  EXPECT_NE(out.find("3 skipped"), std::string::npos) << out;
  EXPECT_TRUE(snapshot(dir + "/feats/features") == before);
  fs::remove_all(dir);
}

// `embed` with a timm ViT (UNI's layout) as the encoder: its pooled features of tiles resized as its pretrained_cfg
// says (UNI's: bilinear) and normalised with its mean/std (not CLIP's); --tokens writes its penultimate hidden state,
// class token first. A filter pathvlm lacks is refused, unless embed's `interpolation` replaces it.
namespace {

// The encoder's input for row `row` of slide `id`'s coords made by hand, as TRIDENT makes it: read, resize to the
// tile (PIL's default, bicubic), resize to the encoder's input `how` its transform does, normalise with `mean` / `std`.
torch::Tensor tile_pixels_by_hand(const std::string& slides, const std::string& tiles, const std::string& id,
                                  int64_t row, int size, const std::array<double, 3>& mean,
                                  const std::array<double, 3>& std,
                                  data::Interpolation how = data::Interpolation::bicubic) {
  const auto coords = wsi::read_coords_h5(tiles + "/patches/" + id + ".h5");
  auto slide = wsi::Slide::open(slides + "/" + id + ".tiff");
  const auto xy = coords.coords[row];
  const auto& g = coords.grid;
  auto rgb = slide.read_region(xy[0].item<int64_t>(), xy[1].item<int64_t>(), g.read_level, g.read_size, g.read_size);
  rgb = data::resize_bicubic(rgb, g.patch_size, g.patch_size);
  rgb = data::resize(rgb, size, size, how);
  return data::normalize_image(rgb, mean, std).unsqueeze(0);
}

// The features of that tile by hand: the ViT's forward.
torch::Tensor tile_features_by_hand(const std::string& slides, const std::string& tiles, const std::string& id,
                                    int64_t row, models::Vit vit, const std::array<double, 3>& mean,
                                    const std::array<double, 3>& std,
                                    data::Interpolation how = data::Interpolation::bicubic) {
  torch::NoGradGuard no_grad;
  return vit->forward(tile_pixels_by_hand(slides, tiles, id, row, vit->config().image_size, mean, std, how))[0];
}

}  // namespace

TEST(SlideCli, EmbedWithATimmVitWritesItsPooledFeatures) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_timm");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs, &out), 0) << out;
  pathvlm::testing::Layout layout{"embed"};
  layout.interpolation = "bilinear";
  const std::string vit_dir = pathvlm::testing::write_timm_vit(layout);
  const std::string args = "embed --coords " + dir + "/tiles --encoder " + vit_dir + " --device cpu --out " + dir;
  ASSERT_EQ(run(args + "/feats --batch-size 5 --tokens", &out), 0) << out;
  EXPECT_NE(out.find("timm ViT, token pooling, 32 px input (bilinear resize)"), std::string::npos) << out;
  constexpr auto kBilinear = data::Interpolation::bilinear;

  const std::string id = "slide_000";
  const auto coords = wsi::read_coords_h5(dir + "/tiles/patches/" + id + ".h5");
  auto f = h5::File::open(dir + "/feats/features/" + id + ".h5");
  const auto features = f.read("features");
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{coords.coords.size(0), pathvlm::testing::kWidth}));
  EXPECT_EQ(f.dataset("features").attr_string("encoder"), vit_dir);
  const auto expected = tile_features_by_hand(slides, dir + "/tiles", id, 3, models::load_timm_vit(vit_dir),
                                              pathvlm::testing::kMean, pathvlm::testing::kStd, kBilinear);
  EXPECT_TRUE(torch::allclose(features[3], expected, 1e-4, 1e-5)) << (features[3] - expected).abs().max();

  auto tokens_file = h5::File::open(dir + "/feats/tokens/" + id + ".h5");
  EXPECT_EQ(tokens_file.attr_int("token_layer"), -2);
  const auto tokens = tokens_file.read("features");
  const int64_t rows = (pathvlm::testing::kImage / pathvlm::testing::kPatch) *
                           (pathvlm::testing::kImage / pathvlm::testing::kPatch) + 1;  // the class token first
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{coords.coords.size(0), rows, pathvlm::testing::kWidth}));
  auto vit = models::load_timm_vit(vit_dir);
  torch::NoGradGuard no_grad;
  const auto expected_tokens = vit->hidden_state(
      tile_pixels_by_hand(slides, dir + "/tiles", id, 3, pathvlm::testing::kImage, pathvlm::testing::kMean,
                          pathvlm::testing::kStd, kBilinear), -2)[0];
  EXPECT_TRUE(torch::allclose(tokens[3].to(torch::kFloat), expected_tokens, 2e-3, 2e-3))
      << (tokens[3] - expected_tokens).abs().max();
  fs::remove_all(vit_dir);

  layout.interpolation = "lanczos";
  const std::string lanczos_dir = pathvlm::testing::write_timm_vit(layout);
  const std::string lanczos =
      "embed --coords " + dir + "/tiles --encoder " + lanczos_dir + " --device cpu --out " + dir;
  EXPECT_NE(run(lanczos + "/lanczos", &out), 0);
  EXPECT_NE(out.find("interpolation 'lanczos' is not supported (bicubic or bilinear are)"), std::string::npos) << out;
  EXPECT_NE(out.find(lanczos_dir), std::string::npos) << out;
  ASSERT_EQ(run(lanczos + "/bicubic interpolation=bicubic", &out), 0) << out;
  EXPECT_NE(out.find("32 px input (bicubic resize)"), std::string::npos) << out;
  fs::remove_all(lanczos_dir);
  fs::remove_all(dir);
}

// `embed` with CONCH v1 (its state dict as safetensors): the attention-pooled, unprojected features CLAM and TRIDENT
// write, of tiles resized to 448 px and normalised with OpenAI's statistics; --tokens gives its trunk's hidden state.
// CONCH as its hub repository holds it (a pickle) is refused with the conversion command.
TEST(SlideCli, EmbedWithConchWritesItsAttentionPooledFeatures) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  using namespace pathvlm::testing;
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_conch");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs, &out), 0) << out;
  const std::string conch_dir = write_conch({"embed"});
  const std::string args = "embed --coords " + dir + "/tiles --encoder " + conch_dir + " --device cpu --out " + dir;
  ASSERT_EQ(run(args + "/feats --batch-size 4 --tokens", &out), 0) << out;
  EXPECT_NE(out.find("CONCH v1, attention pooling, 448 px input (bicubic resize), 64 features, pixel mean [0.481455, "
                     "0.457827, 0.408211]"),
            std::string::npos)
      << out;

  const std::string id = "slide_000";
  const int64_t tiles = wsi::read_coords_h5(dir + "/tiles/patches/" + id + ".h5").coords.size(0);
  auto f = h5::File::open(dir + "/feats/features/" + id + ".h5");
  const auto features = f.read("features");
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{tiles, kConchPooled}));
  auto conch = models::load_conch(conch_dir).model;
  const auto& trunk = conch->trunk->config();
  const auto pixels = tile_pixels_by_hand(slides, dir + "/tiles", id, 2, kConchInput, trunk.mean, trunk.std);
  torch::NoGradGuard no_grad;
  const auto expected = conch->forward(pixels)[0];
  EXPECT_TRUE(torch::allclose(features[2], expected, 1e-4, 1e-5)) << (features[2] - expected).abs().max();
  const auto tokens = h5::File::open(dir + "/feats/tokens/" + id + ".h5").read("features");
  const int64_t rows = (kConchInput / kConchPatch) * (kConchInput / kConchPatch) + 1;  // the class token first
  ASSERT_EQ(tokens.sizes(), (std::vector<int64_t>{tiles, rows, kConchWidth}));
  const auto expected_tokens = conch->trunk->hidden_state(pixels, -2)[0];
  EXPECT_TRUE(torch::allclose(tokens[2].to(torch::kFloat), expected_tokens, 2e-3, 2e-3))
      << (tokens[2] - expected_tokens).abs().max();

  // pool=proj: v1's projection of them, the image side of its zero-shot space; another pooling is refused.
  ASSERT_EQ(run(args + "/projected --batch-size 4 pool=proj", &out), 0) << out;
  EXPECT_NE(out.find("CONCH v1, attention pooling, projected, 448 px input"), std::string::npos) << out;
  const auto projected = h5::File::open(dir + "/projected/features/" + id + ".h5").read("features");
  ASSERT_EQ(projected.sizes(), (std::vector<int64_t>{tiles, kConchProjection}));
  const auto expected_projected = torch::matmul(expected, conch->proj_contrast);
  EXPECT_TRUE(torch::allclose(projected[2], expected_projected, 1e-4, 1e-5))
      << (projected[2] - expected_projected).abs().max();
  EXPECT_NE(run(args + "/other pool=avg", &out), 0);
  EXPECT_NE(out.find("CONCH's features are its attention pooling"), std::string::npos) << out;
  // As MahmoodLab/CONCH publishes it: pytorch_model.bin, refused with the command that converts it.
  fs::remove(conch_dir + "/model.safetensors");
  std::ofstream(conch_dir + "/pytorch_model.bin", std::ios::binary) << std::string("PK\x03\x04", 4)
                                                                     << std::string(64, '\0');
  EXPECT_NE(run(args + "/pickled", &out), 0);
  EXPECT_NE(out.find("convert_to_safetensors.py"), std::string::npos) << out;
  fs::remove_all(conch_dir);
  fs::remove_all(dir);
}

// `embed` with CTransPath (its .pth's state dict as safetensors): the Swin's token mean of tiles resized to 224 px
// (bilinear) with ImageNet's statistics, as TRIDENT's `ctranspath` writes; it gives no token features. Tiles at 15x,
// which no level holds, are read from 20x and resized to the tile first (bicubic), as TRIDENT's patcher does.
TEST(SlideCli, EmbedWithCTransPathWritesItsSwinFeatures) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  using namespace pathvlm::testing;
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_ctranspath");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs + " --magnification 15", &out), 0)
      << out;
  const std::string swin_dir = write_ctranspath("embed");
  const std::string args = "embed --coords " + dir + "/tiles --encoder " + swin_dir + " --device cpu --out " + dir;
  ASSERT_EQ(run(args + "/feats --batch-size 4", &out), 0) << out;
  EXPECT_NE(out.find("CTransPath (Swin), token mean, 224 px input (bilinear resize), 192 features, pixel mean [0.485, "
                     "0.456, 0.406]"),
            std::string::npos)
      << out;
  const std::string id = "slide_001";
  const auto coords = wsi::read_coords_h5(dir + "/tiles/patches/" + id + ".h5");
  ASSERT_EQ(coords.grid.read_size, 171);  // 128 x 20 / 15
  const int64_t tiles = coords.coords.size(0);
  const auto features = h5::File::open(dir + "/feats/features/" + id + ".h5").read("features");
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{tiles, kSwinFeatures}));
  auto swin = models::load_ctranspath(swin_dir);
  const auto& c = swin->config();
  torch::NoGradGuard no_grad;
  const auto pixels = [&](data::Interpolation how) {
    return tile_pixels_by_hand(slides, dir + "/tiles", id, 1, kSwinInput, c.mean, c.std, how);
  };
  const auto expected = swin->forward(pixels(data::Interpolation::bilinear))[0];
  EXPECT_TRUE(torch::allclose(features[1], expected, 1e-4, 1e-5)) << (features[1] - expected).abs().max();
  // The filter is the encoder's, and embed's `interpolation` overrides it.
  ASSERT_EQ(run(args + "/bicubic --batch-size 4 interpolation=bicubic", &out), 0) << out;
  const auto bicubic = h5::File::open(dir + "/bicubic/features/" + id + ".h5").read("features");
  const auto expected_bicubic = swin->forward(pixels(data::Interpolation::bicubic))[0];
  EXPECT_TRUE(torch::allclose(bicubic[1], expected_bicubic, 1e-4, 1e-5)) << (bicubic[1] - expected_bicubic).abs().max();
  EXPECT_FALSE(torch::allclose(bicubic[1], expected, 1e-4, 1e-5));

  EXPECT_NE(run(args + "/tokens --tokens", &out), 0);
  EXPECT_NE(out.find("does not give token features"), std::string::npos) << out;
  fs::remove_all(swin_dir);
  fs::remove_all(dir);
}

// A transformers DINOv2 as Midnight's card runs it: 0.5 mean/std in place of its preprocessor's, the class token
// and patch mean; its position embeddings resampled to the input. Changing the pooling re-encodes the slides.
TEST(SlideCli, EmbedWithATransformersVitTakesThePoolingAndPixelStatisticsGiven) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_hf_vit");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs, &out), 0) << out;
  pathvlm::testing::HfLayout layout("embed_midnight");
  layout.swiglu = true;
  layout.position_grid = 7;
  const std::string vit_dir = pathvlm::testing::write_hf_vit(layout);
  const std::string args = "embed --coords " + dir + "/tiles --encoder " + vit_dir + " --device cpu --out " + dir +
                           "/feats --batch-size 5 ";
  ASSERT_EQ(run(args + "pool=token+avg image_mean=[0.5,0.5,0.5] image_std=[0.5,0.5,0.5]", &out), 0) << out;
  EXPECT_NE(out.find("transformers ViT, token+avg pooling, 32 px input (bicubic resize), 64 features, pixel mean "
                     "[0.5, 0.5, 0.5] std [0.5, 0.5, 0.5]"),
            std::string::npos)
      << out;

  const std::string id = "slide_001", features_file = dir + "/feats/features/" + id + ".h5";
  const int64_t tiles = wsi::read_coords_h5(dir + "/tiles/patches/" + id + ".h5").coords.size(0);
  auto features = h5::File::open(features_file).read("features");
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{tiles, 2 * pathvlm::testing::kWidth}));
  auto vit = models::load_hf_vit(vit_dir);
  vit->set_global_pool("token+avg");
  const std::array<double, 3> half{0.5, 0.5, 0.5};
  auto expected = tile_features_by_hand(slides, dir + "/tiles", id, 2, vit, half, half);
  EXPECT_TRUE(torch::allclose(features[2], expected, 1e-4, 1e-5)) << (features[2] - expected).abs().max();

  EXPECT_NE(run(args + "image_mean=[0.5,0.5]", &out), 0);
  EXPECT_NE(out.find("image_mean needs 3 values [r,g,b], got 2"), std::string::npos) << out;
  const std::string coords = "embed --coords " + dir + "/tiles --device cpu ";
  EXPECT_NE(run(coords + "--encoder tiny --out " + dir + "/clip pool=avg", &out), 0);
  EXPECT_NE(out.find("a CLIP encoder's features are its projected class token"), std::string::npos) << out;
  fs::create_directories(dir + "/swin");  // CTransPath's architecture: named, not reported as a failed CLIP
  std::ofstream(dir + "/swin/config.json") << R"({"model_type": "swin", "architectures": ["SwinModel"]})";
  EXPECT_NE(run(coords + "--encoder " + dir + "/swin --out " + dir + "/swin_features", &out), 0);
  EXPECT_NE(out.find("model_type 'swin' is not an encoder `pathvlm embed` runs"), std::string::npos) << out;
  ASSERT_EQ(run(args + "image_mean=[0.5,0.5,0.5] image_std=[0.5,0.5,0.5]", &out), 0) << out;
  features = h5::File::open(features_file).read("features");
  ASSERT_EQ(features.sizes(), (std::vector<int64_t>{tiles, pathvlm::testing::kWidth}));  // the class token alone
  EXPECT_TRUE(torch::allclose(features[2], expected.narrow(0, 0, pathvlm::testing::kWidth), 1e-4, 1e-5));
  fs::remove_all(vit_dir);
  fs::remove_all(dir);
}

// `synth slides` also writes instruction data about its slides (instruct/): the report records carry each slide's
// report, chat asks about every tissue class with yes exactly for the classes the slide's regions show, and
// --prefix renames the slides everywhere.
TEST(SlideCli, SynthSlidesWritesReportAndChatRecordsAboutItsSlides) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  auto dir = temp_dir("synth_instruct_slides");
  ASSERT_EQ(run("synth slides --out " + dir + " --count 2 --width 512 --height 384 --levels 2 --seed 4 --prefix val"),
            0);
  const auto reports = nlohmann::json::parse(read_text(dir + "/instruct/reports.json"));
  ASSERT_EQ(reports.size(), 2u);
  for (int i = 0; i < 2; ++i) {
    const std::string id = "val_00" + std::to_string(i);
    ASSERT_TRUE(fs::exists(dir + "/" + id + ".tiff"));
    const auto meta = nlohmann::json::parse(read_text(dir + "/regions/" + id + ".json"));
    EXPECT_EQ(reports[i]["image"], id);
    EXPECT_EQ(reports[i]["conversations"][1]["value"], meta["report"]);
    std::set<std::string> present;
    for (const auto& r : meta["regions"]) present.insert(r["class"].get<std::string>());
    int64_t yes = 0, asked = 0;
    for (const auto& record : nlohmann::json::parse(read_text(dir + "/instruct/chat.json"))) {
      const auto record_id = record["id"].get<std::string>();
      if (record["image"] != id || record_id.find("-main") != std::string::npos ||
          record_id.find("-report") != std::string::npos)
        continue;
      ++asked;
      const std::string key = record_id.substr(id.size() + 1);
      EXPECT_EQ(record["conversations"][1]["value"] == "Yes.", present.count(key) == 1) << record_id;
      yes += record["conversations"][1]["value"] == "Yes." ? 1 : 0;
    }
    EXPECT_EQ(asked, 7);  // the tissue classes but background
    EXPECT_EQ(yes, static_cast<int64_t>(present.size()));
  }
  std::ifstream questions(dir + "/instruct/eval_reports.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(questions, line));
  EXPECT_EQ(nlohmann::json::parse(line)["answer"], reports[0]["conversations"][1]["value"]);
  EXPECT_TRUE(fs::exists(dir + "/instruct/tokenizer.model"));
  EXPECT_TRUE(fs::exists(dir + "/instruct/text.jsonl"));
  fs::remove_all(dir);
}

// Every input is counted: broken entries of --slides fail at stage "list" in failures.csv, a slide without tissue
// finishes with an empty coords file and a WARNING in the summary, and an earlier output without /coords is redone.
TEST(SlideCli, TileCountsBrokenEntriesWarnsOnNoTissueAndRedoesOutputsWithoutCoords) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  auto dir = temp_dir("broken");
  fs::create_directories(dir + "/wsi/folder.svs");
  fs::copy_file(synthetic_slides() + "/slide_000.tiff", dir + "/wsi/good.tiff");
  fs::create_symlink(dir + "/gone.svs", dir + "/wsi/dangling.svs");
  fs::create_symlink(dir + "/wsi/loop_b.ndpi", dir + "/wsi/loop_a.ndpi");
  fs::create_symlink(dir + "/wsi/loop_a.ndpi", dir + "/wsi/loop_b.ndpi");
  std::ofstream(dir + "/wsi/notes.txt") << "not a slide";
  std::string out;
  ASSERT_EQ(run("tile --slides " + dir + "/wsi --out " + dir + "/out" + kTileArgs, &out), 0) << out;
  auto rows = wsi::read_csv(dir + "/out/failures.csv");
  std::map<std::string, std::vector<std::string>> failed;
  for (size_t i = 1; i < rows.size(); ++i) failed[fs::path(rows[i][0]).filename().string()] = rows[i];
  ASSERT_EQ(failed.size(), 4u) << read_text(dir + "/out/failures.csv");
  for (const char* name : {"folder.svs", "dangling.svs", "loop_a.ndpi", "loop_b.ndpi"}) {
    ASSERT_TRUE(failed.count(name)) << name << "\n" << read_text(dir + "/out/failures.csv");
    EXPECT_EQ(failed[name][1], "list") << name;
  }
  EXPECT_NE(failed["dangling.svs"][2].find("dangling symbolic link"), std::string::npos) << failed["dangling.svs"][2];
  EXPECT_NE(failed["dangling.svs"][2].find("gone.svs"), std::string::npos) << failed["dangling.svs"][2];
  EXPECT_NE(failed["folder.svs"][2].find("folder"), std::string::npos) << failed["folder.svs"][2];
  EXPECT_NE(out.find("4 failed"), std::string::npos) << out;
  EXPECT_GT(wsi::read_coords_h5(dir + "/out/patches/good.h5").coords.size(0), 5);

  // No tissue (nothing is as saturated as 255): done, an empty coords file with its attributes, and a warning.
  std::ofstream(dir + "/good.csv") << "slide\n" << dir << "/wsi/good.tiff\n";
  ASSERT_EQ(run("tile --slides " + dir + "/good.csv --out " + dir + "/blank" + kTileArgs + " tissue.sthresh=255", &out),
            0)
      << out;
  EXPECT_NE(out.find("WARNING 0 tiles"), std::string::npos) << out;
  EXPECT_NE(out.find("no tissue was found"), std::string::npos) << out;
  EXPECT_NE(out.find("1 slide(s) with a warning"), std::string::npos) << out;
  auto blank = h5::File::open(dir + "/blank/patches/good.h5");
  EXPECT_EQ(blank.dataset("coords").shape(), (std::vector<int64_t>{0, 2}));
  for (const char* attr : {"patch_size", "patch_level", "level0_magnification", "target_magnification"}) {
    EXPECT_TRUE(blank.dataset("coords").has_attr(attr)) << attr;
  }
  // A resumed run keeps warning about it.
  ASSERT_EQ(run("tile --slides " + dir + "/good.csv --out " + dir + "/blank" + kTileArgs + " tissue.sthresh=255", &out),
            0);
  EXPECT_NE(out.find("skipped"), std::string::npos) << out;
  EXPECT_NE(out.find("WARNING 0 tiles"), std::string::npos) << out;

  // An output with the right settings but no /coords (a damaged earlier run) is made again.
  const std::string settings = wsi::read_settings_attr(dir + "/out/patches/good.h5");
  ASSERT_FALSE(settings.empty());
  const auto before = coords_content(dir + "/out/patches/good.h5");
  { h5::File::create(dir + "/out/patches/good.h5").set_attr("settings", settings); }
  ASSERT_EQ(run("tile --slides " + dir + "/good.csv --out " + dir + "/out" + kTileArgs, &out), 0) << out;
  EXPECT_NE(out.find("lacks a readable /coords"), std::string::npos) << out;
  EXPECT_EQ(coords_content(dir + "/out/patches/good.h5"), before);
  fs::remove_all(dir);
}

// `embed` of a coords file with 0 tiles writes TRIDENT's empty features file, flags it and warns; broken entries
// of --coords and --slides are failures, not silently left out.
TEST(SlideCli, EmbedFlagsSlidesWithoutTilesAndCountsBrokenEntries) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_empty");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs + " tissue.sthresh=255", &out), 0)
      << out;
  fs::create_symlink(dir + "/gone.h5", dir + "/tiles/patches/dangling.h5");
  fs::create_directories(dir + "/wsi");
  fs::create_symlink(slides + "/slide_000.tiff", dir + "/wsi/slide_000.tiff");
  fs::create_symlink(dir + "/gone.tiff", dir + "/wsi/slide_001.tiff");
  fs::create_symlink(dir + "/gone.tiff", dir + "/wsi/extra.tiff");
  fs::create_symlink(slides + "/slide_002.tiff", dir + "/wsi/slide_002.tiff");
  ASSERT_EQ(run("embed --coords " + dir + "/tiles --slides " + dir + "/wsi --encoder tiny --out " + dir +
                    "/feats --device cpu",
                &out),
            0)
      << out;
  auto rows = wsi::read_csv(dir + "/feats/failures.csv");
  std::map<std::string, std::vector<std::string>> failed;
  for (size_t i = 1; i < rows.size(); ++i) failed[fs::path(rows[i][0]).filename().string()] = rows[i];
  ASSERT_EQ(failed.size(), 3u) << read_text(dir + "/feats/failures.csv");
  EXPECT_EQ(failed["dangling.h5"][1], "list");
  EXPECT_EQ(failed["extra.tiff"][1], "list");
  EXPECT_NE(failed["extra.tiff"][2].find("dangling symbolic link"), std::string::npos) << failed["extra.tiff"][2];
  ASSERT_TRUE(failed.count("slide_001.h5")) << read_text(dir + "/feats/failures.csv");
  EXPECT_EQ(failed["slide_001.h5"][1], "list");
  EXPECT_NE(failed["slide_001.h5"][2].find("dangling symbolic link"), std::string::npos);
  for (const char* id : {"slide_000", "slide_002"}) {
    auto f = h5::File::open(dir + "/feats/features/" + id + ".h5");
    EXPECT_EQ(f.dataset("features").rows(), 0) << id;
    EXPECT_EQ(f.dataset("coords").shape(), (std::vector<int64_t>{0, 2})) << id;
    EXPECT_TRUE(f.has_attr("no_tiles")) << id;
  }
  EXPECT_NE(out.find("2 slide(s) with a warning"), std::string::npos) << out;
  EXPECT_NE(out.find("WARNING 0 tiles"), std::string::npos) << out;
  fs::remove_all(dir);
}

// Coords that lie wholly outside their slide (another slide's, or damaged) fail that slide by name instead of
// becoming features of white glass; tiles that only cross the edge (CLAM pads) are read as before.
TEST(SlideCli, EmbedFailsASlideWhoseCoordsLieOutsideIt) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  const auto& slides = synthetic_slides();
  auto dir = temp_dir("embed_outside");
  std::string out;
  ASSERT_EQ(run("tile --slides " + slides + " --out " + dir + "/tiles" + kTileArgs, &out), 0) << out;
  const auto outside = dir + "/tiles/patches/slide_000.h5", edge = dir + "/tiles/patches/slide_001.h5";
  for (const auto& path : {outside, edge}) {
    auto tiles = wsi::read_coords_h5(path);
    ASSERT_GE(tiles.coords.size(0), 2) << path;
    auto slide = wsi::Slide::open(slides + "/" + fs::path(path).stem().string() + ".tiff");
    if (path == outside) {
      tiles.coords[1][0] = slide.width();  // just past the right edge
    } else {
      tiles.coords[1][0] = slide.width() - 1;  // its first column inside, the rest padding
      tiles.coords[1][1] = -tiles.grid.patch_size_level0 + 1;
    }
    wsi::write_coords_h5(path, tiles);
  }
  EXPECT_EQ(run("embed --coords " + dir + "/tiles --encoder tiny --out " + dir + "/feats --device cpu", &out), 0)
      << out;  // the other slides are done: failures.csv says which failed
  auto rows = wsi::read_csv(dir + "/feats/failures.csv");
  ASSERT_EQ(rows.size(), 2u) << read_text(dir + "/feats/failures.csv");
  EXPECT_NE(rows[1][0].find("slide_000.tiff"), std::string::npos) << rows[1][0];
  EXPECT_EQ(rows[1][1], "read");
  EXPECT_NE(rows[1][2].find("coords row 1 (" + std::to_string(wsi::Slide::open(rows[1][0]).width())), std::string::npos)
      << rows[1][2];
  EXPECT_NE(rows[1][2].find("lies wholly outside the slide"), std::string::npos) << rows[1][2];
  EXPECT_FALSE(fs::exists(dir + "/feats/features/slide_000.h5"));
  EXPECT_EQ(h5::File::open(dir + "/feats/features/slide_001.h5").dataset("features").rows(),
            wsi::read_coords_h5(edge).coords.size(0));
  fs::remove_all(dir);
}

// The README's whole-slide commands, word for word in a fresh folder (`exported/` is the CLIP the README's first
// commands export; a tiny random one here): every synthetic slide gives tiles, and every tile a feature row.
TEST(SlideCli, ReadmeWholeSlideCommandsTileEverySlide) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  std::istringstream readme(read_text(std::string(PATHVLM_SOURCE_DIR) + "/README.md"));
  std::vector<std::string> commands;
  bool in_block = false;
  for (std::string line; std::getline(readme, line);) {
    if (line == "# whole slides") {
      in_block = true;
    } else if (in_block) {
      if (line.rfind("$B ", 0) != 0) break;
      commands.push_back(line.substr(0, line.find("  #")));
    }
  }
  ASSERT_EQ(commands.size(), 3u) << "the README's '# whole slides' block changed";
  auto dir = temp_dir("readme");
  torch::manual_seed(0);
  models::ClipModelConfig mc;
  mc.preset = "tiny";
  models::ClipModel model(models::resolve_clip_config(mc));
  models::init_clip_weights(*model);
  models::export_hf_clip(model, model->config(), dir + "/exported");
  for (const auto& command : commands) {
    const std::string log = dir + "/command.log";
    const int status = std::system(("cd " + dir + " && B=" + PATHVLM_BINARY + " && " + command + " > " + log +
                                    " 2>&1").c_str());
    ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << command << "\n" << read_text(log);
    EXPECT_EQ(read_text(log).find("WARNING"), std::string::npos) << command << "\n" << read_text(log);
  }
  const auto listed = wsi::list_slides(dir + "/demo/slides");
  ASSERT_GE(listed.size(), 4u);
  for (const auto& s : listed) {
    const auto tiles = wsi::read_coords_h5(dir + "/demo/coords/patches/" + s.id + ".h5");
    EXPECT_GT(tiles.coords.size(0), 0) << s.id;
    RecordProperty(s.id + "_tiles", static_cast<int>(tiles.coords.size(0)));
    auto features = h5::File::open(dir + "/demo/features/features/" + s.id + ".h5").dataset("features");
    EXPECT_EQ(features.rows(), tiles.coords.size(0)) << s.id;
  }
  fs::remove_all(dir);
}

// `tile --grid clam` end to end: the coords CLAM's own code wrote for boxes.tiff (tests/wsi/clam_coords_vectors.json).
TEST(SlideCli, TileClamGridWritesClamsCoords) {
  if (!tools_built()) GTEST_SKIP() << "needs OpenSlide, OpenCV and libtiff";
  if (!fs::exists(shared_slide("boxes.tiff"))) GTEST_SKIP() << "shared test data missing: " << shared_slide("");
  const auto vectors = nlohmann::json::parse(
      read_text(std::string(PATHVLM_SOURCE_DIR) + "/tests/wsi/clam_coords_vectors.json"));
  const nlohmann::json* boxes = nullptr;
  for (const auto& c : vectors["cases"]) {
    if (c["name"] == "boxes_tiff") boxes = &c;
  }
  ASSERT_NE(boxes, nullptr);
  auto dir = temp_dir("clam_grid");
  fs::create_directories(dir + "/wsi");
  fs::create_symlink(shared_slide("boxes.tiff"), dir + "/wsi/boxes.tiff");
  std::ofstream(dir + "/mpp.csv") << "slide,mpp\nboxes.tiff,0.25\n";
  std::string out;
  const int rc = run("tile --slides " + dir + "/wsi --out " + dir + "/out --mpp-csv " + dir +
                         "/mpp.csv --grid clam --magnification 40 --patch-size 32 --tissue-test four_pt "
                         "tissue.a_t=0.01 tissue.a_h=0.001 tissue.seg_downsample=2",
                     &out);
  ASSERT_EQ(rc, 0) << out;
  auto coords = wsi::read_coords_h5(dir + "/out/patches/boxes.h5").coords;
  const auto expected = (*boxes)["coords"].get<std::vector<std::vector<int64_t>>>();
  ASSERT_EQ(coords.size(0), static_cast<int64_t>(expected.size())) << out;
  auto xy = coords.accessor<int64_t, 2>();
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(xy[i][0], expected[i][0]) << i;
    EXPECT_EQ(xy[i][1], expected[i][1]) << i;
  }
  fs::remove_all(dir);
}
