// PathVQA-style scoring on hand-written predictions. The expected normalizations and closed verdicts were
// worked out with the reference scripts' normalize_word and rules (LLaVA-Med run_eval.py at b9a98a7,
// Quilt-LLaVA quilt_eval.py).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>

#include "eval/text_overlap.h"
#include "eval/vqa.h"
#include "test_util.h"

using namespace pathvlm::eval;
namespace fs = std::filesystem;

TEST(VqaNormalize, PunctuationCaseArticlesNumbers) {
  EXPECT_EQ(normalize_answer("No, it is not"), "no it is not");
  EXPECT_EQ(normalize_answer("yes."), "yes");
  EXPECT_EQ(normalize_answer(""), "");
  EXPECT_EQ(normalize_answer("Yes, the tissue is NORMAL."), "yes tissue is normal");
  EXPECT_EQ(normalize_answer("Tumor (adenocarcinoma)-like; cells!"), "tumor adenocarcinoma like cells");
  EXPECT_EQ(normalize_answer("1,000 cells, two nuclei."), "1000 cells 2 nuclei");
  EXPECT_EQ(normalize_answer("The answer: A fat cell."), "answer: fat cell");  // ':' is not in the list
  EXPECT_EQ(normalize_answer("3.5 mm"), "3.5 mm");                             // a period before a digit stays
  EXPECT_EQ(answer_words("  An  adipose   tissue "), (std::vector<std::string>{"adipose", "tissue"}));
}

TEST(VqaQuestionType, DeclaredOrDecidedByTheAnswer) {
  EXPECT_EQ(vqa_question_type("Yes."), VqaQuestionType::Closed);
  EXPECT_EQ(vqa_question_type("no"), VqaQuestionType::Closed);
  EXPECT_EQ(vqa_question_type("stroma"), VqaQuestionType::Open);
  EXPECT_EQ(vqa_question_type("stroma", "CLOSED"), VqaQuestionType::Closed);
  EXPECT_EQ(vqa_question_type("yes", "other"), VqaQuestionType::Open);
  EXPECT_NE(pathvlm::testing::error_of([] { vqa_question_type("yes", "multiple"); }).find("multiple"),
            std::string::npos);
}

TEST(VqaClosed, LlavaMedRuleIsASubstringTest) {
  EXPECT_TRUE(closed_correct_llava_med("No, it is not", "no"));
  EXPECT_FALSE(closed_correct_llava_med("No, it is not", "yes"));
  EXPECT_TRUE(closed_correct_llava_med("yes.", "Yes"));
  EXPECT_FALSE(closed_correct_llava_med("", "yes"));
  EXPECT_FALSE(closed_correct_llava_med("", "no"));
  // Both words present: both ground truths count as correct.
  EXPECT_TRUE(closed_correct_llava_med("Yes, the tissue is NORMAL.", "yes"));
  EXPECT_TRUE(closed_correct_llava_med("Yes, the tissue is NORMAL.", "no"));  // "no" inside "normal"
  EXPECT_TRUE(closed_correct_llava_med("Tumor (adenocarcinoma)-like", "no"));  // inside "adenocarcinoma"
  EXPECT_TRUE(closed_correct_llava_med("Nope", "no"));
  EXPECT_FALSE(closed_correct_llava_med("Nope", "yes"));
}

TEST(VqaClosed, QuiltRuleReadsNoOrNotElseYes) {
  EXPECT_TRUE(closed_correct_quilt("No, it is not", "no"));
  EXPECT_FALSE(closed_correct_quilt("No, it is not", "yes"));
  EXPECT_TRUE(closed_correct_quilt("yes.", "yes"));
  EXPECT_TRUE(closed_correct_quilt("", "yes"));  // an empty prediction means yes
  EXPECT_FALSE(closed_correct_quilt("", "no"));
  EXPECT_TRUE(closed_correct_quilt("Yes, the tissue is NORMAL.", "yes"));
  EXPECT_FALSE(closed_correct_quilt("Yes, the tissue is NORMAL.", "no"));
  EXPECT_TRUE(closed_correct_quilt("It is NOT stroma!", "no"));
  EXPECT_TRUE(closed_correct_quilt("Nope", "yes"));    // "nope" is neither "no" nor "not"
  EXPECT_TRUE(closed_correct_quilt("isn't", "yes"));   // nor is "isn't"
}

TEST(VqaClosed, NonYesNoGroundTruthIsRefused) {
  const auto msg = pathvlm::testing::error_of([] { closed_correct_quilt("yes", "stroma"); });
  EXPECT_NE(msg.find("stroma"), std::string::npos);
  EXPECT_NE(msg.find("quilt"), std::string::npos);
}

TEST(VqaOpen, ExactMatchPrecisionRecallF1) {
  auto s = score_open("Adipose tissue.", "adipose tissue");
  EXPECT_DOUBLE_EQ(s.exact_match, 1.0);
  EXPECT_DOUBLE_EQ(s.f1, 1.0);
  EXPECT_DOUBLE_EQ(s.llava_med_recall, 1.0);

  // prediction: this is tumor epithelium (4 words; "this is" extra), truth: tumor epithelium with nuclei
  s = score_open("This is tumor epithelium", "Tumor epithelium with nuclei");
  EXPECT_DOUBLE_EQ(s.exact_match, 0.0);
  EXPECT_DOUBLE_EQ(s.precision, 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.recall, 2.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.f1, 0.5);
  EXPECT_DOUBLE_EQ(s.llava_med_recall, 0.5);

  // A repeated shared word: clipped counts vs the references' unclipped true positives.
  s = score_open("fat fat fat", "fat tissue");
  EXPECT_DOUBLE_EQ(s.precision, 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.recall, 0.5);
  EXPECT_DOUBLE_EQ(s.llava_med_recall, 3.0 / 4.0);  // tp 3, fn 1, as calculate_f1score computes it

  s = score_open("", "stroma");
  EXPECT_DOUBLE_EQ(s.exact_match + s.precision + s.recall + s.f1 + s.llava_med_recall, 0.0);
  s = score_open("mucus", "stroma");
  EXPECT_DOUBLE_EQ(s.f1, 0.0);
}

TEST(VqaScores, AggregatesCountsAndNamesTheRules) {
  std::vector<VqaItem> items = {
      {"1", "yes", "Yes.", VqaQuestionType::Closed},
      {"2", "no", "No, it is not.", VqaQuestionType::Closed},
      {"3", "no", "Yes, the tissue is normal.", VqaQuestionType::Closed},  // llava-med: hit, quilt: miss
      {"4", "yes", "", VqaQuestionType::Closed},                           // llava-med: miss, quilt: hit
      {"5", "stroma", "Stroma", VqaQuestionType::Open},
      {"6", "adipose tissue", "tissue", VqaQuestionType::Open},
  };
  const VqaScores s = score_vqa(items);
  EXPECT_EQ(s.closed, 4);
  EXPECT_EQ(s.open, 2);
  EXPECT_EQ(s.closed_correct_llava_med, 3);
  EXPECT_EQ(s.closed_correct_quilt, 3);
  EXPECT_DOUBLE_EQ(s.closed_accuracy_llava_med, 0.75);
  EXPECT_DOUBLE_EQ(s.open_mean.exact_match, 0.5);
  EXPECT_DOUBLE_EQ(s.open_mean.precision, 1.0);
  EXPECT_DOUBLE_EQ(s.open_mean.recall, 0.75);
  EXPECT_DOUBLE_EQ(s.open_mean.f1, (1.0 + 2.0 / 3.0) / 2.0);

  const std::string report = format_vqa_report(s);
  EXPECT_NE(report.find("closed (yes/no): 4 questions"), std::string::npos) << report;
  EXPECT_NE(report.find("75.00% (3/4)  rule llava-med (b9a98a7)"), std::string::npos) << report;
  EXPECT_NE(report.find("rule quilt"), std::string::npos) << report;
  EXPECT_NE(report.find("exact match 50.00%"), std::string::npos) << report;
  const auto values = vqa_metric_values(s, "eval/");
  EXPECT_EQ(values.at(1).first, "eval/closed_accuracy_llava_med");
  EXPECT_DOUBLE_EQ(values.at(1).second, 0.75);

  items.push_back({"7", "maybe", "yes", VqaQuestionType::Closed});
  EXPECT_NE(pathvlm::testing::error_of([&] { score_vqa(items); }).find("question '7'"), std::string::npos);
}

TEST(VqaFiles, QuestionsAndPredictionsMatchById) {
  const fs::path dir = fs::temp_directory_path() / ("pathvlm_vqa_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const auto questions = (dir / "questions.jsonl").string(), answers = (dir / "answers.jsonl").string();
  std::ofstream(questions) << R"({"question_id": 0, "image": "a", "text": "Is this stroma?", "answer": "yes"})" << "\n"
                           << R"({"question_id": 1, "image": "a", "text": "What tissue?", "answer": "stroma", "answer_type": "OPEN"})" << "\n";
  std::ofstream(answers) << R"({"question_id": 1, "text": "stroma"})" << "\n" << R"({"question_id": 0, "text": "No."})" << "\n";
  const auto items = read_vqa_items(questions, answers);
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].type, VqaQuestionType::Closed);
  EXPECT_EQ(items[0].prediction, "No.");
  EXPECT_EQ(items[1].type, VqaQuestionType::Open);
  const auto s = score_vqa(items);
  EXPECT_EQ(s.closed_correct_quilt, 0);
  EXPECT_DOUBLE_EQ(s.open_mean.exact_match, 1.0);

  std::ofstream(answers) << R"({"question_id": 1, "text": "stroma"})" << "\n";
  const auto msg = pathvlm::testing::error_of([&] { read_vqa_items(questions, answers); });
  EXPECT_NE(msg.find("no prediction for question_id 0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("answers.jsonl"), std::string::npos) << msg;
  fs::remove_all(dir);
}

// Values worked by hand: "the cat sat on the mat" against "the cat sat on a mat" matches 5/6 unigrams, 3/5
// bigrams, 2/4 trigrams and 1/3 four-grams at equal length; the LCS is 5 words of 6 on both sides.
TEST(TextOverlap, BleuFourIsTheGeometricMeanOfClippedPrecisionsTimesTheBrevityPenalty) {
  EXPECT_NEAR(corpus_bleu({"The cat sat on the mat."}, {"the cat sat on a mat"}),
              std::pow(5.0 / 6 * 3.0 / 5 * 2.0 / 4 * 1.0 / 3, 0.25), 1e-12);
  EXPECT_DOUBLE_EQ(corpus_bleu({"a b c d e f"}, {"a b c d e f"}), 1.0);
  // Corpus-level: precisions are pooled over the items (all 1 here), the penalty uses the total lengths 10 and 14.
  EXPECT_NEAR(corpus_bleu({"a b c d e f", "a b c d"}, {"a b c d e f", "a b c d e f g h"}), std::exp(1 - 14.0 / 10),
              1e-12);
  EXPECT_EQ(corpus_bleu({"the cat sat"}, {"the cat sat on the mat"}), 0.0);  // no four-gram at all
  EXPECT_EQ(corpus_bleu({"x y z w v"}, {"a b c d e"}), 0.0);
  EXPECT_THROW(corpus_bleu({"a"}, {}), pathvlm::Error);
}

TEST(TextOverlap, RougeLIsTheF1OfTheLongestCommonSubsequence) {
  EXPECT_NEAR(rouge_l("the cat sat on the mat", "the cat sat on a mat"), 5.0 / 6, 1e-12);
  // LCS "a c" of 2: precision 2/2, recall 2/4.
  EXPECT_NEAR(rouge_l("a c", "a b c d"), 2 * 1.0 * 0.5 / 1.5, 1e-12);
  EXPECT_EQ(rouge_l("", "a b"), 0.0);
  EXPECT_EQ(rouge_l("x", "a b"), 0.0);
  EXPECT_EQ(overlap_words("Fibrous STROMA (about 40%), lobules-of fat."),
            (std::vector<std::string>{"fibrous", "stroma", "about", "40", "lobules", "of", "fat"}));
}

TEST(TextOverlap, OpenVqaScoresCarryBleuAndRouge) {
  const auto s = score_vqa({{"1", "the cat sat on a mat", "the cat sat on the mat", VqaQuestionType::Open},
                                  {"2", "yes", "yes", VqaQuestionType::Closed}});
  EXPECT_NEAR(s.open_bleu4, std::pow(5.0 / 6 * 3.0 / 5 * 2.0 / 4 * 1.0 / 3, 0.25), 1e-12);
  EXPECT_NEAR(s.open_mean.rouge_l, 5.0 / 6, 1e-12);
  EXPECT_NE(format_vqa_report(s).find("BLEU-4 53.73%"), std::string::npos) << format_vqa_report(s);
}
