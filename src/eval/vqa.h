// PathVQA-style scoring of generated answers: closed (yes/no) accuracy under both published rules, and open
// token-overlap scores, each report naming the rule that produced its numbers.
//
//   std::vector<eval::VqaItem> items = eval::read_vqa_items("eval/questions.jsonl", "answers.jsonl");
//   eval::VqaScores s = eval::score_vqa(items);
//   std::cout << eval::format_vqa_report(s);       // counts, both closed accuracies with their rules, open scores
//
// Closed rules (answers and predictions both pass normalize_answer first):
//   llava-med: LLaVA-Med's llava/eval/run_eval.py after commit b9a98a7 ("fix closed accuracy calculation"):
//              correct iff the ground truth ("yes" or "no") is a *substring* of the prediction. Substring, as in
//              the reference: "no" also matches inside "not", "normal" or "nodule".
//   quilt:     Quilt-LLaVA's llava/eval/quilt_eval.py ("2 yes/no accuracy"): the prediction means "no" if "no" or
//              "not" is one of its words, otherwise "yes" (an empty prediction therefore means "yes"); correct iff
//              that equals the ground truth.
// Open scores (per question, averaged over the open questions), on normalize_answer's words:
//   exact match:          the word sequences are equal;
//   precision/recall/F1:  bag-of-words overlap with clipped counts (SQuAD style);
//   llava-med recall:     LLaVA-Med's and Quilt's calculate_f1score recall, tp / (tp + fn) with tp = the prediction's
//                         occurrences of shared words, fn = the ground truth's occurrences of words the prediction
//                         lacks: the fraction of ground-truth words found in the prediction (the two differ only when
//                         the prediction repeats a shared word).
//   BLEU-4, ROUGE-L:      text_overlap.h's, on its own words (punctuation dropped, articles kept): corpus BLEU-4
//                         over all open questions, ROUGE-L per question; the measures report generation is
//                         scored by (PathAlign), for open answers that are reports rather than a few words.
// An empty prediction or ground truth scores 0 on every open measure, as in the references.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pathvlm::eval {

enum class VqaQuestionType { Closed, Open };

// The references' normalize_word on lowercased text: each of ; / [ ] " { } ( ) = + \ _ - > < @ ` , ? ! is
// deleted when it touches a space in the text (or the text holds a digit,digit) and otherwise becomes a space;
// periods not followed by a digit are deleted; number words zero..ten (and "none") become digits; the articles
// a / an / the are dropped; words are joined by single spaces and remaining commas deleted. Not reproduced: the
// references' table that rewrites apostrophe-less contractions ("isnt" -> "isn't"), which only matters when a
// prediction and its ground truth spell the same contraction differently.
std::string normalize_answer(const std::string& text);
// normalize_answer's words.
std::vector<std::string> answer_words(const std::string& text);

// `declared` is a record's answer_type / question_type ("CLOSED", "closed", "OPEN", "open", "other", any case);
// when empty the answer decides, as Quilt-LLaVA's conversion does: closed iff it normalizes to "yes" or "no".
VqaQuestionType vqa_question_type(const std::string& answer, const std::string& declared = "");

// The two closed rules (see above). `answer` must normalize to "yes" or "no" (throws otherwise).
bool closed_correct_llava_med(const std::string& prediction, const std::string& answer);
bool closed_correct_quilt(const std::string& prediction, const std::string& answer);

struct OpenScores {
  double exact_match = 0, precision = 0, recall = 0, f1 = 0, llava_med_recall = 0, rouge_l = 0;
};
OpenScores score_open(const std::string& prediction, const std::string& answer);

struct VqaItem {
  std::string question_id;  // for error messages
  std::string answer, prediction;
  VqaQuestionType type = VqaQuestionType::Open;
};

extern const char* const kClosedRuleLlavaMed;  // "llava-med (b9a98a7): ..." as the report prints it
extern const char* const kClosedRuleQuilt;

struct VqaScores {
  int64_t closed = 0, open = 0;  // questions of each type
  int64_t closed_correct_llava_med = 0, closed_correct_quilt = 0;
  double closed_accuracy_llava_med = 0, closed_accuracy_quilt = 0;  // fractions; 0 without closed questions
  OpenScores open_mean;                                             // means; 0 without open questions
  double open_bleu4 = 0;                                            // corpus BLEU-4 of the open answers
  std::string closed_rule_llava_med = kClosedRuleLlavaMed, closed_rule_quilt = kClosedRuleQuilt;
};

// Scores every item; a closed item whose answer is not yes/no throws naming its question id.
VqaScores score_vqa(const std::vector<VqaItem>& items);

// A few lines: counts, both closed accuracies (percent) each with its rule, the open scores (percent).
std::string format_vqa_report(const VqaScores& s);
// {prefix + "closed_accuracy_llava_med", ...} for metrics sinks (fractions).
std::vector<std::pair<std::string, double>> vqa_metric_values(const VqaScores& s, const std::string& prefix);

// One question of a questions JSONL (below): what a model is asked and the ground truth.
struct VqaQuestion {
  std::string question_id;
  std::string image;  // "" when the line has none
  std::string text;   // the question as asked ("" when the line has none)
  std::string answer;
  VqaQuestionType type = VqaQuestionType::Open;
  std::string where;  // "file:line"
};
// Every question of a questions JSONL, in file order; errors name the file and line.
std::vector<VqaQuestion> read_vqa_questions(const std::string& questions_jsonl);

// Questions JSONL (LLaVA eval style, as `pathvlm synth instruct` writes eval/questions.jsonl): `question_id`
// (number or string), `answer`, optional `answer_type` or `question_type`. Predictions JSONL (LLaVA's answers
// file): `question_id`, `text`. Every question needs exactly one prediction; errors name the file, line and id.
std::vector<VqaItem> read_vqa_items(const std::string& questions_jsonl, const std::string& predictions_jsonl);

}  // namespace pathvlm::eval
