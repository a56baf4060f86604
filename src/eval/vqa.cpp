#include "eval/vqa.h"

#include <algorithm>
#include <cctype>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/ascii.h"
#include "core/error.h"
#include "eval/text_overlap.h"

namespace pathvlm::eval {

const char* const kClosedRuleLlavaMed =
    "llava-med (b9a98a7): correct iff the ground truth yes/no is a substring of the normalized prediction";
const char* const kClosedRuleQuilt =
    "quilt: the prediction means no iff 'no' or 'not' is one of its words, otherwise yes";

namespace {

bool is_digit(char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; }

bool has_digit_comma_digit(const std::string& s) {
  for (size_t i = 1; i + 1 < s.size(); ++i)
    if (s[i] == ',' && is_digit(s[i - 1]) && is_digit(s[i + 1])) return true;
  return false;
}

std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  std::istringstream in(s);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string yes_no_answer(const std::string& answer, const char* rule) {
  const std::string a = normalize_answer(answer);
  PATHVLM_CHECK(a == "yes" || a == "no", "vqa: the ", rule, " closed rule needs a yes/no ground truth, got '",
                answer, "'");
  return a;
}

std::string json_id(const nlohmann::json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

// Each line of a JSONL file as an object; errors name the file and line.
std::vector<std::pair<int64_t, nlohmann::json>> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  PATHVLM_CHECK(in, "vqa: cannot read '", path, "'");
  std::vector<std::pair<int64_t, nlohmann::json>> rows;
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json row;
    try {
      row = nlohmann::json::parse(line);
    } catch (const std::exception& e) {
      throw Error(str("vqa: '", path, "' line ", line_no, " is not JSON: ", e.what()));
    }
    PATHVLM_CHECK(row.is_object(), "vqa: '", path, "' line ", line_no, " is not a JSON object");
    rows.emplace_back(line_no, std::move(row));
  }
  return rows;
}

std::string string_field(const nlohmann::json& row, const char* key, const std::string& path, int64_t line) {
  PATHVLM_CHECK(row.contains(key) && row[key].is_string(), "vqa: '", path, "' line ", line, " has no string '", key,
                "'");
  return row[key].get<std::string>();
}

}  // namespace

std::string normalize_answer(const std::string& text) {
  static const std::string kPunctuation = ";/[]\"{}()=+\\_-><@`,?!";
  const std::string original = ascii_lower(text);
  const bool digit_comma = has_digit_comma_digit(original);
  std::string s = original;
  for (char p : kPunctuation) {
    const bool touches_space = original.find(std::string{p, ' '}) != std::string::npos ||
                               original.find(std::string{' ', p}) != std::string::npos;
    if (touches_space || digit_comma)
      s.erase(std::remove(s.begin(), s.end(), p), s.end());
    else
      std::replace(s.begin(), s.end(), p, ' ');
  }
  std::string no_periods;
  for (size_t i = 0; i < s.size(); ++i)
    if (s[i] != '.' || (i + 1 < s.size() && is_digit(s[i + 1]))) no_periods += s[i];

  static const std::map<std::string, std::string> kNumbers = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"}, {"two", "2"}, {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"}, {"ten", "10"}};
  std::string out;
  for (auto word : split_words(no_periods)) {
    if (auto it = kNumbers.find(word); it != kNumbers.end()) word = it->second;
    if (word == "a" || word == "an" || word == "the") continue;
    if (!out.empty()) out += ' ';
    out += word;
  }
  out.erase(std::remove(out.begin(), out.end(), ','), out.end());
  return out;
}

std::vector<std::string> answer_words(const std::string& text) { return split_words(normalize_answer(text)); }

VqaQuestionType vqa_question_type(const std::string& answer, const std::string& declared) {
  const std::string d = ascii_lower(declared);
  if (d == "closed") return VqaQuestionType::Closed;
  if (d == "open" || d == "other") return VqaQuestionType::Open;
  PATHVLM_CHECK(d.empty(), "vqa: unknown question type '", declared, "' (expected CLOSED, OPEN or other)");
  const std::string a = normalize_answer(answer);
  return a == "yes" || a == "no" ? VqaQuestionType::Closed : VqaQuestionType::Open;
}

bool closed_correct_llava_med(const std::string& prediction, const std::string& answer) {
  const std::string truth = yes_no_answer(answer, "llava-med");
  return normalize_answer(prediction).find(truth) != std::string::npos;
}

bool closed_correct_quilt(const std::string& prediction, const std::string& answer) {
  const std::string truth = yes_no_answer(answer, "quilt");
  const auto words = answer_words(prediction);
  const bool says_no = std::find(words.begin(), words.end(), "no") != words.end() ||
                       std::find(words.begin(), words.end(), "not") != words.end();
  return (says_no ? "no" : "yes") == truth;
}

OpenScores score_open(const std::string& prediction, const std::string& answer) {
  const auto pred = answer_words(prediction), truth = answer_words(answer);
  OpenScores s;
  s.rouge_l = rouge_l(prediction, answer);
  if (pred.empty() || truth.empty()) return s;
  s.exact_match = pred == truth ? 1.0 : 0.0;

  std::map<std::string, int64_t> pred_count, truth_count;
  for (const auto& w : pred) ++pred_count[w];
  for (const auto& w : truth) ++truth_count[w];
  int64_t clipped = 0, shared_in_pred = 0, missing_from_pred = 0;
  for (const auto& [word, n] : truth_count) {
    auto it = pred_count.find(word);
    if (it == pred_count.end()) {
      missing_from_pred += n;
    } else {
      clipped += std::min(n, it->second);
      shared_in_pred += it->second;
    }
  }
  if (clipped > 0) {
    s.precision = static_cast<double>(clipped) / static_cast<double>(pred.size());
    s.recall = static_cast<double>(clipped) / static_cast<double>(truth.size());
    s.f1 = 2 * s.precision * s.recall / (s.precision + s.recall);
    s.llava_med_recall = static_cast<double>(shared_in_pred) / static_cast<double>(shared_in_pred + missing_from_pred);
  }
  return s;
}

VqaScores score_vqa(const std::vector<VqaItem>& items) {
  VqaScores s;
  std::vector<std::string> open_predictions, open_answers;
  for (const auto& item : items) {
    try {
      if (item.type == VqaQuestionType::Closed) {
        ++s.closed;
        s.closed_correct_llava_med += closed_correct_llava_med(item.prediction, item.answer) ? 1 : 0;
        s.closed_correct_quilt += closed_correct_quilt(item.prediction, item.answer) ? 1 : 0;
      } else {
        ++s.open;
        const OpenScores o = score_open(item.prediction, item.answer);
        s.open_mean.exact_match += o.exact_match;
        s.open_mean.precision += o.precision;
        s.open_mean.recall += o.recall;
        s.open_mean.f1 += o.f1;
        s.open_mean.llava_med_recall += o.llava_med_recall;
        s.open_mean.rouge_l += o.rouge_l;
        open_predictions.push_back(item.prediction);
        open_answers.push_back(item.answer);
      }
    } catch (const Error& e) {
      throw Error(str("question '", item.question_id, "': ", e.what()));
    }
  }
  if (s.closed > 0) {
    s.closed_accuracy_llava_med = static_cast<double>(s.closed_correct_llava_med) / static_cast<double>(s.closed);
    s.closed_accuracy_quilt = static_cast<double>(s.closed_correct_quilt) / static_cast<double>(s.closed);
  }
  if (s.open > 0) {
    const double n = static_cast<double>(s.open);
    s.open_mean.exact_match /= n;
    s.open_mean.precision /= n;
    s.open_mean.recall /= n;
    s.open_mean.f1 /= n;
    s.open_mean.llava_med_recall /= n;
    s.open_mean.rouge_l /= n;
    s.open_bleu4 = corpus_bleu(open_predictions, open_answers);
  }
  return s;
}

std::string format_vqa_report(const VqaScores& s) {
  auto pct = [](double x) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f%%", 100.0 * x);
    return std::string(buf);
  };
  std::ostringstream out;
  out << "closed (yes/no): " << s.closed << " questions\n";
  if (s.closed > 0) {
    out << "  accuracy " << pct(s.closed_accuracy_llava_med) << " (" << s.closed_correct_llava_med << "/" << s.closed
        << ")  rule " << s.closed_rule_llava_med << "\n";
    out << "  accuracy " << pct(s.closed_accuracy_quilt) << " (" << s.closed_correct_quilt << "/" << s.closed
        << ")  rule " << s.closed_rule_quilt << "\n";
  }
  out << "open: " << s.open << " questions\n";
  if (s.open > 0)
    out << "  exact match " << pct(s.open_mean.exact_match) << "  precision " << pct(s.open_mean.precision)
        << "  recall " << pct(s.open_mean.recall) << "  F1 " << pct(s.open_mean.f1) << "  llava-med recall "
        << pct(s.open_mean.llava_med_recall) << "  BLEU-4 " << pct(s.open_bleu4) << "  ROUGE-L "
        << pct(s.open_mean.rouge_l) << "\n";
  return out.str();
}

std::vector<std::pair<std::string, double>> vqa_metric_values(const VqaScores& s, const std::string& prefix) {
  return {{prefix + "closed_questions", static_cast<double>(s.closed)},
          {prefix + "closed_accuracy_llava_med", s.closed_accuracy_llava_med},
          {prefix + "closed_accuracy_quilt", s.closed_accuracy_quilt},
          {prefix + "open_questions", static_cast<double>(s.open)},
          {prefix + "open_exact_match", s.open_mean.exact_match},
          {prefix + "open_precision", s.open_mean.precision},
          {prefix + "open_recall", s.open_mean.recall},
          {prefix + "open_f1", s.open_mean.f1},
          {prefix + "open_llava_med_recall", s.open_mean.llava_med_recall},
          {prefix + "open_bleu4", s.open_bleu4},
          {prefix + "open_rouge_l", s.open_mean.rouge_l}};
}

std::vector<VqaQuestion> read_vqa_questions(const std::string& questions_jsonl) {
  std::vector<VqaQuestion> questions;
  std::set<std::string> seen;
  for (const auto& [line, row] : read_jsonl(questions_jsonl)) {
    PATHVLM_CHECK(row.contains("question_id"), "vqa: '", questions_jsonl, "' line ", line, " has no 'question_id'");
    VqaQuestion q;
    q.question_id = json_id(row["question_id"]);
    PATHVLM_CHECK(seen.insert(q.question_id).second, "vqa: '", questions_jsonl, "' line ", line,
                  " repeats question_id ", q.question_id);
    q.answer = string_field(row, "answer", questions_jsonl, line);
    if (row.contains("text")) q.text = string_field(row, "text", questions_jsonl, line);
    if (row.contains("image") && !row["image"].is_null()) q.image = string_field(row, "image", questions_jsonl, line);
    std::string declared;
    for (const char* key : {"answer_type", "question_type"})
      if (row.contains(key)) declared = string_field(row, key, questions_jsonl, line);
    try {
      q.type = vqa_question_type(q.answer, declared);
    } catch (const Error& e) {
      throw Error(str("'", questions_jsonl, "' line ", line, ": ", e.what()));
    }
    q.where = str(questions_jsonl, ":", line);
    questions.push_back(std::move(q));
  }
  return questions;
}

std::vector<VqaItem> read_vqa_items(const std::string& questions_jsonl, const std::string& predictions_jsonl) {
  std::map<std::string, std::string> predictions;
  for (const auto& [line, row] : read_jsonl(predictions_jsonl)) {
    PATHVLM_CHECK(row.contains("question_id"), "vqa: '", predictions_jsonl, "' line ", line, " has no 'question_id'");
    const std::string id = json_id(row["question_id"]);
    PATHVLM_CHECK(predictions.emplace(id, string_field(row, "text", predictions_jsonl, line)).second, "vqa: '",
                  predictions_jsonl, "' line ", line, " repeats question_id ", id);
  }
  std::vector<VqaItem> items;
  for (const auto& q : read_vqa_questions(questions_jsonl)) {
    auto it = predictions.find(q.question_id);
    PATHVLM_CHECK(it != predictions.end(), "vqa: '", predictions_jsonl, "' has no prediction for question_id ",
                  q.question_id, " (of '", q.where, "')");
    items.push_back(VqaItem{q.question_id, q.answer, it->second, q.type});
  }
  PATHVLM_CHECK(items.size() == predictions.size(), "vqa: '", predictions_jsonl, "' has ", predictions.size(),
                " predictions but '", questions_jsonl, "' has ", items.size(), " questions");
  return items;
}

}  // namespace pathvlm::eval
