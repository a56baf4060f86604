// `pathvlm eval --task slide --model CONCH/`: whole slides classified zero-shot from their tile features as CONCH's
// run_mizero does, on TRIDENT-style feature files listed without reports, against that computation done here. Each
// slide holds a few tiles close to one class's prompt embedding and many tiles nearer another's, so that its few best
// tiles and its many best disagree; the features are written as CONCH's pooled ones (TRIDENT's conch_v1, which the
// evaluation projects) and as already projected ones.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "eval/zeroshot.h"
#include "io/hdf5.h"
#include "io/safetensors.h"
#include "models/conch/conch_util.h"
#include "models/conch/weights.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
namespace F = torch::nn::functional;
using namespace pathvlm;
using namespace pathvlm::testing;

namespace {

const std::vector<int64_t> kTopj = {1, 5, 10, 50, 100};

void write_slide(const std::string& path, const torch::Tensor& features) {
  auto f = h5::File::create(path);
  f.write("features", features.contiguous()).set_attr("encoder", "conch_v1");
  auto coords = torch::arange(features.size(0) * 2, torch::kLong).view({-1, 2}) * 256;
  auto c = f.write("coords", coords);
  c.set_attr("patch_size", int64_t{256});
  c.set_attr("patch_size_level0", int64_t{256});
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace

TEST(ConchSlideZeroShot, ScoresSlidesByTheirBestTilesAsMiZero) {
  std::string why;
  if (!tools_available(&why)) GTEST_SKIP() << why;
  const std::string dir = fresh_dir("conch_slides"), bin = PATHVLM_BINARY, log = dir + "/out.log";
  auto run = [&](const std::string& command) {
    const int raw = std::system((command + " > " + log + " 2>&1").c_str());
    return WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  };
  const std::string conch = write_conch({"slides", "v1", 0, "", true});
  write_conch_tokenizer(fs::path(conch) / "tokenizer.json");
  std::ofstream(dir + "/prompts.json") << R"({"0": {"classnames": {"TUM": ["tumor", "carcinoma"], "STR": ["stroma"],
    "ADI": ["fat", "adipose"]}, "templates": ["CLASSNAME.", "a CLASSNAME"]}})";
  const auto spec = eval::load_zeroshot_spec(dir + "/prompts.json");
  const std::vector<std::string> labels = {"TUM", "STR", "ADI"};

  // The classifier as CONCH builds it, and its image tower's projection (pooled 64 -> shared 24).
  torch::NoGradGuard no_grad;
  const auto tower = models::load_conch_text(conch);
  auto text = tower.model;
  const auto tokenizer = models::open_conch_tokenizer(conch, "");
  const auto classifier = eval::zeroshot_classifier(spec, [&](const std::vector<std::string>& t) {
    return text->encode(*tokenizer, t);
  });
  const auto projection = safetensors::Checkpoint::open(conch).get("visual.proj_contrast").to(torch::kFloat);
  ASSERT_EQ(projection.sizes(), (std::vector<int64_t>{kConchPooled, kConchProjection}));
  const auto unproject = torch::linalg_pinv(projection);  // pooled @ projection == shared, exactly up to rounding

  // 9 slides: 4 tiles close to class a's embedding, 20 nearer class b's, 6-30 random ones, in random order; labelled a
  // (even slides: the best tiles are right) or b (odd: the many are).
  torch::manual_seed(7);
  std::ofstream pooled_csv(dir + "/pooled.csv"), projected_csv(dir + "/projected.csv");
  pooled_csv << "slide_id,features,label\n";
  projected_csv << "slide_id,features,label\n";
  fs::create_directories(dir + "/pooled");
  fs::create_directories(dir + "/projected");
  std::vector<torch::Tensor> shared_of;
  std::vector<int64_t> label_of;
  for (int s = 0; s < 9; ++s) {
    const int64_t a = s % 3, b = (s + 1) % 3, c = s % 2 == 0 ? a : b;
    const int64_t noise = 6 + torch::randint(25, {1}).item<int64_t>();
    const auto unit = F::NormalizeFuncOptions().dim(1);
    auto tiles = torch::cat({classifier[a].unsqueeze(0) + 0.1 * torch::randn({4, kConchProjection}),
                             0.6 * classifier[b].unsqueeze(0) +
                                 0.8 * F::normalize(torch::randn({20, kConchProjection}), unit),
                             F::normalize(torch::randn({noise, kConchProjection}), unit)});
    tiles = tiles.index_select(0, torch::randperm(tiles.size(0)));
    const std::string id = "slide_" + std::to_string(s);
    write_slide(dir + "/pooled/" + id + ".h5", tiles.matmul(unproject));
    write_slide(dir + "/projected/" + id + ".h5", tiles);
    pooled_csv << id << ",pooled/" << id << ".h5," << labels[c] << "\n";
    projected_csv << id << ",projected/" << id << ".h5," << labels[c] << "\n";
    shared_of.push_back(tiles);
    label_of.push_back(c);
  }
  pooled_csv.close();
  projected_csv.close();

  // What run_mizero gives: cosine per tile and class, per class the mean of its j best; the best class predicts, the
  // softmax of those means times CONCH's temperature gives the ROC AUC.
  std::map<std::string, double> expected;
  for (const int64_t j : kTopj) {
    std::vector<torch::Tensor> pooled;
    for (const auto& tiles : shared_of) {
      const auto scores = F::normalize(tiles, F::NormalizeFuncOptions().dim(1)).matmul(classifier.t());
      const auto best = std::get<0>(scores.sort(0, /*descending=*/true)).narrow(0, 0, std::min(j, scores.size(0)));
      pooled.push_back(best.mean(0));
    }
    const auto m = eval::metrics_from_logits(torch::stack(pooled) * tower.logit_scale, torch::tensor(label_of));
    EXPECT_TRUE(m.roc_auc.has_value());
    for (const auto& [key, value] : eval::metric_values(m, "zeroshot_topj" + std::to_string(j) + "/"))
      expected[key] = value;
  }
  // The construction: the best tile finds a (the 5 even slides), the 50 best find b (the 4 odd ones).
  EXPECT_NEAR(expected["zeroshot_topj1/top1"], 5.0 / 9.0, 1e-9);
  EXPECT_NEAR(expected["zeroshot_topj50/top1"], 4.0 / 9.0, 1e-9);

  const std::string eval = bin + " eval --task slide --model " + conch + " --classes " + dir + "/prompts.json " +
                           "--batch-size 4 --json ";
  ASSERT_EQ(run(eval + dir + "/pooled.json --val " + dir + "/pooled.csv"), 0) << read_text(log);
  EXPECT_HAS(read_text(log), "zero-shot on 9 slides (pooled tile features");
  ASSERT_EQ(run(std::string(PATHVLM_MPIRUN) + " -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 " +
                eval + dir + "/two.json --val " + dir + "/pooled.csv"),
            0)
      << read_text(log);
  ASSERT_EQ(run(eval + dir + "/projected.json --val " + dir + "/projected.csv --tile-features projected"), 0)
      << read_text(log);
  for (const char* name : {"pooled", "two", "projected"}) {
    const auto got = read_json(dir + "/" + name + ".json");
    EXPECT_EQ(got.size(), expected.size()) << name << ": " << got.dump();
    for (const auto& [key, value] : expected) {
      ASSERT_TRUE(got.contains(key)) << name << ": " << key << " missing from " << got.dump();
      EXPECT_NEAR(got[key].get<double>(), value, 1e-9) << name << ": " << key;
    }
  }

  // Projected features read as pooled ones are refused with the setting that fixes it; no classes, no evaluation.
  EXPECT_EQ(run(eval + dir + "/x.json --val " + dir + "/projected.csv"), kExitError);
  EXPECT_HAS(read_text(log), "holds 24-d tile features but CONCH's pooled ones are 64-d (slide.eval.tile_features");
  EXPECT_EQ(run(bin + " eval --task slide --model " + conch + " --val " + dir + "/pooled.csv"), kExitError);
  EXPECT_HAS(read_text(log), "classifies slides zero-shot: give the classes");
  fs::remove_all(conch);
  fs::remove_all(dir);
}
