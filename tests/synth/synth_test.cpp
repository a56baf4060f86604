// Procedural tissue textures and the synthetic tile data set: deterministic, and the classes look different.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "data/image.h"
#include "synth/synth_tiles.h"
#include "synth/tissue_texture.h"

namespace fs = std::filesystem;
using namespace pathvlm::data;
using namespace pathvlm::synth;

namespace {

struct TileStats {
  double r = 0, g = 0, b = 0;  // mean colour
  double dark = 0;             // fraction of nucleus-dark pixels (hematoxylin)
  double white = 0;            // fraction of near-white pixels
};

TileStats stats(const torch::Tensor& rgb) {
  auto x = rgb.to(torch::kFloat);
  auto lum = x.mean(2);
  TileStats s;
  auto mean = x.mean(std::vector<int64_t>{0, 1});
  s.r = mean[0].item<double>(), s.g = mean[1].item<double>(), s.b = mean[2].item<double>();
  s.dark = (lum < 135).to(torch::kFloat).mean().item<double>();
  s.white = (lum > 225).to(torch::kFloat).mean().item<double>();
  return s;
}

// Mean statistics over a few seeds, so the expectations hold for the class rather than one tile.
TileStats class_stats(TissueClass c) {
  TileStats sum;
  const int n = 3;
  for (int seed = 0; seed < n; ++seed) {
    auto s = stats(draw_tissue(c, 160, 160, 100 + seed));
    sum.r += s.r / n, sum.g += s.g / n, sum.b += s.b / n, sum.dark += s.dark / n, sum.white += s.white / n;
  }
  return sum;
}

fs::path temp_dir(const std::string& name) {
  auto dir = fs::temp_directory_path() / ("pathvlm_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

std::string read_all(const fs::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST(Tissue, DeterministicAndSeedDependent) {
  for (auto c : all_tissue_classes()) {
    auto a = draw_tissue(c, 64, 96, 5), b = draw_tissue(c, 64, 96, 5), d = draw_tissue(c, 64, 96, 6);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{64, 96, 3})) << tissue_class_key(c);
    ASSERT_EQ(a.scalar_type(), torch::kByte);
    EXPECT_TRUE(torch::equal(a, b)) << tissue_class_key(c);
    EXPECT_FALSE(torch::equal(a, d)) << tissue_class_key(c);
  }
}

TEST(Tissue, ClassesAreDistinguishable) {
  std::map<TissueClass, TileStats> s;
  for (auto c : all_tissue_classes()) s[c] = class_stats(c);
  using T = TissueClass;
  // Nuclei density: lymphocytes and tumor are dark-nucleus rich; adipose, mucus and background are not.
  EXPECT_GT(s[T::Lymphocytes].dark, 0.25);
  EXPECT_GT(s[T::Tumor].dark, 0.2);
  EXPECT_GT(s[T::Lymphocytes].dark, 2 * s[T::Stroma].dark);
  for (auto c : {T::Adipose, T::Mucus, T::Background}) EXPECT_LT(s[c].dark, 0.03) << tissue_class_key(c);
  // Glass and fat are mostly white; tissue classes are not.
  EXPECT_GT(s[T::Background].white, 0.9);
  EXPECT_GT(s[T::Adipose].white, 0.5);
  for (auto c : {T::Tumor, T::Lymphocytes, T::Stroma, T::Necrosis}) EXPECT_LT(s[c].white, 0.1) << tissue_class_key(c);
  // Eosin: stroma and necrosis are pink (green absorbed most); mucus is blue-grey (red absorbed most).
  EXPECT_GT(s[T::Stroma].r - s[T::Stroma].g, 40);
  EXPECT_GT(s[T::Necrosis].r - s[T::Necrosis].g, 40);
  EXPECT_GT(s[T::Mucus].b, s[T::Mucus].r);
  // Every pair of classes differs clearly in at least one statistic.
  auto all = all_tissue_classes();
  for (size_t i = 0; i < all.size(); ++i)
    for (size_t j = i + 1; j < all.size(); ++j) {
      const auto &a = s[all[i]], &b = s[all[j]];
      const double colour = std::abs(a.r - b.r) + std::abs(a.g - b.g) + std::abs(a.b - b.b);
      const double texture = 100 * (std::abs(a.dark - b.dark) + std::abs(a.white - b.white));
      EXPECT_GT(colour + texture, 15) << tissue_class_key(all[i]) << " vs " << tissue_class_key(all[j]);
    }
}

TEST(Tissue, ClassKeysRoundTrip) {
  EXPECT_EQ(all_tissue_classes().size(), static_cast<size_t>(kNumTissueClasses));
  for (auto c : all_tissue_classes()) EXPECT_EQ(tissue_class_from_key(tissue_class_key(c)), c);
  try {
    tissue_class_from_key("bone");
    FAIL() << "no error";
  } catch (const pathvlm::Error& e) {
    EXPECT_NE(std::string(e.what()).find("unknown tissue class 'bone'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("normal_mucosa"), std::string::npos);
  }
}

TEST(SynthTiles, WritesDeterministicSplitsCaptionsAndZeroShotYaml) {
  auto dir = temp_dir("synth");
  SynthTilesOptions o;
  o.tile_size = 32;
  o.train_per_class = 3;
  o.val_per_class = 1;
  o.zeroshot_per_class = 2;
  o.seed = 9;
  o.progress = false;
  o.out_dir = (dir / "a").string();
  auto r = synth_tiles(o);
  EXPECT_EQ(r.train, 24);
  EXPECT_EQ(r.val, 8);
  EXPECT_EQ(r.zeroshot, 16);
  o.out_dir = (dir / "b").string();
  synth_tiles(o);

  const std::string train_csv = read_all(dir / "a" / "train.csv");
  EXPECT_EQ(train_csv, read_all(dir / "b" / "train.csv"));
  EXPECT_EQ(train_csv.rfind("filepath,caption,label,class\n", 0), 0u);
  EXPECT_NE(train_csv.find("images/train/tumor_00002.png,"), std::string::npos);
  EXPECT_NE(train_csv.find(",6,normal_mucosa\n"), std::string::npos);
  auto a = read_image((dir / "a" / "images/zeroshot/stroma_00001.png").string());
  auto b = read_image((dir / "b" / "images/zeroshot/stroma_00001.png").string());
  EXPECT_EQ(a.sizes(), (std::vector<int64_t>{32, 32, 3}));
  EXPECT_TRUE(torch::equal(a, b));
  // Held-out tiles are not copies of training tiles.
  EXPECT_FALSE(torch::equal(a, read_image((dir / "a" / "images/train/stroma_00001.png").string())));

  const std::string yaml = read_all(dir / "a" / "zeroshot.yaml");
  EXPECT_NE(yaml.find("templates:"), std::string::npos);
  EXPECT_NE(yaml.find("  - name: tumor\n"), std::string::npos);
  EXPECT_LT(yaml.find("name: tumor"), yaml.find("name: background"));  // label = position
  fs::remove_all(dir);
}

TEST(SynthTiles, CaptionsVaryAndNameTheClass) {
  std::set<std::string> captions;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    const auto caption = synth_caption(TissueClass::Adipose, seed);
    captions.insert(caption);
    std::string c = caption;
    std::transform(c.begin(), c.end(), c.begin(), ::tolower);
    ASSERT_FALSE(c.empty());
    const auto syn = std::vector<std::string>{"adipose", "fat", "adipocytes", "fatty"};
    bool named = false;
    for (const auto& s : syn) named |= c.find(s) != std::string::npos;
    EXPECT_TRUE(named) << caption;
    EXPECT_TRUE(std::isupper(static_cast<unsigned char>(caption[0]))) << caption;
  }
  EXPECT_GT(captions.size(), 40u);
  EXPECT_EQ(synth_caption(TissueClass::Tumor, 3), synth_caption(TissueClass::Tumor, 3));
}
