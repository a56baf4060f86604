// Zero-shot and retrieval metrics on hand-made inputs with answers worked out by hand.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "dist/gather.h"
#include "eval/zeroshot.h"
#include "eval/retrieval.h"
#include "test_util.h"

using namespace pathvlm;
using pathvlm::testing::error_of;
namespace fs = std::filesystem;

namespace {

std::string write_temp(const std::string& name, const std::string& text) {
  auto dir = fs::temp_directory_path() / ("pathvlm_eval_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  auto path = (dir / name).string();
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Eval, ClassificationMetricsByHand) {
  // labels      0 0 0 1 1 2     confusion  [2 1 0]   recall 2/3 1/2 1     F1 4/5 1/2 2/3
  // predictions 0 0 1 1 2 2                [0 1 1]   balanced (2/3+1/2+1)/3 = 13/18
  //                                        [0 0 1]   weighted F1 (3*4/5 + 2*1/2 + 1*2/3)/6 = 61/90
  auto labels = torch::tensor({0, 0, 0, 1, 1, 2}, torch::kLong);
  auto preds = torch::tensor({0, 0, 1, 1, 2, 2}, torch::kLong);
  auto m = eval::classification_metrics(preds, labels, 3);
  EXPECT_EQ(m.samples, 6);
  EXPECT_NEAR(m.top1, 4.0 / 6, 1e-12);
  EXPECT_NEAR(m.balanced_accuracy, 13.0 / 18, 1e-12);
  EXPECT_NEAR(m.weighted_f1, 61.0 / 90, 1e-12);
  std::vector<std::vector<int64_t>> confusion = {{2, 1, 0}, {0, 1, 1}, {0, 0, 1}};
  EXPECT_EQ(m.confusion, confusion);

  // A fourth class that no sample has and nothing predicts: not part of balanced accuracy, zero weight in F1.
  auto m4 = eval::classification_metrics(preds, labels, 4);
  EXPECT_NEAR(m4.balanced_accuracy, 13.0 / 18, 1e-12);
  EXPECT_NEAR(m4.weighted_f1, 61.0 / 90, 1e-12);
  // Predicting an absent class costs precision of nobody but recall of the true class.
  auto m5 = eval::classification_metrics(torch::tensor({3, 0, 1, 1, 2, 2}, torch::kLong), labels, 4);
  EXPECT_NEAR(m5.top1, 3.0 / 6, 1e-12);
  EXPECT_NEAR(m5.balanced_accuracy, (1.0 / 3 + 1.0 / 2 + 1) / 3, 1e-12);

  EXPECT_EQ(m4.kappa, m.kappa);  // the absent class changes neither kappa
  EXPECT_EQ(m4.weighted_kappa, m.weighted_kappa);

  EXPECT_NE(error_of([&] { eval::classification_metrics(torch::tensor({0, 5}, torch::kLong),
                                                         torch::tensor({0, 1}, torch::kLong), 3); })
                .find("outside [0, 3)"),
            std::string::npos);
}

// Cohen's kappa as sklearn's cohen_kappa_score: over the classes that occur, so class 1 (in neither) does not count
// in the quadratic distances: 0, 2 and 3 sit at positions 0, 1, 2.
//   labels      0 0 2 2 2 3    observed [1 1 0]  rows 2 3 1   expected = rows x columns / 6
//   predictions 0 2 2 2 3 3             [0 2 1]  cols 1 3 2   off-diagonal: observed 2, expected 23/6 -> 1 - 12/23
//                                       [0 0 1]               quadratic: observed 2, expected 19/3 -> 1 - 6/19
TEST(Eval, CohenKappaOverTheClassesThatOccur) {
  const auto m = eval::classification_metrics(torch::tensor({0, 2, 2, 2, 3, 3}, torch::kLong),
                                              torch::tensor({0, 0, 2, 2, 2, 3}, torch::kLong), 4);
  EXPECT_NEAR(m.kappa, 11.0 / 23, 1e-12);
  EXPECT_NEAR(m.weighted_kappa, 13.0 / 19, 1e-12);
  const auto perfect = eval::classification_metrics(torch::tensor({0, 1, 2}), torch::tensor({0, 1, 2}), 3);
  EXPECT_EQ(perfect.kappa, 1.0);
  EXPECT_EQ(perfect.weighted_kappa, 1.0);
  // One class everywhere: chance agreement is total, kappa undefined (sklearn: nan); reported as 0.
  const auto one = eval::classification_metrics(torch::tensor({1, 1}), torch::tensor({1, 1}), 3);
  EXPECT_EQ(one.kappa, 0.0);
  EXPECT_EQ(one.weighted_kappa, 0.0);
}

// ROC AUC as sklearn's roc_auc_score (its values for these: 0.75 and 0.75). Three classes, one-vs-one:
//   labels 0 1 2 0   pair (0,1): class 0's AUC 2/2, class 1's 1/2 (0.4 below 0.45)      -> 0.75
//                    pair (0,2): class 0's AUC 1/2 (0.25 below 0.3), class 2's 2/2      -> 0.75
//                    pair (1,2): class 1's AUC 1, class 2's 1/2 (0.4 ties 0.4)          -> 0.75
TEST(Eval, RocAucOneVsOneAsSklearn) {
  const auto labels = torch::tensor({0, 1, 2, 0}, torch::kLong);
  const auto p = torch::tensor({{0.6, 0.3, 0.1}, {0.2, 0.4, 0.4}, {0.3, 0.3, 0.4}, {0.25, 0.45, 0.3}});
  EXPECT_NEAR(eval::roc_auc_ovo(p, labels).value(), 0.75, 1e-12);
  const auto binary = torch::stack({1 - torch::tensor({0.1, 0.4, 0.35, 0.8}), torch::tensor({0.1, 0.4, 0.35, 0.8})}, 1);
  EXPECT_NEAR(eval::roc_auc_ovo(binary, torch::tensor({0, 0, 1, 1}, torch::kLong)).value(), 0.75, 1e-12);
  EXPECT_FALSE(eval::roc_auc_ovo(p, torch::tensor({0, 1, 1, 0}, torch::kLong)).has_value());  // class 2 has none
  // From logits: the argmax predicts (0 0 0 1: three right), the softmax gives the AUC.
  const auto m = eval::metrics_from_logits(binary.log() + 2.0, torch::tensor({0, 0, 1, 1}, torch::kLong));
  EXPECT_NEAR(m.roc_auc.value(), 0.75, 1e-12);
  EXPECT_NEAR(m.top1, 0.75, 1e-12);
  const auto values = eval::metric_values(m, "zs/");
  EXPECT_EQ(values.back(), (std::pair<std::string, double>{"zs/roc_auc", m.roc_auc.value()}));
}

TEST(Eval, RetrievalMetricsByHand) {
  // Images are e_i; text j's column j of the similarity matrix is written directly (an extra dimension
  // pads every text to unit norm). Diagonal 0.2; row i has its first r_i off-diagonal entries at 0.25,
  // so image i's match ranks r_i = [0 0 1 2 4 5] (0-based). Column counts give text->image ranks [4 3 2 2 1 0].
  const int n = 6;
  const int r[n] = {0, 0, 1, 2, 4, 5};
  auto sim = torch::zeros({n, n}, torch::kDouble);
  for (int i = 0; i < n; ++i) {
    sim[i][i] = 0.2;
    for (int j = 0, taken = 0; j < n && taken < r[i]; ++j)
      if (j != i) sim[i][j] = 0.25, ++taken;
  }
  auto image = torch::cat({torch::eye(n, torch::kDouble), torch::zeros({n, 1}, torch::kDouble)}, 1);
  auto cols = sim.t();  // row j = text j's first n coordinates
  auto pad = (1 - cols.pow(2).sum(1, true)).sqrt();
  auto text = torch::cat({cols, pad}, 1);

  auto m = eval::retrieval_metrics(image, text);
  EXPECT_EQ(m.pairs, n);
  EXPECT_NEAR(m.image_to_text.r1, 2.0 / 6, 1e-12);
  EXPECT_NEAR(m.image_to_text.r5, 5.0 / 6, 1e-12);
  EXPECT_NEAR(m.image_to_text.r10, 1.0, 1e-12);
  EXPECT_EQ(m.image_to_text.median_rank, 2.0);  // floor(median(0 0 1 2 4 5) = 1.5) + 1
  EXPECT_NEAR(m.image_to_text.mean_rank, 3.0, 1e-12);
  EXPECT_NEAR(m.text_to_image.r1, 1.0 / 6, 1e-12);
  EXPECT_NEAR(m.text_to_image.r5, 1.0, 1e-12);
  EXPECT_EQ(m.text_to_image.median_rank, 3.0);  // median(0 1 2 2 3 4) = 2
  EXPECT_NEAR(m.text_to_image.mean_rank, 3.0, 1e-12);
  // Scale does not matter (cosine).
  auto scaled = eval::retrieval_metrics(image * 3, text * 0.5);
  EXPECT_EQ(scaled.image_to_text.r1, m.image_to_text.r1);
}

TEST(Eval, ZeroShotSpecPromptsAndClassifier) {
  auto path = write_temp("zs.yaml",
                         "templates: [\"an image of {}.\", \"{} tissue\"]\n"
                         "classes:\n"
                         "  - name: tumor\n"
                         "    synonyms: [tumor, carcinoma]\n"
                         "  - stroma\n"
                         "  - fat\n");
  auto spec = eval::load_zeroshot_spec(path);
  ASSERT_EQ(spec.classes.size(), 3u);
  EXPECT_EQ(spec.class_names(), (std::vector<std::string>{"tumor", "stroma", "fat"}));
  EXPECT_EQ(spec.prompts(0), (std::vector<std::string>{"an image of tumor.", "tumor tissue", "an image of carcinoma.",
                                                       "carcinoma tissue"}));
  EXPECT_EQ(spec.prompts(1), (std::vector<std::string>{"an image of stroma.", "stroma tissue"}));

  // An embedder that puts each class word on its own axis, templates adding a small template-specific
  // offset and a scale: the classifier is the renormalised mean of the normalised prompt embeddings.
  auto embed = [](const std::vector<std::string>& texts) {
    auto out = torch::zeros({static_cast<int64_t>(texts.size()), 4});
    for (size_t i = 0; i < texts.size(); ++i) {
      const auto& t = texts[i];
      int axis = t.find("tumor") != std::string::npos || t.find("carcinoma") != std::string::npos ? 0
                 : t.find("stroma") != std::string::npos                                          ? 1
                                                                                                  : 2;
      out[i][axis] = t.find("image") != std::string::npos ? 5.0 : 1.0;
      out[i][3] = t.find("image") != std::string::npos ? 5.0 : 0.0;  // after normalising: (1,1)/sqrt2 or (1,0)
    }
    return out;
  };
  auto w = eval::zeroshot_classifier(spec, embed);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{3, 4}));
  // Class 0: mean of (1/sqrt2, 0,0, 1/sqrt2) and (1,0,0,0) = (0.8536, 0, 0, 0.3536), renormalised.
  double a = (1 / std::sqrt(2.0) + 1) / 2, b = 1 / std::sqrt(2.0) / 2, n0 = std::sqrt(a * a + b * b);
  EXPECT_NEAR(w[0][0].item<double>(), a / n0, 1e-6);
  EXPECT_NEAR(w[0][3].item<double>(), b / n0, 1e-6);
  EXPECT_NEAR(w.norm(2, 1).sub(1).abs().max().item<double>(), 0.0, 1e-6);

  auto images = torch::tensor({{0.0, 2.0, 0.0, 0.0}, {0.0, 0.0, 0.5, 0.1}, {3.0, 0.0, 0.0, 1.0}});
  auto logits = eval::zeroshot_logits(images, w);
  EXPECT_TRUE(torch::equal(logits.argmax(1), torch::tensor({1, 2, 0}, torch::kLong)));
  // 100 x cosine: image 0 is (0,1,0,0), so its logit for class 1 = 100 x w[1][1].
  EXPECT_NEAR(logits[0][1].item<double>(), 100 * w[1][1].item<double>(), 1e-4);
}

// CONCH's prompt files as they are: the first prompt set, classes in the file's order (not sorted), CLASSNAME as the
// class name's place; the same checks as the YAML form.
TEST(Eval, ZeroShotSpecReadsConchPromptFiles) {
  auto path = write_temp("prompts.json", R"({
    "0": {
        "classnames": {
            "TUM": ["tumor", "adenocarcinoma"],
            "ADI": ["adipose tissue"],
            "STR": "stroma"
        },
        "templates": ["CLASSNAME.", "an H&E image of CLASSNAME."]
    },
    "1": {"classnames": {"X": ["x"], "Y": ["y"]}, "templates": ["CLASSNAME"]}
})");
  auto spec = eval::load_zeroshot_spec(path);
  EXPECT_EQ(spec.class_names(), (std::vector<std::string>{"TUM", "ADI", "STR"}));
  EXPECT_EQ(spec.prompts(0), (std::vector<std::string>{"tumor.", "an H&E image of tumor.", "adenocarcinoma.",
                                                       "an H&E image of adenocarcinoma."}));
  EXPECT_EQ(spec.prompts(2), (std::vector<std::string>{"stroma.", "an H&E image of stroma."}));

  auto no_name = write_temp("p1.json", R"({"classnames": {"A": ["a"], "B": ["b"]}, "templates": ["an image of"]})");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(no_name); }).find("must hold CLASSNAME once"), std::string::npos);
  auto one = write_temp("p2.json", R"({"0": {"classnames": {"A": ["a"]}, "templates": ["CLASSNAME"]}})");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(one); }).find("at least two classes"), std::string::npos);
  auto extra = write_temp("p3.json", R"({"classnames": {"A": "a", "B": "b"}, "templates": ["CLASSNAME"], "x": 1})");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(extra); }).find("unknown key 'x'"), std::string::npos);
  auto empty = write_temp("p4.json", R"({"classnames": {"A": [], "B": "b"}, "templates": ["CLASSNAME"]})");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(empty); }).find("class 'A' must be a non-empty list"),
            std::string::npos);
}

TEST(Eval, ZeroShotSpecErrorsNameTheProblem) {
  EXPECT_NE(error_of([] { eval::load_zeroshot_spec("/nonexistent/zs.yaml"); }).find("cannot open"),
            std::string::npos);
  auto no_braces = write_temp("a.yaml", "templates: [\"an image of\"]\nclasses: [a, b]\n");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(no_braces); }).find("has no '{}'"), std::string::npos);
  auto twice = write_temp("b.yaml", "templates: [\"{}\"]\nclasses: [a, b, a]\n");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(twice); }).find("listed twice"), std::string::npos);
  auto unknown = write_temp("c.yaml", "templates: [\"{}\"]\nclasses: [a, b]\nclass_names: [x]\n");
  auto msg = error_of([&] { eval::load_zeroshot_spec(unknown); });
  EXPECT_NE(msg.find("unknown key 'class_names'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("c.yaml:3"), std::string::npos) << msg;
  auto one = write_temp("d.yaml", "templates: [\"{}\"]\nclasses: [a]\n");
  EXPECT_NE(error_of([&] { eval::load_zeroshot_spec(one); }).find("at least two"), std::string::npos);
}

// MI-Zero's pooling by hand: each class ranks the tiles on its own; a j beyond the tiles takes them all.
TEST(Eval, TopjPoolingMeansEachClassesBestInstances) {
  const auto scores = torch::tensor({{0.9, 0.1}, {0.2, 0.8}, {0.4, 0.7}, {0.3, 0.0}});
  EXPECT_TRUE(torch::allclose(eval::topj_pooled(scores, 1), torch::tensor({0.9, 0.8})));
  EXPECT_TRUE(torch::allclose(eval::topj_pooled(scores, 2), torch::tensor({0.65, 0.75})));
  EXPECT_TRUE(torch::allclose(eval::topj_pooled(scores, 100), torch::tensor({0.45, 0.4})));
  EXPECT_NE(error_of([&] { eval::topj_pooled(scores, 0); }).find("j >= 1"), std::string::npos);
  EXPECT_NE(error_of([&] { eval::topj_pooled(torch::empty({0, 2}), 1); }).find("instances >= 1"), std::string::npos);
}

TEST(Eval, GatherRowsOnOneProcessIsIdentity) {
  auto x = torch::randn({3, 2});
  EXPECT_TRUE(torch::equal(dist::gather_rows(x, nullptr), x));
}
