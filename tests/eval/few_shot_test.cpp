// Few-shot prompting and its kNN baseline: support.json parsing and its errors; the choice of examples
// (deterministic in seed and query index, balanced over classes, never the query itself); the prompt's turns and
// image order, tokenized by LLaMA-2's tokenizer under vicuna_v1 and pathasst; class names found in answers; kNN
// on hand-made 2-D points (cosine, not Euclidean; tie-breaking); the report lines and metric names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "eval/few_shot.h"
#include "eval/knn.h"
#include "eval/support_set.h"
#include "test_util.h"
#include "text/sentencepiece_tokenizer.h"
#include "text/special_ids.h"

using namespace pathvlm;
using namespace pathvlm::eval;
using pathvlm::testing::error_of;
namespace fs = std::filesystem;

namespace {

const std::string kLlamaModel = std::string(PATHVLM_SHARED_DATA) + "/tokenizers/llama2_tokenizer.model";

struct SupportFiles : ::testing::Test {
  fs::path root = fs::temp_directory_path() / ("pathvlm_few_shot_" + std::to_string(::getpid()));
  void SetUp() override { fs::create_directories(root / "set"); }
  void TearDown() override { fs::remove_all(root); }
  std::string write(const std::string& text) const {
    const std::string path = (root / "set" / "support.json").string();
    std::ofstream(path) << text;
    return path;
  }
};

const char* kValidSupport = R"({"shards": "shards/support", "classes": [
  {"label": 0, "class": "adipose", "name": "adipose tissue", "tiles": ["a0", "a1"]},
  {"label": 3, "class": "stroma", "name": "Stroma", "tiles": ["s0"]}]})";

// C classes named c0.. with `per_class` tiles each ("c<class>_<n>"), labels 10 + class.
SupportSet support_of(const std::vector<int64_t>& per_class) {
  SupportSet s;
  s.source = "mem/support.json";
  s.shards = "mem/shards";
  for (size_t c = 0; c < per_class.size(); ++c) {
    SupportClass sc{static_cast<int64_t>(10 + c), str("c", c), str("class ", char('a' + c)), {}};
    for (int64_t n = 0; n < per_class[c]; ++n) sc.tiles.push_back(str("c", c, "_", n));
    s.classes.push_back(sc);
  }
  return s;
}

std::map<int64_t, int64_t> examples_per_class(const std::vector<FewShotExample>& examples) {
  std::map<int64_t, int64_t> n;
  for (const auto& e : examples) ++n[e.class_index];
  return n;
}

std::vector<std::string> tiles_of(const std::vector<FewShotExample>& examples) {
  std::vector<std::string> tiles;
  for (const auto& e : examples) tiles.push_back(e.tile);
  return tiles;
}

}  // namespace

TEST_F(SupportFiles, ReadsClassesAndResolvesShardsAgainstTheFilesFolder) {
  const SupportSet s = read_support_set(write(kValidSupport));
  EXPECT_EQ(s.shards, (root / "set" / "shards" / "support").string());
  ASSERT_EQ(s.classes.size(), 2u);
  EXPECT_EQ(s.classes[1].label, 3);
  EXPECT_EQ(s.classes[1].key, "stroma");
  EXPECT_EQ(s.classes[0].tiles, (std::vector<std::string>{"a0", "a1"}));
  EXPECT_EQ(s.class_names(), (std::vector<std::string>{"adipose tissue", "Stroma"}));
  EXPECT_EQ(s.class_of_label(3), 1);
  EXPECT_EQ(s.size(), 3);
  EXPECT_NE(error_of([&] { s.class_of_label(1); }).find("has no class with label 1"), std::string::npos);

  const SupportSet absolute =
      read_support_set(write(R"({"shards": "/data/shards/", "classes": [{"label": 0, "class": "a", "name": "a b",
                                 "tiles": ["t"]}]})"));
  EXPECT_EQ(absolute.shards, "/data/shards/");
}

TEST_F(SupportFiles, ErrorsNameTheFileAndTheProblem) {
  const auto error_for = [&](const std::string& text) { return error_of([&] { read_support_set(write(text)); }); };
  const std::string file = "support set '" + (root / "set" / "support.json").string() + "'";
  const auto expect_error = [&](const std::string& text, const std::string& problem) {
    const std::string msg = error_for(text);
    EXPECT_NE(msg.find(file), std::string::npos) << msg;
    EXPECT_NE(msg.find(problem), std::string::npos) << msg;
  };
  expect_error("{\"shards\": ", "is not JSON");
  expect_error("[]", "is not a JSON object");
  expect_error(R"({"classes": []})", "has no 'shards'");
  expect_error(R"({"shards": "s"})", "has no 'classes'");
  expect_error(R"({"shards": "s", "classes": []})", "'classes' must be a non-empty list");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "name": "alpha", "tiles": []}]})",
               "class 0 has no tiles");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "tiles": ["t"]}]})", "class 0 has no 'name'");
  expect_error(R"({"shards": "s", "classes": [{"label": "0", "class": "a", "name": "alpha", "tiles": ["t"]}]})",
               "class 0: 'label' must be an integer");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "name": "alpha", "tiles": ["t", 7]}]})",
               "class 0: 'tiles' holds something that is not a tile id: 7");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "name": "alpha", "tiles": ["t"]},
                                              {"label": 0, "class": "b", "name": "beta", "tiles": ["u"]}]})",
               "class 1 ('b') repeats label 0 of class 'a'");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "name": "alpha", "tiles": ["t", "u"]},
                                              {"label": 1, "class": "b", "name": "beta", "tiles": ["u"]}]})",
               "class 1 ('b') repeats tile 'u' (already in class 'a')");
  expect_error(R"({"shards": "s", "classes": [{"label": 0, "class": "a", "name": "Tumor.", "tiles": ["t"]},
                                              {"label": 1, "class": "b", "name": "the tumor", "tiles": ["u"]}]})",
               "class 1 ('b'): names 'the tumor' and 'Tumor.' (class 'a') are both 'tumor' once normalized");
  const std::string missing = (root / "none.json").string();
  EXPECT_NE(error_of([&] { read_support_set(missing); }).find("cannot read support set '" + missing + "'"),
            std::string::npos);
}

TEST(FewShotChoice, IsAPureFunctionOfSeedAndQueryIndex) {
  const SupportSet s = support_of({4, 4, 4});
  const auto a = tiles_of(choose_examples(s, 3, "q", 7, 5));
  EXPECT_EQ(a, tiles_of(choose_examples(s, 3, "q", 7, 5)));
  std::set<std::vector<std::string>> over_queries, over_seeds;
  for (int64_t i = 0; i < 8; ++i) over_queries.insert(tiles_of(choose_examples(s, 3, "q", 7, i)));
  for (uint64_t seed = 0; seed < 8; ++seed) over_seeds.insert(tiles_of(choose_examples(s, 3, "q", seed, 5)));
  EXPECT_GT(over_queries.size(), 4u);
  EXPECT_GT(over_seeds.size(), 4u);
}

TEST(FewShotChoice, BalancedOverClassesAndDistinctTiles) {
  const SupportSet s = support_of({4, 4, 4});
  std::set<int64_t> single_classes;
  for (int64_t q = 0; q < 20; ++q) {
    EXPECT_EQ(examples_per_class(choose_examples(s, 6, "q", 1, q)),
              (std::map<int64_t, int64_t>{{0, 2}, {1, 2}, {2, 2}}));
    std::vector<int64_t> counts;
    for (const auto& [c, n] : examples_per_class(choose_examples(s, 7, "q", 1, q))) counts.push_back(n);
    std::sort(counts.begin(), counts.end());
    EXPECT_EQ(counts, (std::vector<int64_t>{2, 2, 3})) << "query " << q;
    const auto two = choose_examples(s, 2, "q", 1, q);
    EXPECT_NE(two[0].class_index, two[1].class_index) << "k < C shows distinct classes";
    single_classes.insert(choose_examples(s, 1, "q", 1, q)[0].class_index);
    const auto all = tiles_of(choose_examples(s, 12, "q", 1, q));
    EXPECT_EQ(std::set<std::string>(all.begin(), all.end()).size(), 12u);
  }
  EXPECT_EQ(single_classes.size(), 3u) << "the classes of k < C are a seeded choice";
  for (const auto& e : choose_examples(s, 12, "q", 1, 0))
    EXPECT_EQ(e.tile.substr(0, 3), str("c", e.class_index, "_")) << "each example carries its own class";

  // A class that runs out is skipped; the others fill the prompt.
  EXPECT_EQ(examples_per_class(choose_examples(support_of({1, 3}), 4, "q", 1, 0)),
            (std::map<int64_t, int64_t>{{0, 1}, {1, 3}}));
  EXPECT_TRUE(choose_examples(s, 0, "q", 1, 0).empty());
}

TEST(FewShotChoice, NeverShowsTheQueryItself) {
  const SupportSet s = support_of({2, 2});
  for (int64_t q = 0; q < 10; ++q) {
    const auto tiles = tiles_of(choose_examples(s, 3, "c1_0", 3, q));
    EXPECT_EQ(std::set<std::string>(tiles.begin(), tiles.end()), (std::set<std::string>{"c0_0", "c0_1", "c1_1"}));
  }
  const std::string msg = error_of([&] { choose_examples(s, 4, "c1_0", 3, 0); });
  EXPECT_NE(msg.find("k=4 examples for query 'c1_0' but support set 'mem/support.json' has only 3 other tiles"),
            std::string::npos)
      << msg;
  EXPECT_EQ(choose_examples(s, 4, "elsewhere", 3, 0).size(), 4u);
  EXPECT_NE(error_of([&] { choose_examples(s, -1, "q", 3, 0); }).find("k must be >= 0"), std::string::npos);
}

TEST(FewShotPrompt, TurnsAndImagesInPlaceholderOrder) {
  const SupportSet s = support_of({3, 3});
  const std::string question = "What tissue is shown in this image?";
  const FewShotPrompt p = few_shot_prompt(s, 3, "query-tile", question, 11, 2);
  EXPECT_EQ(tiles_of(p.examples), tiles_of(choose_examples(s, 3, "query-tile", 11, 2)));
  ASSERT_EQ(p.conversation.turns.size(), 7u);
  ASSERT_EQ(p.image_ids.size(), 4u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(p.conversation.turns[2 * i].from, text::Speaker::human);
    EXPECT_EQ(p.conversation.turns[2 * i].value, "<image>\n" + question);
    EXPECT_EQ(p.conversation.turns[2 * i + 1].from, text::Speaker::gpt);
    // The n-th placeholder is the n-th image: the tile of the exchange whose reply names its class.
    EXPECT_EQ(p.image_ids[i], p.examples[i].tile);
    EXPECT_EQ(p.conversation.turns[2 * i + 1].value, s.classes[static_cast<size_t>(p.examples[i].class_index)].name);
  }
  EXPECT_EQ(p.conversation.turns.back().value, "<image>\n" + question);
  EXPECT_EQ(p.image_ids.back(), "query-tile");
  EXPECT_EQ(text::count_image_placeholders(p.conversation), 4);

  const FewShotPrompt zero = few_shot_prompt(s, 0, "query-tile", question, 11, 2);
  ASSERT_EQ(zero.conversation.turns.size(), 1u);
  EXPECT_EQ(zero.conversation.turns[0].value, "<image>\n" + question);
  EXPECT_EQ(zero.image_ids, (std::vector<std::string>{"query-tile"}));
}

TEST(FewShotPrompt, GenerationPromptHasOneImageSentinelPerImage) {
  if (!fs::exists(kLlamaModel)) GTEST_SKIP() << "shared test data missing: " << kLlamaModel;
  const text::SentencePieceTokenizer llama(kLlamaModel);
  SupportSet s = support_of({2, 2});
  s.classes[0].name = "adipose tissue";
  s.classes[1].name = "stroma";
  const std::string q = "What tissue is shown in this image?";
  for (const std::string name : {"vicuna_v1", "pathasst"}) {
    const auto tmpl = text::ConversationTemplate::named(name);
    for (int64_t k : {0, 1, 3}) {
      const FewShotPrompt p = few_shot_prompt(s, k, "query", q, 5, k);
      const text::SupervisedSequence seq = tmpl.generation_prompt(p.conversation, llama);
      EXPECT_EQ(std::count(seq.input_ids.begin(), seq.input_ids.end(), text::kImageToken), k + 1) << name << " k=" << k;
      EXPECT_EQ(seq.supervised_tokens(), 0) << name;
    }
    // The whole prompt string for k = 1: the example's exchange, then the query's question and the assistant header.
    const FewShotPrompt one = few_shot_prompt(s, 1, "query", q, 5, 0);
    const std::string a = s.classes[static_cast<size_t>(one.examples[0].class_index)].name;
    const std::string expected =
        name == "vicuna_v1"
            ? "<s>" + tmpl.system() + " USER: <image>\n" + q + " ASSISTANT: " + a + "</s>USER: <image>\n" + q +
                  " ASSISTANT:"
            : "<s>" + tmpl.system() + "\n\n### User: <image>\n" + q + "\n### Assistant: " + a +
                  "\n### User: <image>\n" + q + "\n### Assistant:";
    EXPECT_EQ(text::join_pieces(tmpl.generation_pieces(one.conversation, llama), llama), expected);
  }
}

TEST(FewShotAnswers, PredictedClassIsTheEarliestNamedClass) {
  const std::vector<std::string> names = {"tumor", "tumor stroma", "Adipose tissue", "lymphocytes"};
  EXPECT_EQ(predicted_class("Adipose tissue.", names), 2);
  EXPECT_EQ(predicted_class("This image shows ADIPOSE TISSUE, with large vacuoles", names), 2);
  EXPECT_EQ(predicted_class("tumors", names), 0) << "a name may start a longer word";
  EXPECT_EQ(predicted_class("nontumor tissue", names), -1) << "but not end one";
  EXPECT_EQ(predicted_class("The tumor stroma here.", names), 1) << "longest name at the same place";
  EXPECT_EQ(predicted_class("lymphocytes around a tumor", names), 3) << "the earliest named class";
  EXPECT_EQ(predicted_class("a tumor, not adipose tissue", names), 0);
  EXPECT_EQ(predicted_class("fat", names), -1);
  EXPECT_EQ(predicted_class("", names), -1);
  EXPECT_EQ(predicted_class("adipose-tissue", names), 2) << "normalized like VQA answers";
  EXPECT_NE(error_of([&] { predicted_class("x", {"tumor", "the"}); }).find("class name 'the' is empty once normalized"),
            std::string::npos);
}

TEST(FewShotAnswers, AccuracyCountsAnswersNamingNoClassAsWrong) {
  const std::vector<std::string> names = {"stroma", "mucus"};
  const AnswerScores s = score_class_answers({"Stroma.", "mucus", "I am not sure", "stroma"}, {0, 0, 1, 0}, names);
  EXPECT_EQ(s.answers, 4);
  EXPECT_EQ(s.correct, 2);
  EXPECT_EQ(s.no_class, 1);
  EXPECT_DOUBLE_EQ(s.accuracy, 0.5);
  EXPECT_DOUBLE_EQ(score_class_answers({}, {}, names).accuracy, 0.0);
  EXPECT_NE(error_of([&] { score_class_answers({"a"}, {}, names); }).find("1 answers for 0 expected"),
            std::string::npos);
  EXPECT_NE(error_of([&] { score_class_answers({"a"}, {2}, names); }).find("expected class 2 of answer 0"),
            std::string::npos);
}

TEST(Knn, HandMadePointsWithVotesAndTieBreaks) {
  // Labels 0 near the x axis, 1 near the y axis, 2 on the diagonal.
  const auto support = torch::tensor({{1.0f, 0.0f}, {2.0f, 0.2f}, {0.0f, 1.0f}, {0.1f, 3.0f}, {1.0f, 1.0f}});
  const auto labels = torch::tensor({0, 0, 1, 1, 2}, torch::kInt64);
  const auto queries = torch::tensor({{5.0f, 0.1f}, {0.2f, 1.0f}, {1.0f, 0.9f}});
  EXPECT_TRUE(torch::equal(knn_predict(support, labels, queries, 1), torch::tensor({0, 1, 2}, torch::kInt64)));
  // k = 3 for query (1, 0.9): the diagonal point, then (2, 0.2) [cos 0.81] and (1, 0) [cos 0.74] outvote it.
  EXPECT_TRUE(torch::equal(knn_predict(support, labels, queries, 3), torch::tensor({0, 1, 0}, torch::kInt64)));
  // k = 2 for (1, 0.9): one vote each for 2 (cos 0.999) and 0 (cos 0.81); the larger summed similarity wins.
  EXPECT_EQ(knn_predict(support, labels, queries, 2)[2].item<int64_t>(), 2);

  // Equal votes and equal summed similarity: the smaller label. (1, 0) is as close to (1, 1) as to (1, -1).
  const auto mirrored = torch::tensor({{1.0f, 1.0f}, {1.0f, -1.0f}});
  const auto query = torch::tensor({{1.0f, 0.0f}});
  EXPECT_EQ(knn_predict(mirrored, torch::tensor({7, 4}, torch::kInt64), query, 2).item<int64_t>(), 4);
  EXPECT_EQ(knn_predict(mirrored, torch::tensor({4, 7}, torch::kInt64), query, 2).item<int64_t>(), 4);
  // Equal similarity at the k-th place: the smaller index is nearer.
  EXPECT_EQ(knn_predict(mirrored, torch::tensor({7, 4}, torch::kInt64), query, 1).item<int64_t>(), 7);
}

TEST(Knn, SimilarityIsCosineNotEuclidean) {
  // Query (1, 0.2): Euclidean-nearest is (1, 1) (distance 0.8, label 1); cosine-nearest is (10, 0) (label 0).
  const auto support = torch::tensor({{10.0f, 0.0f}, {1.0f, 1.0f}});
  const auto labels = torch::tensor({0, 1}, torch::kInt64);
  const auto query = torch::tensor({{1.0f, 0.2f}});
  EXPECT_EQ(torch::cdist(query, support).argmin(1).item<int64_t>(), 1);
  EXPECT_EQ(knn_predict(support, labels, query, 1).item<int64_t>(), 0);
}

TEST(Knn, HalfPrecisionInputsAndErrors) {
  const auto support = torch::tensor({{1.0f, 0.0f}, {0.0f, 1.0f}, {0.7f, 0.8f}});
  const auto labels = torch::tensor({3, 5, 5}, torch::kInt32);
  const auto queries = torch::tensor({{0.9f, 0.1f}, {0.1f, 0.9f}});
  for (auto dtype : {torch::kFloat16, torch::kBFloat16}) {
    const auto predicted = knn_predict(support.to(dtype), labels, queries.to(dtype), 1);
    EXPECT_EQ(predicted.scalar_type(), torch::kInt64);
    EXPECT_TRUE(torch::equal(predicted, torch::tensor({3, 5}, torch::kInt64)));
  }
  EXPECT_DOUBLE_EQ(knn_accuracy(torch::tensor({3, 5, 5, 3}), torch::tensor({3, 5, 3, 3})), 0.75);
  EXPECT_DOUBLE_EQ(knn_accuracy(torch::empty({0}, torch::kInt64), torch::empty({0}, torch::kInt64)), 0.0);
  EXPECT_NE(error_of([&] { knn_predict(support, labels, queries, 4); }).find("k must be in [1, 3]"), std::string::npos);
  EXPECT_NE(error_of([&] { knn_predict(support, labels, queries, 0); }).find("k must be in [1, 3]"), std::string::npos);
  EXPECT_NE(error_of([&] { knn_predict(support, labels.slice(0, 0, 2), queries, 1); }).find("3 support embeddings"),
            std::string::npos);
  EXPECT_NE(error_of([&] { knn_predict(support, labels.to(torch::kFloat32), queries, 1); })
                .find("support labels must be integers"),
            std::string::npos);
  EXPECT_NE(error_of([&] { knn_predict(support, labels, torch::ones({2, 3}), 1); }).find("[S, D] and [Q, D]"),
            std::string::npos);
}

TEST(FewShotReport, OneLinePerMethodAndNamedMetrics) {
  AnswerScores two;
  two.answers = 40, two.correct = 25, two.no_class = 3, two.accuracy = 0.625;
  AnswerScores zero;
  zero.answers = 40, zero.correct = 20, zero.accuracy = 0.5;
  const std::vector<FewShotResult> results = {{0, zero, std::nullopt}, {2, two, 0.75}};
  EXPECT_EQ(format_few_shot_report(results),
            "zero-shot (k=0): accuracy 0.500 (40 queries, 0 naming no class)\n"
            "few-shot k=2: accuracy 0.625 (40 queries, 3 naming no class)  |  kNN k=2 on image embeddings: accuracy "
            "0.750\n");
  const auto values = few_shot_metric_values(results, "eval/");
  const std::vector<std::pair<std::string, double>> expected = {{"eval/fewshot_k0_accuracy", 0.5},
                                                                {"eval/fewshot_k0_no_class", 0.0},
                                                                {"eval/fewshot_k2_accuracy", 0.625},
                                                                {"eval/fewshot_k2_no_class", 0.075},
                                                                {"eval/knn_k2_accuracy", 0.75}};
  EXPECT_EQ(values, expected);
  EXPECT_NE(error_of([] { format_few_shot_report({{0, AnswerScores{}, 0.5}}); }).find("kNN baseline needs k >= 1"),
            std::string::npos);
}
